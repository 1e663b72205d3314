"""The command line's conventions (docs/cli.md, "Conventions"), against a real node over real HTTP.

* every ordinary error is one line, ``error: NAME (code): message``, with its documented exit status
  and never a traceback: unknown home, unknown hash, unknown height, unknown key, node down, missing
  file, a usage error;
* ``--json`` prints exactly one JSON document on stdout and nothing else, results and errors alike;
* tables printed to a pipe keep full values; ``--version`` works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.cli.main import main, split_json_flag
from careledger.node.home import Home

ERROR_LINE = re.compile(r"^error: ([A-Z_]+) \((\d+)\): .+$", re.MULTILINE)


@dataclass
class Run:
    status: int
    out: str
    err: str

    def error(self) -> tuple[str, int]:
        match = ERROR_LINE.search(self.err)
        assert match, f"no error line in {self.err!r}"
        return match[1], int(match[2])


@pytest.fixture
def careledger(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Run:
        with pytest.raises(SystemExit) as info:
            main(list(argv))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and "Traceback" not in captured.out
        code = info.value.code
        return Run(code if isinstance(code, int) else 0, captured.out, captured.err)

    return run


@pytest.fixture
def api(node: Any) -> Iterator[BackgroundServer]:
    server = serve_in_thread(node)
    try:
        yield server
    finally:
        server.stop()


def test_unknown_home(careledger: Any, tmp_path: Path) -> None:
    run = careledger("status", "--home", str(tmp_path / "nowhere"))
    assert run.status == 1
    assert run.error() == ("HOME_INVALID", 910)


def test_unknown_hash_and_unknown_height(careledger: Any, api: BackgroundServer) -> None:
    run = careledger("tx", "get", "ab" * 32, "--url", api.url)
    assert (run.status, run.error()) == (1, ("NOT_FOUND", 401))
    run = careledger("tx", "block", "--height", "999999", "--url", api.url)
    assert (run.status, run.error()) == (1, ("NOT_FOUND", 401))


def test_unknown_key(careledger: Any, api: BackgroundServer, node_home: Home) -> None:
    run = careledger("identity", "enrol", "hospital", "ab" * 32, "--role", "physician", "--as", "nobody",
                     "--home", str(node_home.path), "--url", api.url)
    assert (run.status, run.error()) == (1, ("KEY_FILE_INVALID", 911))


def test_node_down(careledger: Any) -> None:
    run = careledger("status", "--url", "http://127.0.0.1:9")
    assert (run.status, run.error()) == (5, ("NODE_UNAVAILABLE", 904))


def test_missing_files(careledger: Any, node_home: Home, tmp_path: Path) -> None:
    run = careledger("proof", "verify", str(tmp_path / "nope.json"), "--genesis", str(node_home.genesis_path))
    assert (run.status, run.error()) == (1, ("FILE_UNREADABLE", 912))
    run = careledger("records", "import", str(tmp_path / "nope.json"), "--patient", "pt-" + "0" * 32,
                     "--custodian", "hospital", "--as", "hospital-admin", "--home", str(node_home.path),
                     "--url", "http://127.0.0.1:9")
    assert (run.status, run.error()) == (1, ("FILE_UNREADABLE", 912))


def test_usage_error_exits_2(careledger: Any) -> None:
    run = careledger("tx", "get")
    assert run.status == 2
    assert "Missing argument" in run.err


def test_json_is_one_document_on_stdout(careledger: Any, api: BackgroundServer, node_home: Home) -> None:
    run = careledger("--json", "identity", "enrol", "hospital", "cd" * 32, "--role", "physician",
                     "--as", "hospital-admin", "--home", str(node_home.path), "--url", api.url)
    assert run.status == 0, run.err
    doc = json.loads(run.out)  # exactly one document: anything else beside it would not parse
    assert doc["receipt"]["code"] == 0 and doc["height"] >= 1
    for argv in (["status", "--url", api.url], ["identity", "orgs", "--url", api.url],
                 ["keys", "list", "--home", str(node_home.path)], ["--version"],
                 ["tx", "block", "--height", "latest", "--url", api.url]):
        run = careledger(*argv, "--json")
        assert run.status == 0, run.err
        json.loads(run.out)


def test_json_errors_are_json_too(careledger: Any) -> None:
    run = careledger("status", "--url", "http://127.0.0.1:9", "--json")
    assert run.status == 5
    assert json.loads(run.out) == {"error": {"code": 904, "message": json.loads(run.out)["error"]["message"],
                                             "name": "NODE_UNAVAILABLE"}, "exit_status": 5}


def test_refused_transaction_exits_3(careledger: Any, api: BackgroundServer, node_home: Home) -> None:
    run = careledger("identity", "enrol", "hospital", "ef" * 32, "--role", "inspector", "--as", "hospital-admin",
                     "--home", str(node_home.path), "--url", api.url)
    assert run.status == 3
    assert "ROLE_NOT_ALLOWED" in run.out


def test_tables_to_a_pipe_keep_full_values(careledger: Any, node_home: Home) -> None:
    run = careledger("keys", "list", "--home", str(node_home.path))
    assert run.status == 0
    lines = run.out.splitlines()
    assert lines[0] == "name\tpublic key\tencrypted"
    assert all(re.fullmatch(r"[^\t]+\t[0-9a-f]{64}\t(yes)?", line) for line in lines[1:]), lines
    assert "…" not in run.out


def test_version(careledger: Any) -> None:
    run = careledger("--version")
    assert run.status == 0 and run.out.startswith("careledger ")


def test_the_json_flag_is_taken_anywhere_before_a_double_dash() -> None:
    assert split_json_flag(["status", "--json"]) == (["status"], True)
    assert split_json_flag(["--json", "tx", "get", "x"]) == (["tx", "get", "x"], True)
    assert split_json_flag(["records", "fetch", "--", "--json"]) == (["records", "fetch", "--", "--json"], False)
