"""Privacy: no PHI from the Synthea bundles in any file of the node home, and erasure really erases."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from careledger.client import ClientError
from careledger.core.errors import Code
from careledger.node.verify import verify_store
from support.records import (
    OBSERVATION,
    SYNTHEA_FILES,
    World,
    send,
    synthea_bundle,
    synthea_patient,
    world_fixture,  # noqa: F401
)


def phi_terms(patient: dict[str, Any]) -> set[str]:
    """Names, identifiers (SSN, licence, passport, MRN), address parts, phones and the birth date."""
    terms: set[str] = {patient["birthDate"]}
    for name in patient.get("name", []):
        terms.add(name["family"])
        terms.update(name.get("given", []))
    for ident in patient.get("identifier", []):
        terms.add(ident["value"])
    for address in patient.get("address", []):
        terms.update(address.get("line", []))
        terms.update(v for k, v in address.items() if k in ("city", "postalCode"))
    for telecom in patient.get("telecom", []):
        terms.add(telecom["value"])
    for ext in patient.get("extension", []):
        if ext["url"].endswith("patient-mothersMaidenName"):
            terms.add(ext["valueString"])
    return {t for t in terms if len(t) >= 5}


def occurs(term: str, data: bytes) -> bool:
    """Whether ``term`` appears in ``data`` (UTF-8 or UTF-16).

    A term made only of hex digits (a ZIP code, say) counts only where it stands on its own: the
    ledger is full of hex hashes and keys, in which any five digits turn up by chance.
    """
    if re.fullmatch(r"[0-9A-Fa-f]+", term):
        return re.search(rb"(?<![0-9A-Fa-f])" + term.encode() + rb"(?![0-9A-Fa-f])", data) is not None
    return term.encode("utf-8") in data or term.encode("utf-16-le") in data


def test_occurs_ignores_digits_inside_hex_but_finds_them_standing_alone() -> None:
    assert not occurs("98053", b'{"tx":"ab98053f"}')
    assert occurs("98053", b'"postalCode":"98053"')
    assert occurs("Sanford861", "x Sanford861 y".encode("utf-16-le"))


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_synthea_import_leaves_no_phi_in_any_file(world: World) -> None:
    assert len(SYNTHEA_FILES) == 2
    terms: set[str] = set()
    for i, who in enumerate(("alice", "bob")):
        patient = synthea_patient(i)
        terms |= phi_terms(patient)
        result = world.client("dr_a").store("hospital", world.pseudonym(who), synthea_bundle(i))
        types = [r["type"] for r in result["records"]]
        assert len(types) in (168, 190) and "Patient" in types
    assert {"999-33-5538", "S99993907", "X37176659X", "555-657-5098", "1969-03-27", "Sanford861"} <= terms
    world.wait_for_audit()
    # a read through the gateway returns the demographics to the patient: they exist, encrypted
    view = world.client("alice").view()
    patient_record = next(r["record"] for r in view["records"] if r["type"] == "Patient")
    [fetched] = world.client("alice").read("hospital", world.pseudonym("alice"), [patient_record])
    assert "999-33-5538" in fetched.resource_json()
    world.wait_for_audit()
    world.node.store.view().connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    files = files_under(Path(world.home.path))
    assert any(p.name == "vault.sqlite" for p in files) and any(p.name == "ledger.sqlite" for p in files)
    found = []
    for path in files:
        data = path.read_bytes()
        for term in terms:
            if occurs(term, data):
                found.append((path.relative_to(world.home.path).as_posix(), term))
    assert found == [], f"PHI found in node files: {found[:10]}"


def test_erasure_destroys_key_salt_and_ciphertext(world: World) -> None:
    pt = world.pseudonym("alice")
    record = world.client("dr_a").store("hospital", pt, OBSERVATION)["records"][0]["record"]
    world.client("alice").grant(pt, "org", "clinic", ["TREAT"])
    assert world.client("dr_b").read("hospital", pt, [record])[0].record == record
    vault_path = world.vaults["hospital"].directory / "vault.sqlite"
    with sqlite3.connect(vault_path) as conn:
        wrapped, _nonce, ciphertext = conn.execute(
            "SELECT wrapped_key, nonce, ciphertext FROM records WHERE record = ?", (record,)).fetchone()
    secrets = [bytes(wrapped), bytes(ciphertext)[:24], bytes(ciphertext)[-16:]]
    result = world.client("alice").erase(record, custodian="hospital")
    assert result["versions_destroyed"] == 1 and result["erased_by"] == "patient"
    world.wait_for_audit()
    for path in files_under(Path(world.home.path)):
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, f"erased bytes survive in {path.name}"
    view = world.client("alice").view()
    [entry] = [r for r in view["records"] if r["record"] == record]
    assert entry["status"] == "erased"
    anchor = world.node.store.view().get(f"records/anchor/{record}/000001")
    assert anchor["status"] == "erased" and len(anchor["commitment"]) == 64
    with pytest.raises(ClientError) as info:
        world.client("dr_b").read("hospital", pt, [record])
    assert info.value.code == Code.RECORD_ERASED
    with pytest.raises(ClientError) as info:
        world.client("alice").erase(record, custodian="hospital")
    assert info.value.code == Code.RECORD_ERASED
    report = verify_store(world.node.store)
    assert report.ok, report.problem


def test_erasure_reports_the_versions_even_when_the_shredder_got_there_first(world: World,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's background shredder hears of the committed erasure too and may shred before the
    request that submitted it does: the answer still counts the versions the erasure destroyed."""
    from careledger.vault.gateway import Gateway

    pt = world.pseudonym("alice")
    record = world.client("dr_a").store("hospital", pt, OBSERVATION)["records"][0]["record"]
    real_receipt = Gateway._receipt

    def shredder_first(submission: Any) -> Any:
        receipt = real_receipt(submission)
        assert world.vaults["hospital"].erase(record) == 1  # what the shredder does on commit
        return receipt

    monkeypatch.setattr(Gateway, "_receipt", staticmethod(shredder_first))
    result = world.client("alice").erase(record, custodian="hospital")
    assert result["versions_destroyed"] == 1


def test_erasure_committed_elsewhere_is_shredded_by_the_custodian(world: World) -> None:
    """The patient may submit the erasure to any node; the custodian's gateway shreds on commit."""
    pt = world.pseudonym("alice")
    record = world.client("dr_a").store("hospital", pt, OBSERVATION)["records"][0]["record"]
    assert world.vaults["hospital"].latest_version(record) == 1
    send(world.node, world.keys["alice"], "records.erase", {"reason": "patient_request", "record": record})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sqlite3.connect(world.vaults["hospital"].directory / "vault.sqlite") as conn:
            left = conn.execute("SELECT count(*) FROM records WHERE record = ?", (record,)).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.02)
    assert left == 0
