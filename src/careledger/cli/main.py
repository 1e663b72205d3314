"""``careledger``: the command-line interface.

Commands: ``init``, ``node start``, ``keys``, ``status``, ``verify``, ``backup``, ``restore``,
``proof verify``, ``identity``, ``governance``, ``tx``, ``records``, ``consent``, ``audit``, ``supply``,
``net``, ``abci``, ``bench`` and ``demo``. Run any with ``--help``. :func:`main` is the entry point:
it adds ``--json`` and the exit-status table to every command and turns every error into one line
and an exit status (:mod:`careledger.cli.common`).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from careledger.cli.common import (
    EXIT_ERROR,
    EXIT_HELP,
    EXIT_NEGATIVE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    HomeOption,
    emit,
    err_console,
    expand,
    fail,
    json_mode,
    key_path,
    node_url,
    note,
    passphrase_for,
    print_json,
    print_table,
    progress,
    read_file,
    say,
    set_json_mode,
    set_passphrase_file,
    split_passphrase_file,
)
from careledger.cli.serving import LogFormat, LogLevel, api_settings, set_up_logging
from careledger.core.errors import Code, LedgerError
from careledger.keys import KeyFileError, new_key
from careledger.node.home import Home, HomeError, init_home, load_genesis

node_log = logging.getLogger("careledger.node")

app = typer.Typer(name="careledger", help="CareLedger: a permissioned consortium ledger for healthcare.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from careledger import __version__

        emit({"version": __version__}, lambda: say(f"careledger {__version__}"))
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                                callback=_version)] = False) -> None:
    """CareLedger: a permissioned consortium ledger for healthcare."""


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
    h = init_home(path, expand(genesis) if genesis else None, expand(node_key) if node_key else None,
                  int(time.time() * 1000), chain_id=chain_id, api=api)
    g = h.genesis()
    keys = {name: h.public_key(name) for name in h.key_names()}
    doc = {"home": str(path), "chain_id": g.chain_id, "genesis_hash": g.hash.hex(),
           "node_key": h.node_public_key(), "keys": keys}

    def human() -> None:
        say(f"[green]initialised[/] {path}")
        say(f"  chain id   {g.chain_id}")
        say(f"  genesis    {doc['genesis_hash']}")
        say(f"  node key   {doc['node_key']}")
        for name, pub in keys.items():
            say(f"  key        {name}: {pub}")

    emit(doc, human)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _terminate_soon(delay: float = 0.5) -> None:
    """SIGTERM this process after ``delay`` seconds (from a helper thread): uvicorn then finishes the
    requests in flight, whose transactions were just answered, and shuts down."""
    import os
    import threading

    def later() -> None:
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=later, name="halt-exit", daemon=True).start()


@node_app.command("start")
def node_start(
    home: Path = HomeOption,
    api: Annotated[str | None, typer.Option(help="HOST:PORT for the HTTP API (default: from config.json).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain) "
                                                       "(default: config.json's tls_cert).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's PEM private key "
                                                      "(default: config.json's tls_key).")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="PEM bundle of accepted client certificate issuers "
                                                            "(default: config.json's tls_client_ca).")] = None,
    client_tls: Annotated[str | None, typer.Option(help="`organisations`: gateway reads by organisation members "
                                                        "need a client certificate their organisation registered; "
                                                        "`off` (default: config.json's client_tls).")] = None,
    log_level: LogLevel = "INFO",
    log_format: LogFormat = "text",
) -> None:
    """Start the embedded node (solo engine) and its HTTP API; runs until interrupted.

    If block production stops on an I/O error or a damaged store, the node answers every waiting
    transaction NODE_UNAVAILABLE and exits with status 5, for a supervisor to restart it; on a full
    disk it stays up, refuses transactions (503) and resumes once there is room (docs/cli.md).
    An encrypted node key (version 2) is opened with --passphrase-file, CARELEDGER_PASSPHRASE or a
    prompt on the terminal.
    """
    from careledger.api.server import serve

    started_at = time.monotonic()
    set_up_logging(log_level, log_format)
    h = Home(expand(home))
    config = h.config()
    settings = api_settings(h, tls_cert, tls_key, tls_client_ca, client_tls, started_at)
    node = h.open_node(passphrase=lambda: passphrase_for("node_key.json"))
    host, port = (api or config.api).rsplit(":", 1)
    node.on_halt(lambda halt: _terminate_soon() if halt.action == "exit" else None)
    node.start()
    scheme = "https" if settings.tls else "http"
    if log_format.lower() == "json":  # stderr carries JSON lines only
        node_log.info("node running", extra={"chain": node.chain.chain_id, "height": node.head.height,
                                             "api": f"{scheme}://{host}:{port}"})
    else:
        note(f"[green]node running[/] chain={node.chain.chain_id} height={node.head.height} "
             f"api={scheme}://{host}:{port}  (Ctrl-C to stop)")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; without a handler
    # SIGTERM would kill the process before the node is closed (engine stopped, store checkpointed).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        serve(node, host, int(port), h.path, settings)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        node.close()
        if log_format.lower() == "json":
            node_log.info("node stopped", extra={"height": node.head.height})
        else:
            note("node stopped")
    halt = node.halt
    if halt is not None and halt.action == "exit":
        raise LedgerError(f"block production stopped ({halt.kind}): {halt.reason}", Code.NODE_UNAVAILABLE)


@keys_app.command("new")
def keys_new(
    name: str,
    home: Path = HomeOption,
    out: Annotated[Path | None, typer.Option(help="Write the key file here instead of HOME/keys/NAME.json.")] = None,
    encrypt: Annotated[bool, typer.Option("--encrypt", help="Seal the key under a passphrase (version 2: scrypt "
                                                            "and AES-256-GCM, as the web console does).")] = False,
) -> None:
    """Generate a new Ed25519 key."""
    path = expand(out) if out else expand(home) / "keys" / f"{name}.json"
    if path.exists():
        fail(f"{path} already exists", name=Code.KEY_FILE_INVALID.name, code=int(Code.KEY_FILE_INVALID))
    passphrase = passphrase_for(path.name, confirm=True) if encrypt else None
    key = new_key(path, name, passphrase)
    emit({"name": name, "public_key": key.public_hex, "path": str(path), "encrypted": encrypt},
         lambda: say(f"{name}: {key.public_hex}  ({path}{', encrypted' if encrypt else ''})"))


@keys_app.command("encrypt")
def keys_encrypt(
    name: Annotated[str, typer.Argument(help="A key in HOME/keys, or a key file's path.")],
    home: Path = HomeOption,
) -> None:
    """Seal an existing plain key file (version 1) under a passphrase, in place (version 2).

    The file is replaced atomically; the key itself does not change.
    """
    from careledger.keys import key_document, read_key, read_key_document, write_key_document

    path = key_path(home, name)
    doc = read_key_document(path)
    if doc.get("version") == 2:
        fail(f"{path} is already encrypted", name=Code.KEY_FILE_INVALID.name, code=int(Code.KEY_FILE_INVALID))
    key = read_key(path)
    label = str(doc.get("name") or path.stem)
    write_key_document(path, key_document(key, label, passphrase_for(path.name, confirm=True)), replace=True)
    emit({"name": label, "public_key": key.public_hex, "path": str(path), "encrypted": True},
         lambda: say(f"{label}: {key.public_hex}  ({path}, encrypted)"))


@keys_app.command("list")
def keys_list(home: Path = HomeOption) -> None:
    """List the keys in the home's keyring (public halves only: no passphrase is asked)."""
    from careledger.keys import is_encrypted_file

    h = Home(expand(home))
    rows = [{"name": name, "public_key": h.public_key(name),
             "encrypted": is_encrypted_file(h.keys_dir / f"{name}.json")} for name in h.key_names()]
    rows.append({"name": "(node)", "public_key": h.node_public_key(), "encrypted": is_encrypted_file(h.node_key_path)})
    emit(rows, lambda: print_table(["name", "public key", "encrypted"],
                                   ((r["name"], r["public_key"], "yes" if r["encrypted"] else "") for r in rows)))


@keys_app.command("show")
def keys_show(name: str, home: Path = HomeOption) -> None:
    """Print a key's public half (and the patient pseudonym it would register as); no passphrase is asked."""
    from careledger.contracts.identity import compute_pseudonym
    from careledger.keys import is_encrypted_file, read_public_key

    path = key_path(home, name)
    public = read_public_key(path)
    emit({"name": name, "public_key": public, "pseudonym": compute_pseudonym(public),
          "encrypted": is_encrypted_file(path)})


@app.command()
def status(
    home: Path = HomeOption,
    url: Annotated[str | None, typer.Option(help="Node API URL; default: the home's configured API.")] = None,
) -> None:
    """Show a running node's status (chain, height, app hash, mempool)."""
    from careledger.client import Client

    doc = Client(node_url(home, url)).status()
    emit(doc, lambda: print_table(["field", "value"], ((k, doc[k]) for k in sorted(doc))))


@app.command()
def verify(
    home: Path = HomeOption,
    reset_head: Annotated[bool, typer.Option(
        "--reset-head", help="If everything but the head record verifies, rewrite the head record at the "
                             "store's height: you accept that blocks above it, if the node acknowledged any, are "
                             "lost (stop the node first).")] = False,
) -> None:
    """Re-check the ledger: SQLite's integrity check, every block's hash links, signatures and Merkle roots,
    a replay of every transaction, the state commitment and the head record.

    Exits 0 when the ledger is intact; otherwise exits 2 and names the first bad height and its code
    (STORE_CORRUPTED, or STORE_ROLLED_BACK / HEAD_RECORD_MISMATCH for the head record).
    """
    from careledger.node.verify import verify_file

    h = Home(expand(home))
    if not h.db_path.exists():
        fail(f"{h.db_path} does not exist", name=Code.HOME_INVALID.name, code=int(Code.HOME_INVALID))
    with progress("verifying blocks") as update:
        report = verify_file(h.db_path, update, engine=h.config().engine, reset_head=reset_head)

    def human() -> None:
        if report.ok:
            rate = f"{report.txs / report.seconds:,.0f} tx/s" if report.seconds else ""
            say(f"[green]ledger intact[/]: {report.blocks} blocks, {report.txs} transactions, height "
                f"{report.height} ({report.seconds:.2f} s, {rate}); head record: {report.head_record or 'not checked'}")
        else:
            where = "" if report.bad_height is None else f" at height {report.bad_height}"
            say(f"[bold red]ledger damaged{where}[/] ({report.code}): {report.problem}")

    emit(report.to_json(), human)
    if not report.ok:
        raise typer.Exit(EXIT_USAGE)


@proof_app.command("verify")
def proof_verify(
    proof: Annotated[Path, typer.Argument(help="Proof bundle JSON (as returned by GET /v1/txs/{hash}).")],
    genesis: Annotated[Path, typer.Option(help="The consortium's genesis file.")],
) -> None:
    """Check a transaction's inclusion proof offline against the consortium's genesis (exit 4 if invalid)."""
    from careledger.core.proofs import ProofInvalid, verify_proof

    g = load_genesis(expand(genesis))
    try:
        doc = json.loads(read_file(proof))
    except ValueError as exc:
        fail(f"{proof} is not JSON: {exc}", name=Code.MALFORMED_ENCODING.name, code=int(Code.MALFORMED_ENCODING))
    bundle = doc.get("proof", doc) if isinstance(doc, dict) else doc
    try:
        receipt = verify_proof(bundle, g.chain_id, [v.pub_key for v in g.validators], g.crypto_suite)
    except ProofInvalid as exc:
        reason = exc.message
        emit({"valid": False, "reason": reason}, lambda: say(f"[bold red]proof invalid[/]: {reason}"))
        raise typer.Exit(EXIT_NEGATIVE) from None
    emit({"valid": True, "tx": receipt.tx, "index": receipt.index, "height": bundle["header"]["height"],
          "code": receipt.code},
         lambda: say(f"[green]proof valid[/]: tx {receipt.tx} is #{receipt.index} of block "
                     f"{bundle['header']['height']} with receipt code {receipt.code}"))


def _register_subcommands() -> None:
    from careledger.cli import abci as abci_cli
    from careledger.cli import backup as backup_cli
    from careledger.cli import bench as bench_cli
    from careledger.cli import claims as claims_cli
    from careledger.cli import consortium as consortium_cli
    from careledger.cli import demo as demo_cli
    from careledger.cli import ledger as ledger_cli
    from careledger.cli import net as net_cli
    from careledger.cli import records as records_cli
    from careledger.cli import research as research_cli
    from careledger.cli import supply as supply_cli
    from careledger.cli import trials as trials_cli

    app.command("backup")(backup_cli.backup)
    app.command("restore")(backup_cli.restore)
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
    app.add_typer(research_cli.research_app, name="research")
    app.add_typer(trials_cli.trials_app, name="trials")
    app.add_typer(abci_cli.abci_app, name="abci")
    app.add_typer(claims_cli.claims_app, name="claims")
    app.add_typer(consortium_cli.consortium_app, name="consortium")


_register_subcommands()


# -- the entry point ------------------------------------------------------------------------------------------

JSON_HELP = ("--json (any command): print exactly one JSON document on stdout and nothing else.  "
             "--passphrase-file FILE (any command): the passphrase of encrypted key files (else "
             "CARELEDGER_PASSPHRASE, else a prompt on a terminal).")


def _conventions(command: Any) -> None:
    """Put the exit-status table and the ``--json`` note in the help of ``command`` and everything under it."""
    command.epilog = f"{JSON_HELP}  {EXIT_HELP}"
    for sub in getattr(command, "commands", {}).values():
        _conventions(sub)


def build_command() -> Any:
    """The ``careledger`` command tree (a Typer/Click command), with the conventions in every help."""
    command = typer.main.get_command(app)
    _conventions(command)
    return command


def split_json_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without its ``--json`` flags (before any ``--``), and whether there was one."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--json"]
    return head + argv[end:], len(head) != end


def _error(name: str, code: int, message: str, status: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {name} ({code}): {message}", highlight=False)
    if json_mode():
        print_json({"error": {"code": code, "message": message, "name": name}, "exit_status": status})
    sys.exit(status)


UNAVAILABLE = {int(Code.NODE_UNAVAILABLE), int(Code.TIMEOUT), int(Code.MEMPOOL_FULL)}


def main(argv: list[str] | None = None) -> None:
    """Run ``careledger`` with ``argv`` (default: the process's arguments); exits with the documented status."""
    from typer._click.exceptions import ClickException

    from careledger.abci.cometbft import CometbftSetupError
    from careledger.client import ClientError
    from careledger.keycrypt import WrongPassphrase
    from careledger.net.procs import NetError

    args, as_json = split_json_flag(list(sys.argv[1:] if argv is None else argv))
    set_json_mode(as_json)
    set_passphrase_file(None)
    try:
        args, passphrase_file = split_passphrase_file(args)
        set_passphrase_file(passphrase_file)
        status = build_command().main(args=args, prog_name="careledger", standalone_mode=False)
    except typer.Exit as exc:
        status = exc.exit_code
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _error("ABORTED", int(Code.BAD_REQUEST), "interrupted", EXIT_ERROR)
    except CliError as exc:
        _error(exc.name, exc.code, exc.message, exc.exit_status)
    except ClientError as exc:
        _error(exc.name, exc.code, exc.message, EXIT_UNAVAILABLE if exc.code in UNAVAILABLE else EXIT_ERROR)
    except LedgerError as exc:
        _error(exc.code.name, int(exc.code), exc.message,
               EXIT_UNAVAILABLE if int(exc.code) in UNAVAILABLE else EXIT_ERROR)
    except HomeError as exc:
        _error(Code.HOME_INVALID.name, int(Code.HOME_INVALID), str(exc), EXIT_ERROR)
    except WrongPassphrase as exc:
        _error(Code.WRONG_PASSPHRASE.name, int(Code.WRONG_PASSPHRASE), str(exc), EXIT_ERROR)
    except KeyFileError as exc:
        _error(Code.KEY_FILE_INVALID.name, int(Code.KEY_FILE_INVALID), str(exc), EXIT_ERROR)
    except (NetError, CometbftSetupError) as exc:
        _error(Code.NETWORK_INVALID.name, int(Code.NETWORK_INVALID), str(exc), EXIT_ERROR)
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _error(Code.FILE_UNREADABLE.name, int(Code.FILE_UNREADABLE), f"{exc.strerror or exc}{where}", EXIT_ERROR)
    sys.exit(status if isinstance(status, int) else EXIT_OK)
