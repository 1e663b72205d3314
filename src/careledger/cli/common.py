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
