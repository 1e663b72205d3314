"""What every ``careledger`` command shares: output (human or ``--json``), errors and their exit status,
tables that never truncate, progress on stderr, the node to talk to and the key to sign with.

Conventions (docs/cli.md, "Conventions"):

* a command prints its result on stdout; with ``--json`` (accepted by every command) it prints
  exactly one JSON document there and nothing else; notes and progress go to stderr;
* when stdout is not a terminal, tables are printed as tab-separated lines with full values (ids and
  URLs can be pasted into the next command); on a terminal, long values fold instead of being cut;
* every error is one line on stderr, ``error: NAME (code): message``, and the exit status says what
  kind of error it was (:data:`EXIT_STATUS`); with ``--json`` the error is also the JSON document on
  stdout. No user error prints a traceback;
* every command that reads a key accepts an encrypted key file (version 2): its passphrase comes from
  ``--passphrase-file FILE`` (accepted by every command), ``CARELEDGER_PASSPHRASE``, or a prompt
  on the terminal (:func:`passphrase_for`).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from careledger.core.errors import Code, LedgerError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # also: `careledger verify` found damage
EXIT_TX_FAILED = 3
EXIT_NEGATIVE = 4
EXIT_UNAVAILABLE = 5

EXIT_STATUS = {
    EXIT_OK: "success",
    EXIT_ERROR: "an error, printed as `error: NAME (code): message`",
    EXIT_USAGE: "the command line is wrong, or `careledger verify` found damage",
    EXIT_TX_FAILED: "a transaction was committed but its contract refused it (receipt code > 0)",
    EXIT_NEGATIVE: "a check answered no: a pack NOT VERIFIED, a proof or dataset that does not verify",
    EXIT_UNAVAILABLE: "the node could not be reached, or did not answer in time",
}
EXIT_HELP = "Exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_STATUS.items()) + "."

HomeOption = typer.Option(Path("~/.careledger"), "--home", help="Node home directory.", show_default=True)


class CliError(Exception):
    """A user-facing error: one line on stderr and an exit status, never a traceback."""

    def __init__(self, message: str, *, name: str = "ERROR", code: int = int(Code.BAD_REQUEST),
                 exit_status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message, self.name, self.code, self.exit_status = message, name, code, exit_status


# -- output ---------------------------------------------------------------------------------------------

_json_mode = False


def set_json_mode(flag: bool) -> None:
    global _json_mode
    _json_mode = flag


def json_mode() -> bool:
    """Whether this run prints one JSON document (``--json``) instead of human output."""
    return _json_mode


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def emit(doc: Any, human: Callable[[], None] | None = None) -> None:
    """The command's result: ``doc`` as JSON under ``--json``; else ``human()`` (or ``doc`` as JSON)."""
    if _json_mode or human is None:
        print_json(doc)
    else:
        human()


def note(message: str) -> None:
    """A line that is not the result (what happened, what to do next): stderr, so stdout stays clean."""
    err_console.print(message, highlight=False)


def say(message: str) -> None:
    """A human result line on stdout (never under ``--json``: pass it as ``emit(doc, lambda: say(...))``)."""
    console.print(message, highlight=False)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> None:
    """A table: folded, never cut, on a terminal; tab-separated full values (with a header line) otherwise."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not console.is_terminal:
        sys.stdout.write("\t".join(headers) + "\n")
        for row in cells:
            sys.stdout.write("\t".join(c.replace("\t", " ").replace("\n", " ") for c in row) + "\n")
        return
    table = Table(*headers, title=title)
    for column in table.columns:
        column.overflow = "fold"
    for row in cells:
        table.add_row(*row)
    console.print(table)


@contextmanager
def progress(label: str, total: int | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr for long work; yields ``update(done, total)``. Hidden when stderr is not
    a terminal or under ``--json``."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True,
                  disable=_json_mode or not err_console.is_terminal) as bar:
        task: TaskID = bar.add_task(label, total=total)

        def update(done: int, new_total: int | None = None) -> None:
            bar.update(task, completed=done, total=new_total if new_total is not None else total)

        yield update


@contextmanager
def activity(label: str) -> Iterator[Callable[[str], None]]:
    """A live status line on stderr for long work whose size is not known in advance (benchmark phases,
    a demo's chapters); yields ``update(message)``. On a terminal it is one line that updates in place;
    otherwise each message is a line of its own; under ``--json`` nothing is shown."""
    if _json_mode:
        yield lambda message: None
    elif not err_console.is_terminal:
        yield lambda message: note(f"{label}: {message}")
    else:
        with err_console.status(label) as status:
            yield lambda message: status.update(f"{label}: {message}")


# -- errors ---------------------------------------------------------------------------------------------

def fail(message: str, exit_status: int = EXIT_ERROR, *, name: str = "ERROR",
         code: int = int(Code.BAD_REQUEST)) -> NoReturn:
    raise CliError(message, name=name, code=code, exit_status=exit_status)


def fail_ledger(exc: LedgerError) -> NoReturn:
    raise exc


def expand(path: Path) -> Path:
    return path.expanduser().resolve()


def read_file(path: Path, limit: int | None = None) -> bytes:
    """A user's input file; FILE_UNREADABLE (exit 1) when missing or unreadable, OVERSIZED past ``limit``
    (checked before the file is read)."""
    p = expand(path)
    try:
        if limit is not None and p.stat().st_size > limit:
            fail(f"{path} is {p.stat().st_size:,} bytes; the limit is {limit:,}", name=Code.OVERSIZED.name,
                 code=int(Code.OVERSIZED))
        return p.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", name=Code.FILE_UNREADABLE.name,
             code=int(Code.FILE_UNREADABLE))


def node_url(home: Path, url: str | None) -> str:
    """The API to talk to: ``url`` when given, else the one the home's configuration names."""
    from careledger.node.home import Home

    if url:
        return url
    return f"http://{Home(expand(home)).config().api}"


def key_path(home: Path, name: str) -> Path:
    """A key file path as given, or the file of the key ``name`` in HOME/keys."""
    candidate = Path(name).expanduser()
    return candidate if candidate.suffix == ".json" and candidate.exists() else expand(home) / "keys" / f"{name}.json"


def load_key(home: Path, name: str) -> Any:
    """A signing key: a key file path, or the name of a key in HOME/keys (also for ``--as``). An
    encrypted key file (version 2) is opened with :func:`passphrase_for`."""
    return open_key_file(key_path(home, name))


def open_key_file(path: Path) -> Any:
    """The key in the file at ``path``, of either version (a passphrase is asked for only when the
    file is encrypted); WRONG_PASSPHRASE when the passphrase does not open it."""
    from careledger.keycrypt import WrongPassphrase
    from careledger.keys import read_key

    try:
        return read_key(path, lambda: passphrase_for(path.name))
    except WrongPassphrase as exc:
        fail(str(exc), name=Code.WRONG_PASSPHRASE.name, code=int(Code.WRONG_PASSPHRASE))


# -- passphrases ----------------------------------------------------------------------------------------

PASSPHRASE_ENV = "CARELEDGER_PASSPHRASE"
_passphrase_file: Path | None = None


def set_passphrase_file(path: Path | None) -> None:
    """``--passphrase-file`` (any command): where passphrases are read from."""
    global _passphrase_file
    _passphrase_file = path


def passphrase_for(what: str, confirm: bool = False) -> str:
    """The passphrase for ``what`` (a key file's name): the first line of ``--passphrase-file``, else
    ``CARELEDGER_PASSPHRASE``, else asked on the terminal (twice when ``confirm``, for a new file).
    KEY_FILE_INVALID when none can be had (no file, no variable, no terminal) or it is empty."""
    if _passphrase_file is not None:
        text = read_file(_passphrase_file, limit=64 * 1024).decode("utf-8", errors="strict")
        secret = text.splitlines()[0] if text else ""
    elif os.environ.get(PASSPHRASE_ENV):
        secret = os.environ[PASSPHRASE_ENV]
    elif sys.stdin.isatty() and not _json_mode:
        secret = getpass.getpass(f"passphrase for {what}: ")
        if confirm and getpass.getpass(f"passphrase for {what} (again): ") != secret:
            fail("the two passphrases differ", name=Code.KEY_FILE_INVALID.name, code=int(Code.KEY_FILE_INVALID))
    else:
        fail(f"{what} is encrypted: give its passphrase with --passphrase-file FILE or {PASSPHRASE_ENV}, or run "
             "the command on a terminal", name=Code.KEY_FILE_INVALID.name, code=int(Code.KEY_FILE_INVALID))
    if not secret:
        fail("the passphrase is empty", name=Code.KEY_FILE_INVALID.name, code=int(Code.KEY_FILE_INVALID))
    return secret


def split_passphrase_file(argv: list[str]) -> tuple[list[str], Path | None]:
    """``argv`` without ``--passphrase-file PATH`` (or ``--passphrase-file=PATH``) before any ``--``,
    and that path."""
    end = argv.index("--") if "--" in argv else len(argv)
    head, found, i = [], None, 0
    while i < end:
        arg = argv[i]
        if arg == "--passphrase-file":
            if i + 1 >= end:
                fail("--passphrase-file needs a file", EXIT_USAGE)
            found, i = Path(argv[i + 1]), i + 2
            continue
        if arg.startswith("--passphrase-file="):
            found = Path(arg.partition("=")[2])
        else:
            head.append(arg)
        i += 1
    return head + argv[end:], found


def print_receipt(label: str, result: dict[str, Any]) -> None:
    """A committed transaction's outcome; exits 3 when its contract refused it."""
    receipt = result.get("receipt", {})

    def human() -> None:
        colour = "green" if receipt.get("code") == 0 else "red"
        say(f"[{colour}]{label}[/] height={result.get('height')} tx={result.get('tx_hash')} "
            f"code={receipt.get('code')} {receipt.get('name', '')} {receipt.get('message', '')}".rstrip())
        if receipt.get("result") is not None:
            print_json(receipt["result"])

    emit(result, human)
    if receipt.get("code") != 0:
        raise typer.Exit(EXIT_TX_FAILED)
