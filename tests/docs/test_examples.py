"""The documentation's examples run: every ``console``, ``sh`` and ``python`` block of README.md and docs/.

Each document runs in a sandbox of its own (an empty directory as the working directory and ``HOME``,
``.venv/bin`` and ``.tools/bin`` first on ``PATH``), its blocks in the order they appear:

* ``console``: each ``$ command`` line runs in ``bash`` (a trailing ``\\`` continues it on the next
  line); the lines after it are the output a reader sees and are not compared;
* ``sh`` / ``bash``: every line that is not blank or a comment is a command;
* ``python``: the block runs as a script.

A command must exit 0, unless it ends with a comment ``# exits N``. A command ending in ``&`` runs in
the background until the document's last block has run; the next command waits until the API port
the document names answers. Port 8700 in a document is replaced by a free port, so documents can run
side by side. A block that is not meant to run says why in a comment on the line before its fence:
``<!-- not run: REASON -->``; every other block of those languages runs (README.md's "Documentation"
section says so to readers).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"console", "sh", "bash", "python"}
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S[^>]*?)\s*-->\s*$")
EXITS = re.compile(r"\s#\s*exits\s+(\d+)\s*$")
BACKGROUND = re.compile(r"&\s*(#[^'\"]*)?$")  # a trailing `&`, perhaps followed by a comment
DOC_PORT = 8700


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    language: str
    text: str
    skipped: str | None  # the reason given in ``<!-- not run: … -->``, if any


def blocks_of(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    out = []
    for match in FENCE.finditer(text):
        language = match[1].lower()
        if language not in RUNNABLE:
            continue
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = NOT_RUN.search(before)
        out.append(Block(doc, text.count("\n", 0, match.start()) + 1, language, match[2],
                         reason[1] if reason else None))
    return out


def commands_of(block: Block) -> list[str]:
    """The shell commands a console or sh block runs, continuation lines joined."""
    lines = block.text.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")] if not any(
            line.endswith("\\") for line in lines) else _console_with_continuations(lines)
    else:
        lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line)
    return joined


def _console_with_continuations(lines: list[str]) -> list[str]:
    out: list[str] = []
    continuing = False
    for line in lines:
        if line.startswith("$ "):
            out.append(line[2:])
            continuing = line.endswith("\\")
        elif continuing:
            out.append(line)
            continuing = line.endswith("\\")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {timeout:.0f} s")


class Sandbox:
    """Where one document's examples run: its own directory, HOME and background processes."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        bin_dirs = [str(Path(sys.executable).parent), str(ROOT / ".tools" / "bin")]
        self.env = {**os.environ, "HOME": str(path), "PATH": os.pathsep.join([*bin_dirs, os.environ["PATH"]]),
                    "COLUMNS": "120", "CARELEDGER_EXAMPLES": "1"}
        self.background: list[subprocess.Popen[bytes]] = []

    def localise(self, text: str) -> str:
        return text.replace(str(DOC_PORT), str(self.port))

    def run(self, block: Block) -> None:
        where = f"{block.doc.relative_to(ROOT) if block.doc.is_relative_to(ROOT) else block.doc.name}:{block.line}"
        if block.language == "python":
            script = self.path / f"example_{block.line}.py"
            script.write_text(self.localise(block.text), encoding="utf-8")
            proc = subprocess.run([sys.executable, str(script)], cwd=self.path, env=self.env, capture_output=True,
                                  timeout=300, check=False)
            assert proc.returncode == 0, f"{where}: python block failed:\n{proc.stderr.decode()[-3000:]}"
            return
        for written in commands_of(block):
            localised = self.localise(written)
            expected = EXITS.search(localised)
            status = int(expected[1]) if expected else 0
            command = EXITS.sub("", localised).rstrip()
            background = BACKGROUND.search(command)
            if background:
                self.background.append(subprocess.Popen(
                    ["bash", "-c", command[:background.start()]], cwd=self.path, env=self.env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
                wait_for_port(self.port)
                continue
            proc = subprocess.run(["bash", "-c", command], cwd=self.path, env=self.env, capture_output=True,
                                  timeout=300, check=False)
            assert proc.returncode == status, (
                f"{where}: `{command}` exited {proc.returncode}, expected {status}:\n"
                f"{proc.stdout.decode()[-1500:]}\n{proc.stderr.decode()[-1500:]}")

    def close(self) -> None:
        for proc in self.background:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


RUN = [doc for doc in DOCS if any(b.skipped is None for b in blocks_of(doc))]


@pytest.mark.parametrize("doc", RUN, ids=lambda d: str(d.relative_to(ROOT)))
def test_the_examples_run(doc: Path, tmp_path: Path) -> None:
    if shutil.which("careledger", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("careledger is not installed in this environment (make venv)")
    sandbox = Sandbox(tmp_path, free_port())
    try:
        for block in blocks_of(doc):
            if block.skipped is None:
                sandbox.run(block)
    finally:
        sandbox.close()


def test_every_block_that_does_not_run_says_why() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"<!--\s*not run:?\s*-->", text):
            pytest.fail(f"{doc.relative_to(ROOT)}: a 'not run' marker without a reason at offset {match.start()}")


def test_the_rules_are_what_the_harness_does(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("intro\n\n```console\n$ echo hi \\\n  there\nhi there\n$ false  # exits 1\n```\n\n"
                   "<!-- not run: needs a network -->\n```sh\ncurl http://example.org\n```\n\n```json\n{}\n```\n")
    blocks = blocks_of(doc)
    assert [(b.language, b.skipped) for b in blocks] == [("console", None), ("sh", "needs a network")]
    assert commands_of(blocks[0]) == ["echo hi  there", "false  # exits 1"]
    sandbox = Sandbox(tmp_path, free_port())
    sandbox.run(blocks[0])
    with pytest.raises(AssertionError, match="exited 1, expected 0"):
        sandbox.run(Block(doc, 1, "console", "$ false\n", None))
    assert BACKGROUND.search("careledger node start --home ./node1 &   # HTTP API on 127.0.0.1:8700")
    assert not BACKGROUND.search("echo 'a & b'  # not in the background")
