"""Command line of the CometBFT engine.

    python -m careledger.abci setup --home CMTHOME [--genesis careledger-genesis.json] [--chain-id ID]
    python -m careledger.abci serve --db CMTHOME/careledger/ledger.sqlite [--address tcp://127.0.0.1:26658]
    python -m careledger.abci node --node-dir NET/node0     (ABCI + HTTP API of a `careledger net` node)
    cometbft start --home CMTHOME

``setup`` runs ``cometbft init`` in CMTHOME (the binary from scripts/install-cometbft.sh, ``$COMETBFT_BIN``
or ``PATH``), writes the CareLedger genesis into CometBFT's genesis.json and points config.toml at the
ABCI server. Without ``--genesis`` it creates a one-organisation development consortium whose admin
key is written to CMTHOME/careledger/keys/admin.json and whose validator is this CometBFT node.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from careledger.abci.app import CareLedgerApp
from careledger.abci.cometbft import (
    CometbftSetupError,
    cometbft_init,
    dev_genesis,
    find_cometbft,
    read_validator_pub_key,
    setup_home,
)
from careledger.abci.server import serve
from careledger.core.errors import LedgerError
from careledger.core.genesis import parse_genesis
from careledger.keys import new_key
from careledger.node.home import load_genesis


def _serve(args: argparse.Namespace) -> int:
    app = CareLedgerApp(Path(args.db), check_integrity=not args.skip_integrity_check)
    try:
        asyncio.run(serve(app, args.address))
    finally:
        app.close()
    return 0


def _node(args: argparse.Namespace) -> int:
    from careledger.api.server import run_cometbft_node

    return run_cometbft_node(Path(args.node_dir), check_integrity=not args.skip_integrity_check)


def _setup(args: argparse.Namespace) -> int:
    binary = Path(args.cometbft) if args.cometbft else find_cometbft()
    if binary is None:
        print("cometbft not found: run scripts/install-cometbft.sh or pass --cometbft", file=sys.stderr)
        return 2
    home = Path(args.home)
    cometbft_init(binary, home)
    if args.genesis:
        genesis = load_genesis(Path(args.genesis))
    else:
        admin_path = home / "careledger" / "keys" / "admin.json"
        if admin_path.exists():
            print(f"{admin_path} exists; pass --genesis to reuse an existing consortium", file=sys.stderr)
            return 2
        admin = new_key(admin_path, "admin")
        validator = read_validator_pub_key(home).hex()
        genesis = parse_genesis(dev_genesis(args.chain_id, admin.public_hex, validator, int(time.time() * 1000)))
    setup_home(binary, home, genesis, args.proxy_app, rpc_laddr=args.rpc, p2p_laddr=args.p2p,
               timeout_commit=args.timeout_commit)
    print(f"CometBFT home {home} is ready for chain {genesis.chain_id}")
    print(f"  python -m careledger.abci serve --db {home / 'careledger' / 'ledger.sqlite'} --address {args.proxy_app}")
    print(f"  {binary} start --home {home}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m careledger.abci", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    p_serve = sub.add_parser("serve", help="run the CareLedger ABCI server for CometBFT")
    p_serve.add_argument("--db", required=True, help="the ledger's SQLite file (created on InitChain)")
    p_serve.add_argument("--address", default="tcp://127.0.0.1:26658",
                         help="tcp://host:port or unix:///path (CometBFT's proxy_app)")
    p_serve.add_argument("--skip-integrity-check", action="store_true",
                         help="do not re-check every stored row's checksum at start")
    p_serve.set_defaults(func=_serve)

    p_node = sub.add_parser("node", help="run a `careledger net` node: ABCI server and HTTP API")
    p_node.add_argument("--node-dir", required=True, help="the node's directory (holds node.json)")
    p_node.add_argument("--skip-integrity-check", action="store_true")
    p_node.set_defaults(func=_node)

    p_setup = sub.add_parser("setup", help="init and configure a CometBFT home for CareLedger")
    p_setup.add_argument("--home", required=True, help="the CometBFT home directory")
    p_setup.add_argument("--genesis", help="a CareLedger genesis file naming this node's validator key")
    p_setup.add_argument("--chain-id", default="careledger-dev", help="chain id of a generated dev genesis")
    p_setup.add_argument("--cometbft", help="path of the cometbft binary")
    p_setup.add_argument("--proxy-app", default="tcp://127.0.0.1:26658")
    p_setup.add_argument("--rpc", default="tcp://127.0.0.1:26657")
    p_setup.add_argument("--p2p", default="tcp://0.0.0.0:26656")
    p_setup.add_argument("--timeout-commit", default="1s")
    p_setup.set_defaults(func=_setup)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (LedgerError, CometbftSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
