"""Shared CLI helpers: consoles, error exits, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from careledger.core.errors import LedgerError

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(Path("~/.careledger"), "--home", help="Node home directory.", show_default=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def fail_ledger(exc: LedgerError) -> NoReturn:
    fail(f"{exc.code.name} ({int(exc.code)}): {exc.message}")


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def expand(path: Path) -> Path:
    return path.expanduser().resolve()


def node_url(home: Path, url: str | None) -> str:
    """The API to talk to: ``url`` when given, else the one the home's configuration names."""
    from careledger.node.home import Home, HomeError

    if url:
        return url
    try:
        return f"http://{Home(expand(home)).config().api}"
    except HomeError as exc:
        fail(str(exc))


def load_key(home: Path, name: str) -> Any:
    """A signing key: a key file path, or the name of a key in HOME/keys (also for ``--as``)."""
    from careledger.keys import KeyFileError, read_key

    candidate = Path(name).expanduser()
    path = candidate if candidate.suffix == ".json" and candidate.exists() else expand(home) / "keys" / f"{name}.json"
    try:
        return read_key(path)
    except KeyFileError as exc:
        fail(str(exc))


def print_receipt(label: str, result: dict[str, Any]) -> None:
    """Print a committed transaction's receipt; exit 3 when its contract refused it."""
    receipt = result.get("receipt", {})
    colour = "green" if receipt.get("code") == 0 else "red"
    console.print(f"[{colour}]{label}[/] height={result.get('height')} tx={result.get('tx_hash')} "
                  f"code={receipt.get('code')} {receipt.get('name', '')} {receipt.get('message', '')}")
    if receipt.get("result") is not None:
        print_json(receipt["result"])
    if receipt.get("code") != 0:
        raise typer.Exit(3)
