"""After the demo, no diagnosis, procedure code, amount or identifier of the claims it imported is in the clear in
any file of the node outside the vaults (the approach of tests/vault/test_privacy.py, for claims).

A plan's code list is public rule data about no one (``claims.register_plan``): the procedure codes are
therefore looked for in every ledger entry and transaction but the plans', and in every other file byte for
byte; identifiers and amounts are looked for byte for byte in every file outside ``vault/``.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from careledger.api.server import serve_in_thread
from careledger.claims.content import from_minor, parse_claim
from careledger.client import Client
from careledger.core.codec import decode_trusted
from careledger.demo.claims_story import PRICES, synthea_visit
from careledger.demo.consortium import create_consortium
from careledger.demo.story import run_story
from careledger.node.store import Store


def occurs(term: str, data: bytes) -> bool:
    """``term`` in ``data`` (UTF-8 or UTF-16); a term of hex digits only where it stands on its own."""
    if re.fullmatch(r"[0-9A-Fa-f]+", term):
        return re.search(rb"(?<![0-9A-Fa-f])" + term.encode() + rb"(?![0-9A-Fa-f])", data) is not None
    return term.encode("utf-8") in data or term.encode("utf-16-le") in data


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, path)
    else:
        yield path, value


def claim_terms() -> tuple[set[str], set[str], set[str]]:
    """(identifiers, codes, amounts) of the demo's imported Encounter and Claim."""
    encounter, claim = synthea_visit(0)
    identifiers: set[str] = {encounter["id"], claim["id"]}
    codes: set[str] = set()
    clinical = {id(claim): (".item.productOrService", ".diagnosis"), id(encounter): (".type", ".reasonCode")}
    for doc in (encounter, claim):
        for path, value in walk(doc):
            if not isinstance(value, str):
                continue
            if path.endswith((".reference", ".display")) or path.endswith(".identifier.value"):
                identifiers.add(value.removeprefix("urn:uuid:").split("/")[-1])
            if path.endswith(".coding.code") and path.startswith(clinical[id(doc)]):
                codes.add(value)
    content = parse_claim(claim)
    assert content.submitted == 63670 and len(content.lines) == 3
    amounts = {f"{p:.2f}" for p in PRICES} | {f"{sum(PRICES):.2f}", str(from_minor(16190, "USD"))}
    amounts |= {str(int(Decimal(a) * 100)) for a in amounts}
    return ({t for t in identifiers if len(t) >= 5}, {c for c in codes if len(c) >= 5},
            {a for a in amounts if len(a) >= 5})


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("claims-privacy") / "home"
    consortium = create_consortium(path, int(time.time() * 1000))
    node = consortium.home.open_node()
    node.start()
    server = serve_in_thread(node)
    out = io.StringIO()
    try:
        with Client(server.url) as client:
            story = run_story(client, consortium, Console(file=out, width=200))
        assert story.facts["claim"].startswith("clm-")
        told = out.getvalue()
        for shown in ("A claim approved", "approved: submitted 636.70, United pays 161.90", "reproduced",
                      "A phantom claim denied", "denied (CO-16, M127); flags ['no-recorded-encounter']",
                      "A duplicate flagged", "flags ['duplicate-across-payers']"):
            assert shown in told, shown
    finally:
        server.stop()
        node.close()
    return path


def test_the_terms_are_real(demo_home: Path) -> None:
    identifiers, codes, amounts = claim_terms()
    assert {"162673000", "430193006"} <= codes and "187.45" in amounts and "18745" in amounts
    assert any(len(t) == 36 for t in identifiers)  # the Synthea uuids
    assert any(p.name == "vault.sqlite" for p in demo_home.rglob("*"))


def test_nothing_of_the_imported_claims_outside_the_vaults(demo_home: Path) -> None:
    identifiers, codes, amounts = claim_terms()
    outside = [p for p in demo_home.rglob("*") if p.is_file() and "vault" not in p.relative_to(demo_home).parts]
    assert any(p.name == "ledger.sqlite" for p in outside)
    found = []
    for path in outside:
        data = path.read_bytes()
        ledger_file = path.name.startswith("ledger.sqlite")
        for term in identifiers | amounts | (set() if ledger_file else codes):
            if occurs(term, data):
                found.append((path.relative_to(demo_home).as_posix(), term))
    assert found == [], f"claim data found outside the vaults: {found[:10]}"


def test_no_procedure_code_on_the_ledger_but_in_the_plans(demo_home: Path) -> None:
    _, codes, _ = claim_terms()
    store = Store(demo_home / "data" / "ledger.sqlite", create=False)
    try:
        found = []
        view = store.view()
        for key, raw in view.connection.execute("SELECT key, value FROM state").fetchall():
            if not key.startswith("claims/plan/"):
                found += [(key, c) for c in codes if occurs(c, bytes(raw))]
        for height in range(1, store.head().height + 1):
            for tx in store.block_txs(height):
                if decode_trusted(tx.raw)["body"]["type"] != "claims.register_plan":
                    found += [(f"tx {tx.hash.hex()[:12]}", c) for c in codes if occurs(c, tx.raw)]
                found += [(f"receipt {tx.hash.hex()[:12]}", c) for c in codes if occurs(c, tx.receipt.encode())]
        assert found == [], found[:10]
    finally:
        store.close()
