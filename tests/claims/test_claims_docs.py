"""docs/claims.md's examples run, in order, against a real node: every ``console``, ``sh`` and ``python``
block not marked ``<!-- not run: REASON -->``, by the rules README.md states for the documentation (a
``$`` line runs in bash and must exit 0 unless it ends with ``# exits N``; one ending in ``&`` runs in the
background; port 8700 becomes a free port; each python block runs as a script; HOME is the sandbox)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "claims.md"
FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:\s*\S[^>]*-->\s*$")
EXITS = re.compile(r"\s#\s*exits\s+(\d+)\s*$")


def blocks() -> list[tuple[int, str, str]]:
    text = DOC.read_text(encoding="utf-8")
    out = []
    for match in FENCE.finditer(text):
        language = match[1].lower()
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if language in ("console", "sh", "bash", "python") and not NOT_RUN.search(before):
            out.append((text.count("\n", 0, match.start()) + 1, language, match[2]))
    return out


def commands(language: str, text: str) -> list[str]:
    lines = [line[2:] if language == "console" else line for line in text.splitlines()
             if (line.startswith("$ ") if language == "console" else line.strip() and not line.lstrip().startswith("#"))
             or (language == "console" and line.startswith("    "))]
    joined: list[str] = []
    for line in lines:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        elif not line.startswith("    "):
            joined.append(line)
    return joined


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def test_the_claims_examples_run(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "COLUMNS": "120",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    background: list[subprocess.Popen[bytes]] = []
    ran = 0
    try:
        for line, language, written_text in blocks():
            text = written_text.replace("8700", str(port))
            if language == "python":
                script = tmp_path / f"example_{line}.py"
                script.write_text(text, encoding="utf-8")
                proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                                      timeout=300, check=False)
                assert proc.returncode == 0, f"docs/claims.md:{line}: {proc.stderr.decode()[-3000:]}"
                ran += 1
                continue
            for written in commands(language, text):
                expected = EXITS.search(written)
                command = EXITS.sub("", written).rstrip()
                if command.endswith("&"):
                    background.append(subprocess.Popen(["bash", "-c", command[:-1]], cwd=tmp_path, env=env,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                       start_new_session=True))
                    wait_for(port)
                    continue
                proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                      timeout=300, check=False)
                assert proc.returncode == (int(expected[1]) if expected else 0), (
                    f"docs/claims.md:{line}: `{command}` exited {proc.returncode}:\n"
                    f"{proc.stdout.decode()[-1500:]}\n{proc.stderr.decode()[-1500:]}")
                ran += 1
    finally:
        for server in background:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert ran >= 25
