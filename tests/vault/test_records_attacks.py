"""Every bad input and attack of the records issue: a stable code, and nothing written but the due audit entry.

Each test snapshots the committed state before the bad request and compares after it: the only keys
allowed to change are the patient's audit entries and the gateway key's nonce (when an audit entry is
due), or nothing at all.
"""

from __future__ import annotations

import copy
import functools
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest

from careledger.client import Client, ClientError
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.vault.requests import sign_headers
from support import seeded_key
from support.records import (
    OBSERVATION,
    World,
    diff_keys,
    send,
    state_snapshot,
    world_fixture,  # noqa: F401
)


def refused(fn: Callable[[], Any], code: Code) -> ClientError:
    with pytest.raises(ClientError) as info:
        fn()
    assert info.value.code == int(code), f"expected {code.name}, got {info.value.name}: {info.value.message}"
    return info.value


def signed_body(key: SigningKey, chain_id: str, path: str, doc: dict[str, Any], **kw: Any,
                ) -> tuple[bytes, dict[str, str]]:
    """``doc`` as body bytes and the headers that sign a POST of them to ``path``."""
    body = json.dumps(doc).encode()
    return body, {**sign_headers(key, chain_id, "POST", path, body, **kw), "content-type": "application/json"}


def stored(world: World, who: str = "alice", resource: dict[str, Any] | None = None) -> str:
    result = world.client("dr_a").store("hospital", world.pseudonym(who), resource or OBSERVATION)
    return str(result["records"][0]["record"])


def assert_only_audit(world: World, before: dict[str, bytes], audited: list[str]) -> None:
    """Only audit entries of the ``audited`` patients (and the gateway's nonce) changed."""
    world.wait_for_audit()
    changed = diff_keys(before, state_snapshot(world.node))
    gateway_nonce = f"nonce/{world.vaults['hospital'].gateway_key.public_hex}"
    allowed = tuple(f"audit/patient/{world.pseudonym(p)}/" for p in audited)
    others = [k for k in changed if k != gateway_nonce and not k.startswith(allowed or ("\0",))]
    assert others == [], f"unexpected writes: {others}"
    if audited:
        assert any(k.startswith(allowed) for k in changed), "the due audit entry is missing"
        assert gateway_nonce in changed
    else:
        assert changed == []


def denied_read(world: World, who: str, record: str, code: Code, audited: list[str] | None = None,
                patient: str = "alice", **kw: Any) -> None:
    before = state_snapshot(world.node)
    refused(lambda: world.client(who).read("hospital", world.pseudonym(patient), [record], **kw), code)
    assert_only_audit(world, before, ["alice"] if audited is None else audited)


def test_invalid_fhir_is_refused_with_an_operation_outcome(world: World) -> None:
    bad = copy.deepcopy(OBSERVATION)
    bad["status"] = "not-a-status"
    bad["valueQuantity"]["unexpected"] = 1
    before, count = state_snapshot(world.node), world.vaults["hospital"].count()
    body = {"resourceType": "Observation", "status": "final"}  # code is required
    for resource in (bad, body, {"resourceType": "NoSuchThing"}):
        refused(functools.partial(world.client("dr_a").store, "hospital", world.pseudonym("alice"), resource),
                Code.FHIR_INVALID)
    assert world.vaults["hospital"].count() == count
    assert_only_audit(world, before, [])


def test_invalid_fhir_answer_carries_operation_outcome_without_the_values(world: World) -> None:
    import httpx

    bad = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": "SECRET-999"}
    body, headers = signed_body(world.keys["dr_a"], world.node.chain.chain_id, "/v1/gateway/store",
                                {"custodian": "hospital", "kind": "store", "patient": world.pseudonym("alice"),
                                 "resource": bad})
    response = httpx.post(f"{world.url}/v1/gateway/store", content=body, headers=headers)
    assert response.status_code == 422
    doc = response.json()
    assert doc["error"]["code"] == Code.FHIR_INVALID
    outcome = doc["operation_outcome"]
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["severity"] == "error"
    assert any("subject" in i.get("expression", [""])[0] for i in outcome["issue"])
    assert "SECRET-999" not in response.text


def test_read_without_consent(world: World) -> None:
    denied_read(world, "dr_b", stored(world), Code.CONSENT_REQUIRED)


def test_consent_not_covering_type_purpose_or_date(world: World) -> None:
    record = stored(world)
    alice, pt = world.client("alice"), world.pseudonym("alice")
    now = int(time.time() * 1000)
    cases: list[tuple[dict[str, Any], Code]] = [
        ({"purposes": ["TREAT"], "resource_types": ["Encounter"]}, Code.CONSENT_TYPE_NOT_COVERED),
        ({"purposes": ["HPAYMT"], "resource_types": ["Observation"]}, Code.CONSENT_PURPOSE_NOT_COVERED),
        ({"purposes": ["TREAT"], "period": {"start_ms": now - 10_000_000, "end_ms": now - 5_000_000}},
         Code.CONSENT_PERIOD_NOT_COVERED),
        ({"purposes": ["TREAT"], "data_period": {"start_ms": 0, "end_ms": 1_000}}, Code.CONSENT_PERIOD_NOT_COVERED),
        ({"purposes": ["TREAT"], "records": [stored(world)]}, Code.CONSENT_RECORD_NOT_COVERED),
    ]
    for kw, code in cases:
        purposes = kw.pop("purposes")
        consent = alice.grant(pt, "org", "clinic", purposes, **kw)["receipt"]["result"]["consent"]
        denied_read(world, "dr_b", record, code)
        alice.revoke(consent)
    # the closest of several consents names the gap: purpose is right, type is not
    alice.grant(pt, "org", "clinic", ["HPAYMT"])
    alice.grant(pt, "org", "clinic", ["TREAT"], resource_types=["Encounter"])
    denied_read(world, "dr_b", record, Code.CONSENT_TYPE_NOT_COVERED)


def test_revoked_consent_and_deny_override(world: World) -> None:
    record = stored(world)
    alice, pt = world.client("alice"), world.pseudonym("alice")
    consent = alice.grant(pt, "org", "clinic", ["TREAT"])["receipt"]["result"]["consent"]
    assert world.client("dr_b").read("hospital", pt, [record])[0].mode == "consent"
    alice.revoke(consent)
    denied_read(world, "dr_b", record, Code.CONSENT_REVOKED)
    alice.grant(pt, "org", "clinic", ["TREAT"])
    alice.grant(pt, "member", world.keys["dr_b"].public_hex, ["TREAT"], provision="deny",
                resource_types=["Observation"])
    denied_read(world, "dr_b", record, Code.CONSENT_DENIED)


def test_forged_stale_and_replayed_requests(world: World) -> None:
    record = stored(world)
    pt = world.pseudonym("alice")
    world.client("alice").grant(pt, "org", "clinic", ["TREAT"])
    http = Client(world.url)
    chain_id = world.node.chain.chain_id
    path = "/v1/gateway/read"
    fields = {"custodian": "hospital", "kind": "read", "patient": pt, "purpose": "TREAT", "records": [record]}
    dr_b = world.keys["dr_b"]

    def post(body: bytes, headers: dict[str, str], where: str = path) -> Any:
        return http.request("POST", where, content=body, headers=headers)

    before = state_snapshot(world.node)
    body, headers = signed_body(dr_b, chain_id, path, fields)
    forged = json.dumps({**fields, "purpose": "HPAYMT"}).encode()  # the signature no longer covers the body
    refused(lambda: post(forged, headers), Code.BAD_SIGNATURE)
    refused(lambda: post(body, headers, "/v1/gateway/read?x=1"), Code.BAD_SIGNATURE)  # nor the target
    refused(lambda: post(body, headers, "/v1/records/query"), Code.BAD_SIGNATURE)  # nor another route
    _, intruder = signed_body(seeded_key("intruder"), chain_id, path, fields)
    claimed = {**intruder, "Authorization": intruder["Authorization"].replace(
        seeded_key("intruder").public_hex, dr_b.public_hex)}  # claims to be dr_b
    refused(lambda: post(body, claimed), Code.BAD_SIGNATURE)
    _, other_chain = signed_body(dr_b, "another-chain", path, fields)
    refused(lambda: post(body, other_chain), Code.BAD_SIGNATURE)
    _, stale = signed_body(dr_b, chain_id, path, fields, now_ms=int(time.time() * 1000) - 600_000)
    refused(lambda: post(body, stale), Code.REQUEST_STALE)
    refused(lambda: post(body, {"content-type": "application/json"}), Code.MISSING_SIGNATURE)
    bad_param = {**headers, "Authorization": headers["Authorization"].replace("nonce=", "nonse=")}
    refused(lambda: post(body, bad_param), Code.BAD_SIGNATURE)
    wrong_kind, wrong_kind_headers = signed_body(dr_b, chain_id, path, {**fields, "kind": "index"})
    refused(lambda: post(wrong_kind, wrong_kind_headers), Code.REQUEST_MALFORMED)
    assert_only_audit(world, before, [])
    assert post(body, headers)["records"][0]["record"] == record
    world.wait_for_audit()
    before = state_snapshot(world.node)
    refused(lambda: post(body, headers), Code.REQUEST_REPLAYED)
    assert_only_audit(world, before, [])
    http.close()


def test_member_of_a_removed_organisation(world: World) -> None:
    record = stored(world)
    pt = world.pseudonym("alice")
    world.client("alice").grant(pt, "org", "insurer", ["TREAT"])
    assert world.client("insurer_x").read("hospital", pt, [record])[0].mode == "consent"
    receipt = send(world.node, seeded_key("admin/hospital"), "governance.propose",
                   {"action": {"kind": "remove_organisation", "org": "insurer"}, "title": "remove the insurer"})
    proposal = receipt.result["proposal"]
    for org in ("clinic", "pharmacy", "manufacturer", "distributor", "research"):
        send(world.node, seeded_key(f"admin/{org}"), "governance.vote", {"approve": True, "proposal": proposal})
    assert world.node.store.view().get("identity/org/insurer")["status"] == "removed"
    denied_read(world, "insurer_x", record, Code.SIGNER_REVOKED)


def test_tampered_vault_is_an_integrity_failure(world: World) -> None:
    record, other = stored(world), stored(world)
    pt = world.pseudonym("alice")
    path = world.vaults["hospital"].directory / "vault.sqlite"
    with sqlite3.connect(path) as conn:  # flip one bit of the ciphertext
        (ct,) = conn.execute("SELECT ciphertext FROM records WHERE record = ?", (record,)).fetchone()
        flipped = bytes([ct[0] ^ 1]) + bytes(ct[1:])
        conn.execute("UPDATE records SET ciphertext = ? WHERE record = ?", (flipped, record))
    before = state_snapshot(world.node)
    error = refused(lambda: world.client("dr_a").read("hospital", pt, [record]), Code.VAULT_INTEGRITY)
    assert error.http_status == 500
    assert_only_audit(world, before, ["alice"])
    with sqlite3.connect(path) as conn:  # move a valid row onto another record id: the AAD catches it
        conn.execute("DELETE FROM records WHERE record = ?", (record,))
        conn.execute("UPDATE records SET record = ? WHERE record = ?", (record, other))
    refused(lambda: world.client("dr_a").read("hospital", pt, [record]), Code.VAULT_INTEGRITY)


def test_one_patients_pseudonym_cannot_reach_another_patients_record(world: World) -> None:
    bobs = stored(world, "bob")
    world.client("alice").grant(world.pseudonym("alice"), "org", "clinic", ["TREAT"])
    # dr_b holds alice's consent, and asks for bob's record under alice's pseudonym: audited for bob
    denied_read(world, "dr_b", bobs, Code.RECORD_PATIENT_MISMATCH, audited=["bob"])
    # alice herself cannot read bob's record either
    denied_read(world, "alice", bobs, Code.RECORD_PATIENT_MISMATCH, audited=["bob"])
    # nor can alice see bob's view or index
    refused(lambda: world.client("alice").view(world.pseudonym("bob")), Code.NOT_PATIENT_OR_DELEGATE)
    assert world.client("alice").index(world.pseudonym("bob")) == []


def test_erasure_by_anyone_else_is_refused(world: World) -> None:
    record = stored(world)
    world.client("alice").grant(world.pseudonym("alice"), "org", "clinic", ["TREAT"])
    before = state_snapshot(world.node)
    for who in ("dr_b", "bob", "insurer_x"):
        refused(functools.partial(world.client(who).erase, record, custodian="hospital"), Code.ERASURE_NOT_ALLOWED)
    raw = sign_tx(world.keys["dr_b"], world.node.chain.chain_id, "records.erase", 1, 1,
                  {"reason": "patient_request", "record": record})
    refused(lambda: world.ledger.submit(raw, wait=True), Code.ERASURE_NOT_ALLOWED)  # type: ignore[union-attr]
    assert_only_audit(world, before, [])
    assert world.vaults["hospital"].latest_version(record) == 1


def test_emergency_needs_role_and_open_session(world: World) -> None:
    record = stored(world)
    pt = world.pseudonym("alice")
    denied_read(world, "dr_b", record, Code.EMERGENCY_ROLE_REQUIRED, emergency=True)
    denied_read(world, "medic_b", record, Code.BREAK_GLASS_REQUIRED, emergency=True)
    before = state_snapshot(world.node)
    refused(lambda: world.client("dr_b").break_glass(pt, "unconscious") and (_ for _ in ()).throw(
        AssertionError("accepted")), Code.EMERGENCY_ROLE_REQUIRED)
    assert diff_keys(before, state_snapshot(world.node)) == []
