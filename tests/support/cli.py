"""Running ``careledger`` in process, exactly as its console script does (``careledger.cli.main:main``:
the ``--json`` flag, the error handler and the exit statuses included)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from careledger.cli.main import main


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*argv: str) -> CliResult:
    """Run ``careledger ARGV`` in this process; never raises for a command's own failure."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code
    status = code if isinstance(code, int) else (0 if code is None else 1)
    result = CliResult(status, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.output, result.output
    return result
