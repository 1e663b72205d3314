"""Encrypted key files through the command line (version 2: scrypt + AES-256-GCM, careledger.keycrypt):
``keys new --encrypt``, ``keys encrypt``, every command that signs opening them with a passphrase from
``--passphrase-file``, ``CARELEDGER_PASSPHRASE`` or the terminal, and ``node start`` with an encrypted
node key. A wrong or missing passphrase is refused with a stable code and nothing is submitted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.cli.main import main
from careledger.keycrypt import decrypt_key
from careledger.keys import read_key
from careledger.node.home import Home
from careledger.node.solo import Node

BIN = Path(sys.executable).with_name("careledger")
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def careledger(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("CARELEDGER_PASSPHRASE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: nobody to ask

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        out = capsys.readouterr()
        assert "Traceback" not in out.err + out.out
        code = info.value.code
        return (code if isinstance(code, int) else 0), out.out, out.err

    return run


@pytest.fixture
def api(node: Node) -> Iterator[BackgroundServer]:
    server = serve_in_thread(node)
    try:
        yield server
    finally:
        server.stop()


def passphrase_file(tmp_path: Path, text: str = PASSPHRASE + "\n") -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(text)
    return path


def test_keys_new_encrypt_writes_a_version_2_file(careledger: Any, node_home: Home,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_PASSPHRASE", PASSPHRASE)
    status, out, err = careledger("keys", "new", "nurse", "--encrypt", "--home", str(node_home.path), "--json")
    assert status == 0, err
    doc = json.loads(out)
    path = Path(doc["path"])
    assert doc["encrypted"] is True
    sealed = json.loads(path.read_text())
    assert sealed["version"] == 2 and "seed" not in sealed and sealed["public_key"] == doc["public_key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert decrypt_key(sealed, PASSPHRASE).public_hex == doc["public_key"]
    monkeypatch.delenv("CARELEDGER_PASSPHRASE")
    # the public half is read without any passphrase
    status, out, _ = careledger("keys", "show", "nurse", "--home", str(node_home.path), "--json")
    assert status == 0 and json.loads(out)["public_key"] == doc["public_key"] and json.loads(out)["encrypted"]
    status, out, _ = careledger("keys", "list", "--home", str(node_home.path), "--json")
    assert {"name": "nurse", "public_key": doc["public_key"], "encrypted": True} in json.loads(out)


def test_keys_encrypt_seals_an_existing_key_in_place(careledger: Any, node_home: Home, tmp_path: Path) -> None:
    path = node_home.keys_dir / "hospital-admin.json"
    before = read_key(path)
    status, out, err = careledger("keys", "encrypt", "hospital-admin", "--home", str(node_home.path),
                                  "--passphrase-file", str(passphrase_file(tmp_path)), "--json")
    assert status == 0, err
    assert json.loads(out)["public_key"] == before.public_hex
    sealed = json.loads(path.read_text())
    assert sealed["version"] == 2 and sealed["name"] == "hospital-admin"
    assert before.seed.hex() not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert decrypt_key(sealed, PASSPHRASE).seed == before.seed
    assert not list(node_home.keys_dir.glob(".*.tmp"))
    status, _, err = careledger("keys", "encrypt", "hospital-admin", "--home", str(node_home.path),
                                "--passphrase-file", str(passphrase_file(tmp_path)))
    assert status == 1 and "KEY_FILE_INVALID (911)" in err and "already encrypted" in err


def test_signing_commands_open_encrypted_keys(careledger: Any, api: BackgroundServer, node_home: Home,
                                              node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = str(node_home.path)
    assert careledger("keys", "encrypt", "hospital-admin", "--home", home,
                      "--passphrase-file", str(passphrase_file(tmp_path)))[0] == 0
    enrol = ("identity", "enrol", "hospital", "cd" * 32, "--role", "physician", "--as", "hospital-admin",
             "--home", home, "--url", api.url)
    height = node.head.height
    # no passphrase anywhere and no terminal: refused before anything is sent
    status, _, err = careledger(*enrol)
    assert (status, "KEY_FILE_INVALID (911)" in err, "CARELEDGER_PASSPHRASE" in err) == (1, True, True)
    # a wrong passphrase
    status, out, err = careledger(*enrol, "--passphrase-file", str(passphrase_file(tmp_path, "wrong\n")), "--json")
    assert status == 1 and "WRONG_PASSPHRASE (934)" in err
    assert json.loads(out)["error"]["name"] == "WRONG_PASSPHRASE"
    assert node.head.height == height  # nothing was submitted
    # the right one, from the file (first line; the flag may come anywhere) ...
    status, out, err = careledger("--passphrase-file", str(passphrase_file(tmp_path)), *enrol, "--json")
    assert status == 0, err
    assert json.loads(out)["receipt"]["code"] == 0
    # ... and from the environment
    monkeypatch.setenv("CARELEDGER_PASSPHRASE", PASSPHRASE)
    status, out, err = careledger("identity", "enrol", "hospital", "ce" * 32, "--role", "nurse",
                                  "--as", "hospital-admin", "--home", home, "--url", api.url, "--json")
    assert status == 0 and json.loads(out)["receipt"]["code"] == 0, err


def _on_a_terminal(argv: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``careledger ARGV`` with a pseudo-terminal as its controlling terminal and standard streams,
    typing each of ``answers`` when asked for a passphrase; returns (exit status, what the terminal showed)."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CARELEDGER_PASSPHRASE"}
    # a new session whose controlling terminal is the pseudo-terminal, then careledger in its place
    wrapper = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
               "os.execv(sys.argv[1], sys.argv[1:])")
    proc = subprocess.Popen([sys.executable, "-c", wrapper, str(BIN), *argv], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, env={**env, "COLUMNS": "300", "NO_COLOR": "1"})
    os.close(slave)
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            os.set_blocking(master, False)
            try:
                shown += os.read(master, 4096)
            except (BlockingIOError, OSError):
                time.sleep(0.05)
            if pending and shown.count(b"passphrase for") > len(answers) - len(pending):
                os.write(master, pending.pop(0).encode() + b"\n")
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            shown += os.read(master, 65536)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, shown.decode(errors="replace")


def test_the_passphrase_is_asked_on_a_terminal(tmp_path: Path) -> None:
    key_file = tmp_path / "k.json"
    status, shown = _on_a_terminal(["keys", "new", "k", "--encrypt", "--out", str(key_file)], [PASSPHRASE, PASSPHRASE])
    assert status == 0, shown
    assert PASSPHRASE not in shown  # not echoed
    assert decrypt_key(json.loads(key_file.read_text()), PASSPHRASE)
    status, shown = _on_a_terminal(["keys", "new", "k2", "--encrypt", "--out", str(tmp_path / "k2.json")],
                                   [PASSPHRASE, "something else"])
    assert status == 1 and "KEY_FILE_INVALID" in shown and "differ" in shown
    assert not (tmp_path / "k2.json").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_node_start_opens_an_encrypted_node_key(node_home: Home, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CARELEDGER_PASSPHRASE"}
    key = node_home.node_key_path
    public = node_home.node_public_key()
    sealed = subprocess.run([str(BIN), "keys", "encrypt", str(key), "--passphrase-file",
                             str(passphrase_file(tmp_path))], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads(key.read_text())["version"] == 2
    port = _free_port()
    argv = [str(BIN), "node", "start", "--home", str(node_home.path), "--api", f"127.0.0.1:{port}"]
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60,
                             check=False)
    assert refused.returncode == 1 and "KEY_FILE_INVALID (911)" in refused.stderr, refused.stderr
    proc = subprocess.Popen(argv, env={**env, "CARELEDGER_PASSPHRASE": PASSPHRASE}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the node did not start"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/status").json()["node_key"] == public
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
