"""``careledger``: the command-line interface.

Commands: ``init``, ``node start``, ``keys``, ``status``, ``verify``, ``proof verify``, ``identity``,
``governance``, ``tx``, ``bench`` and ``demo``. Run any with ``--help``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from careledger.cli.common import HomeOption, console, expand, fail, fail_ledger, print_json
from careledger.core.errors import LedgerError
from careledger.keys import KeyFileError, new_key, read_key
from careledger.node.home import Home, HomeError, init_home, load_genesis

app = typer.Typer(name="careledger", help="CareLedger: a permissioned consortium ledger for healthcare.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
node_app = typer.Typer(help="Run a node.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage Ed25519 key files.", no_args_is_help=True)
proof_app = typer.Typer(help="Check inclusion proofs offline.", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(keys_app, name="keys")
app.add_typer(proof_app, name="proof")


@app.command()
def init(
    home: Path = HomeOption,
    genesis: Annotated[Path | None, typer.Option(help="Consortium genesis file; omit for a one-organisation "
                                                      "development consortium.")] = None,
    node_key: Annotated[Path | None, typer.Option(help="This node's validator key (generated if omitted).")] = None,
    chain_id: Annotated[str, typer.Option(help="Chain id of a generated development genesis.")] = "careledger-dev",
    api: Annotated[str, typer.Option(help="HOST:PORT the HTTP API listens on.")] = "127.0.0.1:8700",
) -> None:
    """Create a node home: configuration, genesis, node key and an initialised ledger store."""
    path = expand(home)
    try:
        h = init_home(path, expand(genesis) if genesis else None, expand(node_key) if node_key else None,
                      int(time.time() * 1000), chain_id=chain_id, api=api)
    except (HomeError, KeyFileError) as exc:
        fail(str(exc))
    except LedgerError as exc:
        fail_ledger(exc)
    g = h.genesis()
    console.print(f"[green]initialised[/] {path}")
    console.print(f"  chain id   {g.chain_id}")
    console.print(f"  genesis    {g.hash.hex()}")
    console.print(f"  node key   {h.node_key().public_hex}")
    for name in h.key_names():
        console.print(f"  key        {name}: {h.key(name).public_hex}")


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@node_app.command("start")
def node_start(
    home: Path = HomeOption,
    api: Annotated[str | None, typer.Option(help="HOST:PORT for the HTTP API (default: from config.json).")] = None,
) -> None:
    """Start the embedded node (solo engine) and its HTTP API; runs until interrupted."""
    from careledger.api.server import serve

    h = Home(expand(home))
    try:
        config = h.config()
        node = h.open_node()
    except HomeError as exc:
        fail(str(exc))
    except LedgerError as exc:
        fail_ledger(exc)
    host, port = (api or config.api).rsplit(":", 1)
    node.start()
    console.print(f"[green]node running[/] chain={node.chain.chain_id} height={node.head.height} "
                  f"api=http://{host}:{port}  (Ctrl-C to stop)")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; without a handler
    # SIGTERM would kill the process before the node is closed (engine stopped, store checkpointed).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        serve(node, host, int(port))
    except KeyboardInterrupt:
        pass
    finally:
        node.close()
        console.print("node stopped")


@keys_app.command("new")
def keys_new(
    name: str,
    home: Path = HomeOption,
    out: Annotated[Path | None, typer.Option(help="Write the key file here instead of HOME/keys/NAME.json.")] = None,
) -> None:
    """Generate a new Ed25519 key."""
    path = expand(out) if out else expand(home) / "keys" / f"{name}.json"
    if path.exists():
        fail(f"{path} already exists")
    key = new_key(path, name)
    console.print(f"{name}: {key.public_hex}  ({path})")


@keys_app.command("list")
def keys_list(home: Path = HomeOption) -> None:
    """List the keys in the home's keyring."""
    h = Home(expand(home))
    table = Table("name", "public key")
    for name in h.key_names():
        table.add_row(name, h.key(name).public_hex)
    table.add_row("(node)", h.node_key().public_hex)
    console.print(table)


@keys_app.command("show")
def keys_show(name: str, home: Path = HomeOption) -> None:
    """Print a key's public half (and the patient pseudonym it would register as)."""
    from careledger.contracts.identity import compute_pseudonym

    try:
        key = read_key(expand(home) / "keys" / f"{name}.json")
    except KeyFileError as exc:
        fail(str(exc))
    print_json({"name": name, "public_key": key.public_hex, "pseudonym": compute_pseudonym(key.public_hex)})


@app.command()
def status(
    home: Path = HomeOption,
    url: Annotated[str | None, typer.Option(help="Node API URL; default: the home's configured API.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a running node's status (chain, height, app hash, mempool)."""
    from careledger.client import Client, ClientError

    base = url or f"http://{Home(expand(home)).config().api}"
    try:
        doc = Client(base).status()
    except ClientError as exc:
        fail(f"{exc.name}: {exc.message}")
    except Exception as exc:
        fail(f"cannot reach {base}: {exc}")
    if as_json:
        print_json(doc)
        return
    table = Table(show_header=False)
    for k in sorted(doc):
        table.add_row(k, str(doc[k]))
    console.print(table)


@app.command()
def verify(
    home: Path = HomeOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-check every block's hash links, signatures and Merkle roots and replay every transaction.

    Exits 0 when the ledger is intact; otherwise exits 2 and names the first bad height.
    """
    from careledger.node.verify import verify_file

    h = Home(expand(home))
    if not h.db_path.exists():
        fail(f"{h.db_path} does not exist")
    with Progress(TextColumn("verifying"), BarColumn(), TextColumn("{task.completed}/{task.total} blocks"),
                  TimeRemainingColumn(), console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task("verify", total=None)
        report = verify_file(h.db_path, lambda done, total: bar.update(task, completed=done, total=total),
                             engine=h.config().engine)
    if as_json:
        print_json(report.to_json())
    elif report.ok:
        rate = f"{report.txs / report.seconds:,.0f} tx/s" if report.seconds else ""
        console.print(f"[green]ledger intact[/]: {report.blocks} blocks, {report.txs} transactions, height "
                      f"{report.height} ({report.seconds:.2f} s, {rate})")
    else:
        console.print(f"[bold red]ledger damaged at height {report.bad_height}[/]: {report.problem}")
    if not report.ok:
        raise typer.Exit(2)


@proof_app.command("verify")
def proof_verify(
    proof: Annotated[Path, typer.Argument(help="Proof bundle JSON (as returned by GET /v1/txs/{hash}).")],
    genesis: Annotated[Path, typer.Option(help="The consortium's genesis file.")],
) -> None:
    """Check a transaction's inclusion proof offline against the consortium's genesis."""
    from careledger.core.proofs import verify_proof

    try:
        g = load_genesis(expand(genesis))
        doc = json.loads(expand(proof).read_text())
        bundle = doc.get("proof", doc)
        receipt = verify_proof(bundle, g.chain_id, [v.pub_key for v in g.validators], g.crypto_suite)
    except LedgerError as exc:
        fail_ledger(exc)
    except (OSError, ValueError) as exc:
        fail(f"cannot read proof: {exc}")
    console.print(f"[green]proof valid[/]: tx {receipt.tx} is #{receipt.index} of block "
                  f"{bundle['header']['height']} with receipt code {receipt.code}")


def _register_subcommands() -> None:
    from careledger.cli import bench as bench_cli
    from careledger.cli import demo as demo_cli
    from careledger.cli import ledger as ledger_cli
    from careledger.cli import net as net_cli
    from careledger.cli import records as records_cli
    from careledger.cli import supply as supply_cli

    app.command("bench")(bench_cli.bench)
    app.command("demo")(demo_cli.demo)
    app.add_typer(ledger_cli.identity_app, name="identity")
    app.add_typer(ledger_cli.governance_app, name="governance")
    app.add_typer(ledger_cli.tx_app, name="tx")
    app.add_typer(net_cli.net_app, name="net")
    app.add_typer(records_cli.records_app, name="records")
    app.add_typer(records_cli.consent_app, name="consent")
    app.add_typer(records_cli.audit_app, name="audit")
    app.add_typer(supply_cli.supply_app, name="supply")


_register_subcommands()
