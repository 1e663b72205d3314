"""Every state key is built by one function in its contract's layout module: no other module spells one.

A key prefix is a contract's package name followed by ``/`` (``identity/``, ``supply/``, ... and those
of any contract added later), or the chain's ``nonce/``. The scan reads every string literal of the
source (f-string parts included; docstrings and comments excluded), so a key spelled anywhere else
(``f"identity/org/{org}"``, ``"nonce/" + key``) fails this test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import careledger

SRC = Path(careledger.__file__).resolve().parent
CONTRACTS = SRC / "contracts"
CONTRACT_NAMES = sorted(p.parent.name for p in CONTRACTS.glob("*/__init__.py"))
PREFIXES = [*CONTRACT_NAMES, "nonce"]
# a prefix at the start of a literal, or after anything but a path-like character ("/v1/records/..." is a route)
SPELLED = re.compile(r"(?<![\w/.:-])(" + "|".join(PREFIXES) + r")/")
ALLOWED = {"nonce": {SRC / "chain" / "executor.py"}}  # the nonce key belongs to the chain


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelled_prefixes(source: str) -> list[tuple[int, str]]:
    """``(line, prefix)`` of every state-key prefix spelled in a string literal of ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found.extend((node.lineno, m[1]) for m in SPELLED.finditer(node.value))
    return found


def _may_spell(path: Path, prefix: str) -> bool:
    if path.name == "layout.py" and path.parent.parent == CONTRACTS:
        return True
    return path in ALLOWED.get(prefix, set())


def test_the_detector_finds_keys_in_any_literal_form() -> None:
    source = '''"""Docs may say identity/org/<id>."""
KEY = f"identity/org/{1}"  # comments may say records/head too
NONCE = "nonce/" + "ab"
ROUTE = "/v1/records/query"
URN = "urn:epc:id:sgtin:supply/x"
def f() -> str:
    """consent/patient/ in a docstring is fine."""
    return "supply/pack/" "x"
'''
    assert spelled_prefixes(source) == [(2, "identity"), (3, "nonce"), (8, "supply")]


def test_every_contract_has_a_layout_that_builds_its_keys() -> None:
    assert {"audit", "consent", "governance", "identity", "records", "supply"} <= set(CONTRACT_NAMES)
    for name in CONTRACT_NAMES:
        layout = CONTRACTS / name / "layout.py"
        assert layout.exists(), f"contracts/{name} has no layout.py"
        assert name in {p for _, p in spelled_prefixes(layout.read_text())}, f"contracts/{name}/layout.py builds no key"


def test_no_module_spells_a_state_key_outside_its_layout() -> None:
    offenders: list[str] = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        for line, prefix in spelled_prefixes(path.read_text()):
            if not _may_spell(path, prefix):
                offenders.append(f"{path.relative_to(SRC.parent)}:{line}: {prefix}/")
    assert offenders == [], "state keys spelled outside the contracts' layout modules (call the layout's key " \
                            "functions, or careledger.chain.executor.nonce_key):\n" + "\n".join(offenders)
