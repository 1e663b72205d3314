"""``careledger abci``: the CometBFT engine's own commands (set up a CometBFT home, serve ABCI, run a
``careledger net`` node).

    careledger abci setup --home CMTHOME [--genesis careledger-genesis.json] [--chain-id ID]
    careledger abci serve --db CMTHOME/careledger/ledger.sqlite [--address unix://CMTHOME/careledger/abci.sock]
    careledger abci node --node-dir NET/node0        (ABCI + HTTP API of a `careledger net` node)
    cometbft start --home CMTHOME

``python -m careledger.abci …`` runs the same commands. The ABCI server listens on an owner-only Unix
socket by default (beside the ledger); TCP only when asked, and only on loopback
(:mod:`careledger.abci.server`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from careledger.cli.common import emit, expand, fail, note, say
from careledger.cli.serving import LogFormat, LogLevel, api_settings, set_up_logging
from careledger.core.errors import Code

abci_app = typer.Typer(help="The CometBFT engine: set up a CometBFT home, serve ABCI, run a network node.",
                       no_args_is_help=True)

SkipCheck = Annotated[bool, typer.Option("--skip-integrity-check",
                                         help="Do not re-check every stored row's checksum at start.")]


@abci_app.command("serve")
def serve(
    db: Annotated[Path, typer.Option(help="The ledger's SQLite file (created on InitChain).")],
    address: Annotated[str | None, typer.Option(help="unix:///path (default: abci.sock beside the ledger, mode "
                                                     "0600) or tcp://127.0.0.1:port (loopback only); CometBFT's "
                                                     "proxy_app.")] = None,
    skip_integrity_check: SkipCheck = False,
    log_level: LogLevel = "INFO",
    log_format: LogFormat = "text",
) -> None:
    """Run the CareLedger ABCI server for a CometBFT node; runs until interrupted. Snapshots for state sync
    follow statesync.json beside the ledger (written by `abci setup`)."""
    from careledger.abci.app import CareLedgerApp
    from careledger.abci.server import check_listen_address
    from careledger.abci.server import serve as serve_abci

    set_up_logging(log_level, log_format)
    path = expand(db)
    address = address or f"unix://{path.parent / 'abci.sock'}"
    try:
        check_listen_address(address)
    except ValueError as exc:
        fail(str(exc), name=Code.NETWORK_INVALID.name, code=int(Code.NETWORK_INVALID))
    app = CareLedgerApp(path, check_integrity=not skip_integrity_check)
    try:
        asyncio.run(serve_abci(app, address))
    finally:
        app.close()


@abci_app.command("node")
def node(
    node_dir: Annotated[Path, typer.Option(help="The node's directory (holds node.json).")],
    skip_integrity_check: SkipCheck = False,
    log_level: LogLevel = "INFO",
    log_format: LogFormat = "text",
) -> None:
    """Run a `careledger net` node: the ABCI server and the HTTP API over one ledger. The API is served
    as the node's CareLedger home's config.json says (TLS, client certificates, limits)."""
    from careledger.api.server import read_node_file, run_cometbft_node
    from careledger.node.home import Home

    started_at = time.monotonic()
    set_up_logging(log_level, log_format)
    path = expand(node_dir)
    home = Home(path / read_node_file(path)["careledger_home"])
    settings = api_settings(home, started_at=started_at) if home.exists() else None
    raise typer.Exit(run_cometbft_node(path, check_integrity=not skip_integrity_check, settings=settings))


@abci_app.command("setup")
def setup(
    home: Annotated[Path, typer.Option(help="The CometBFT home directory.")],
    genesis: Annotated[Path | None, typer.Option(help="A CareLedger genesis file naming this node's validator "
                                                      "key; omit for a one-organisation development consortium.")]
    = None,
    chain_id: Annotated[str, typer.Option(help="Chain id of a generated development genesis.")] = "careledger-dev",
    cometbft: Annotated[Path | None, typer.Option(help="Path of the cometbft binary.")] = None,
    proxy_app: Annotated[str | None, typer.Option(help="Where CometBFT reaches the ABCI server (default: "
                                                       "unix://HOME/careledger/abci.sock).")] = None,
    snapshot_interval: Annotated[int, typer.Option(help="CometBFT heights between state-sync snapshots "
                                                        "(0: none).")] = 100,
    rpc: Annotated[str, typer.Option(help="CometBFT's RPC listen address.")] = "tcp://127.0.0.1:26657",
    p2p: Annotated[str, typer.Option(help="CometBFT's P2P listen address.")] = "tcp://0.0.0.0:26656",
    timeout_commit: Annotated[str, typer.Option(help="CometBFT's consensus.timeout_commit.")] = "1s",
) -> None:
    """Initialise and configure a CometBFT home for CareLedger (runs `cometbft init`)."""
    from careledger.abci.cometbft import cometbft_init, dev_genesis, find_cometbft, read_validator_pub_key, setup_home
    from careledger.core.genesis import parse_genesis
    from careledger.keys import new_key
    from careledger.node.home import load_genesis

    binary = expand(cometbft) if cometbft else find_cometbft()
    if binary is None:
        fail("cometbft not found: run scripts/install-cometbft.sh or pass --cometbft",
             name=Code.NETWORK_INVALID.name, code=int(Code.NETWORK_INVALID))
    path = expand(home)
    cometbft_init(binary, path)
    if genesis:
        g = load_genesis(expand(genesis))
    else:
        admin_path = path / "careledger" / "keys" / "admin.json"
        if admin_path.exists():
            fail(f"{admin_path} exists; pass --genesis to reuse an existing consortium")
        admin = new_key(admin_path, "admin")
        validator = read_validator_pub_key(path).hex()
        g = parse_genesis(dev_genesis(chain_id, admin.public_hex, validator, int(time.time() * 1000)))
    from careledger.abci.snapshots import SnapshotPolicy

    proxy_app = proxy_app or f"unix://{path / 'careledger' / 'abci.sock'}"
    setup_home(binary, path, g, proxy_app, rpc_laddr=rpc, p2p_laddr=p2p, timeout_commit=timeout_commit)
    SnapshotPolicy(interval=snapshot_interval).save(path / "careledger")
    db = path / "careledger" / "ledger.sqlite"
    emit({"home": str(path), "chain_id": g.chain_id, "db": str(db), "proxy_app": proxy_app},
         lambda: say(f"CometBFT home {path} is ready for chain {g.chain_id}"))
    note(f"next:  careledger abci serve --db {db} --address {proxy_app}")
    note(f"       {binary} start --home {path}")
