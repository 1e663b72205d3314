"""One error catalogue, one status table: every code has exactly one HTTP status, decided in
``careledger.api.status``, documented row for row in docs/http-api.md, and no route maps codes itself."""

from __future__ import annotations

import ast
import re
from http import HTTPStatus
from pathlib import Path

import pytest

from careledger.api import errors, status
from careledger.api.errors import error_response
from careledger.api.status import HTTP_STATUS, http_status
from careledger.core.errors import Code, LedgerError

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "src" / "careledger" / "api"
HTTP_API_MD = (ROOT / "docs" / "http-api.md").read_text()


def test_every_code_has_exactly_one_status() -> None:
    assert set(HTTP_STATUS) == set(Code), f"codes without a status: {sorted(set(Code) - set(HTTP_STATUS))}"
    for code, value in HTTP_STATUS.items():
        assert HTTPStatus(value), code
        assert (value == 200) == (code is Code.OK), code  # only success is 2xx; every refusal is 4xx/5xx
        assert http_status(code) == value


def test_status_choices_follow_the_documented_rule() -> None:
    """Spot checks of the rule: the disagreements the table ended (RECORD_UNKNOWN was 404 on the
    gateway and 422 on /v1/txs) and one code of each kind."""
    expected = {Code.RECORD_UNKNOWN: 404, Code.PROPOSAL_UNKNOWN: 404, Code.ORG_UNKNOWN: 404,
                Code.CONSENT_UNKNOWN: 404, Code.RECORD_ERASED: 410, Code.RECORD_VERSION_CONFLICT: 409,
                Code.NONCE_REPLAYED: 409, Code.REQUEST_REPLAYED: 409, Code.BAD_SIGNATURE: 401,
                Code.REQUEST_STALE: 401, Code.CONSENT_REQUIRED: 403, Code.NOT_CUSTODIAN: 403,
                Code.OVERSIZED: 413, Code.UNSUPPORTED_MEDIA_TYPE: 415, Code.METHOD_NOT_ALLOWED: 405,
                Code.ROLE_NOT_ALLOWED: 422, Code.PACK_STOLEN: 422, Code.EPCIS_SCHEMA_INVALID: 400,
                Code.BAD_CHECK_DIGIT: 400, Code.VAULT_INTEGRITY: 500, Code.MEMPOOL_FULL: 503, Code.TIMEOUT: 504}
    assert {code: HTTP_STATUS[code] for code in expected} == expected


def test_error_responses_take_their_status_from_the_table() -> None:
    for code in Code:
        response = error_response(LedgerError("refused", code), {"tx_hash": "ab" * 32})
        assert response.status_code == HTTP_STATUS[code]


def test_a_code_missing_from_the_table_answers_500(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    table = dict(HTTP_STATUS)
    del table[Code.PACK_LOCKED]
    monkeypatch.setattr(status, "HTTP_STATUS", table)
    assert http_status(Code.PACK_LOCKED) == 500
    assert "PACK_LOCKED" in caplog.text


def test_docs_have_one_row_per_code_with_its_status() -> None:
    rows = re.findall(r"^\| (\d+) \| `([A-Z0-9_]+)` \| (\d{3}) \|$", HTTP_API_MD, re.MULTILINE)
    documented = [(int(n), name, int(s)) for n, name, s in rows]
    numbers = [n for n, _, _ in documented]
    assert len(numbers) == len(set(numbers)), "docs/http-api.md lists a code twice"
    actual = {(int(c), c.name, HTTP_STATUS[c]) for c in Code}
    assert not actual - set(documented), f"docs/http-api.md lacks or misstates {sorted(actual - set(documented))}"
    assert not set(documented) - actual, f"docs/http-api.md has stale rows {sorted(set(documented) - actual)}"


def test_no_doc_states_another_status_for_a_code() -> None:
    """Pages that repeat part of the table (docs/records.md's codes) agree with it."""
    checked: set[str] = set()
    for page in sorted((ROOT / "docs").glob("*.md")):
        rows = re.findall(r"^\| (\d+) \| `?([A-Z0-9_]+)`? \| (\d{3}) \|$", page.read_text(), re.MULTILINE)
        checked.update(page.name for _ in rows)
        for number, name, value in rows:
            code = Code(int(number))
            assert (code.name, HTTP_STATUS[code]) == (name, int(value)), f"{page.name}: {number} {name} {value}"
    assert {"http-api.md", "records.md"} <= checked


def _error_statuses(tree: ast.AST) -> list[tuple[int, int]]:
    """(line, value) of every integer literal 400-599 outside the OpenAPI declarations: calls of
    ``schemas.errors(...)`` and that function itself (which only describes statuses)."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        declares = (isinstance(node, ast.Call) and (getattr(node.func, "attr", None) == "errors"
                                                    or getattr(node.func, "id", None) == "errors")) \
            or (isinstance(node, ast.FunctionDef) and node.name == "errors")
        if declares:
            allowed.update(id(n) for n in ast.walk(node))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and type(node.value) is int and 400 <= node.value <= 599
            and id(node) not in allowed]


def test_no_route_module_maps_codes_to_statuses_itself() -> None:
    """Only :mod:`careledger.api.status` holds error statuses. Elsewhere in the API: no literal error
    status (OpenAPI declarations aside), no status set on a response other than a literal 2xx, no
    ``HTTPStatus`` outside the framework-error mapping of :mod:`careledger.api.errors`."""
    problems = []
    for path in sorted(API.glob("*.py")):
        if path.name == "status.py":
            continue
        tree = ast.parse(path.read_text())
        problems += [f"{path.name}:{line}: literal status {value}" for line, value in _error_statuses(tree)]
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "status_code":
                value = node.value.value if isinstance(node.value, ast.Constant) else None
                literal = isinstance(value, int) and 200 <= value < 300
                if not literal and path.name != "errors.py":
                    problems.append(f"{path.name}:{node.value.lineno}: computed status_code")
            if isinstance(node, ast.Attribute) and node.attr == "status_code" and isinstance(node.ctx, ast.Store):
                problems.append(f"{path.name}:{node.lineno}: assigns status_code")
            if isinstance(node, ast.Name) and node.id == "HTTPStatus" and path.name != "errors.py":
                problems.append(f"{path.name}:{node.lineno}: HTTPStatus")
    assert not problems, problems


def test_the_framework_refusals_are_codes_too() -> None:
    """The one place that goes the other way: the framework's own 404/405/413/415 become codes, whose
    status is then the table's."""
    for framework_status, code in errors.FRAMEWORK_CODES.items():
        assert HTTP_STATUS[code] == framework_status
