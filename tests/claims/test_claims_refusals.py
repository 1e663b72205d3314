"""Every bad input to the claims desk and queries is refused with its stable code, and nothing is written:
not on the ledger, not in any vault."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from careledger.client import ClientError
from careledger.client.claims import ClaimsClient
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.vault.requests import sign_headers
from support.claims_node import ClaimsNode, claims_node_fixture, coverage_resource, today  # noqa: F401


def written(w: ClaimsNode) -> tuple[dict[str, bytes], dict[str, int]]:
    """Committed state (less the signers' nonces) and the number of records in each vault."""
    conn = w.node.store.view().connection
    state = {k: bytes(v) for k, v in conn.execute("SELECT key, value FROM state").fetchall()
             if not k.startswith("nonce/")}
    return state, {org: v.count() for org, v in w.vaults.items()}


def refused(w: ClaimsNode, code: Code, action: Callable[[], Any]) -> ClientError:
    w.wait_idle()
    before = written(w)
    with pytest.raises(ClientError) as info:
        action()
    assert info.value.code == code, (info.value.code, info.value.message)
    w.wait_idle()
    assert written(w) == before
    return info.value


def prepared(w: ClaimsNode, who: str = "hospital-officer", coverage: str | None = None,
             patient: str = "patient") -> tuple[ClaimsClient, dict[str, Any]]:
    record, rid = w.encounter(patient)
    cc = w.claims(who)
    return cc, cc._prepare("hospital", "/v1/claims/prepare", "claim.prepare", {
        "coverage": coverage or w.coverages[("insurer", patient)], "encounter": record, "insurer": "insurer",
        "patient": w.pseudonym(patient), "prior_payer_claim": None, "replaces": None}, w.claim_resource(rid))


def test_a_claim_on_an_unknown_coverage(claims_node: ClaimsNode) -> None:
    w = claims_node
    cc, prep = prepared(w, coverage="cov-" + "0" * 24)
    refused(w, Code.CLAIM_COVERAGE_UNKNOWN, lambda: cc.commit("hospital", prep))


def test_a_claim_outside_an_expired_coverage(claims_node: ClaimsNode) -> None:
    w = claims_node
    cov = w.coverages[("insurer", "patient-2")]
    ended = coverage_resource(w.pseudonym("patient-2"), "insurer", today() - 30, 1, end_day=today() - 10)
    assert w.claims("insurer-officer").update_coverage(cov, "insurer", w.pseudonym("patient-2"), ended)[
        "receipt"]["code"] == 0
    cc, prep = prepared(w, patient="patient-2")
    refused(w, Code.CLAIM_COVERAGE_PERIOD, lambda: cc.commit("hospital", prep))


def test_a_claim_by_someone_who_is_not_the_providers_claims_officer(claims_node: ClaimsNode) -> None:
    w = claims_node
    record, rid = w.encounter()
    for who, code in ((SigningKey.generate(), Code.UNKNOWN_SIGNER), (w.keys["dr"], Code.CLAIM_NOT_PROVIDER),
                      (w.keys["clinic-officer"], Code.CLAIM_NOT_PROVIDER)):
        cc = ClaimsClient(w.ledger, who)
        coverage = w.coverages[("insurer", "patient")]
        refused(w, code, functools.partial(cc.submit, "hospital", w.pseudonym(), record, coverage, "insurer",
                                           w.claim_resource(rid)))


def test_a_replayed_submission(claims_node: ClaimsNode) -> None:
    w = claims_node
    cc, prep = prepared(w)
    nonce = int(w.ledger.nonce(cc.key.public_hex)["next"])
    raw = sign_tx(cc.key, w.ledger.chain_id(), prep["type"], 1, nonce, prep["payload"])
    gateway = cc.records.gateway("hospital")
    first = gateway.request("POST", "/v1/claims/txs", json={"tx": raw.hex()})
    assert first["receipt"]["code"] == 0
    refused(w, Code.NOT_FOUND, lambda: gateway.request("POST", "/v1/claims/txs", json={"tx": raw.hex()}))
    refused(w, Code.DUPLICATE_TX, lambda: w.ledger.submit(raw, wait=True))


def test_a_replayed_or_altered_prepare_request(claims_node: ClaimsNode) -> None:
    w = claims_node
    record, rid = w.encounter()
    cc = w.claims("hospital-officer")
    body = json.dumps({"kind": "claim.prepare", "coverage": w.coverages[("insurer", "patient")],
                       "custodian": "hospital", "encounter": record, "insurer": "insurer", "patient": w.pseudonym(),
                       "resource": w.claim_resource(rid)}).encode()
    headers = {"content-type": "application/json",
               **sign_headers(cc.key, w.ledger.chain_id(), "POST", "/v1/claims/prepare", body)}
    gateway = cc.records.gateway("hospital")
    altered = body.replace(b'"insurer":"insurer"', b'"insurer":"insurer-b"').replace(
        b'"insurer": "insurer"', b'"insurer": "insurer-b"')
    assert altered != body
    refused(w, Code.BAD_SIGNATURE, lambda: gateway.request(  # the signature covers every byte of the body
        "POST", "/v1/claims/prepare", content=altered, headers=headers))
    assert gateway.request("POST", "/v1/claims/prepare", content=body, headers=headers)["type"] == "claims.submit"
    refused(w, Code.REQUEST_REPLAYED, lambda: gateway.request(
        "POST", "/v1/claims/prepare", content=body, headers=headers))


def test_a_transaction_that_is_not_the_one_prepared(claims_node: ClaimsNode) -> None:
    w = claims_node
    cc, prep = prepared(w)
    altered = copy.deepcopy(prep)
    altered["payload"]["lines"] = 5
    refused(w, Code.REQUEST_MALFORMED, lambda: cc.commit("hospital", altered))
    other = w.claims("insurer-officer")  # another key signs the prepared payload
    refused(w, Code.REQUEST_MALFORMED, lambda: other.records.gateway("hospital").request(
        "POST", "/v1/claims/txs", json={"tx": sign_tx(other.key, w.ledger.chain_id(), prep["type"], 1, int(
            w.ledger.nonce(other.key.public_hex)["next"]), prep["payload"]).hex()}))
    ahead = sign_tx(cc.key, w.ledger.chain_id(), prep["type"], 1, int(w.ledger.nonce(cc.key.public_hex)["next"]) + 1,
                    prep["payload"])
    refused(w, Code.NONCE_OUT_OF_ORDER, lambda: cc.records.gateway("hospital").request(
        "POST", "/v1/claims/txs", json={"tx": ahead.hex()}))
    assert cc.commit("hospital", prep)["receipt"]["code"] == 0  # the prepared one still goes through


def test_invalid_fhir_and_unfit_claims(claims_node: ClaimsNode) -> None:
    w = claims_node
    record, rid = w.encounter()
    cc = w.claims("hospital-officer")
    cov = w.coverages[("insurer", "patient")]
    bad = w.claim_resource(rid)
    del bad["priority"]
    error = refused(w, Code.FHIR_INVALID, lambda: cc.submit("hospital", w.pseudonym(), record, cov, "insurer", bad))
    assert "priority" in error.message or error.http_status == 422
    pharmacy = w.claim_resource(rid)
    pharmacy["type"]["coding"][0]["code"] = "pharmacy"
    refused(w, Code.CLAIM_CONTENT_INVALID, lambda: cc.submit("hospital", w.pseudonym(), record, cov, "insurer",
                                                             pharmacy))
    other_patient, _ = w.encounter("patient-2")
    refused(w, Code.RECORD_PATIENT_MISMATCH, lambda: cc.submit("hospital", w.pseudonym(), other_patient, cov,
                                                               "insurer", w.claim_resource(rid)))
    clinic = w.claims("clinic-officer")
    refused(w, Code.VAULT_NOT_HOSTED, lambda: clinic._prepare(
        "clinic", "/v1/claims/prepare", "claim.prepare", {"coverage": cov, "encounter": record, "insurer": "insurer",
                                                           "patient": w.pseudonym()}, w.claim_resource(rid)))


def test_intake_refusals(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = w.submit()["receipt"]["result"]["claim"]
    status = w.claims("patient").status(claim)
    officer = w.claims("insurer-officer")
    gateway = officer.records.gateway("insurer")

    def read(records: list[str], purpose: str = "HPAYMT", key: ClaimsClient = officer) -> dict[str, str]:
        return key._forwarded_read({"custodian": "hospital", "emergency": False, "patient": w.pseudonym(),
                                    "purpose": purpose, "records": records})

    both = sorted({status["record"], status["claim"]["encounter"]})
    refused(w, Code.CLAIM_UNKNOWN, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": "clm-" + "0" * 24, "reads": [read(both)]}))
    refused(w, Code.REQUEST_MALFORMED, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [read([status["record"]])]}))
    refused(w, Code.REQUEST_MALFORMED, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [read(both, "TREAT")]}))
    refused(w, Code.CLAIM_NOT_INSURER, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [read(both, key=w.claims("insurer-b-officer"))]}))
    refused(w, Code.REQUEST_MALFORMED, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": []}))
    good = read(both)
    refused(w, Code.BAD_SIGNATURE, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [{**good, "body": good["body"].replace("HPAYMT", "TREAT")}]}))
    refused(w, Code.BAD_SIGNATURE, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [{**good, "body": good["body"] + " "}]}))  # every byte is signed
    refused(w, Code.MISSING_SIGNATURE, lambda: gateway.request("POST", "/v1/claims/intake", json={
        "claim": claim, "reads": [{**good, "authorization": "Bearer x"}]}))


def test_who_sees_a_claim(claims_node: ClaimsNode) -> None:
    w = claims_node
    claim = w.submit()["receipt"]["result"]["claim"]
    for who in ("patient", "hospital-officer", "insurer-officer"):
        assert w.claims(who).status(claim)["claim"]["id"] == claim
    for who in ("patient-2", "insurer-b-officer", "dr"):
        refused(w, Code.CLAIM_NOT_PARTY, functools.partial(lambda name: w.claims(name).status(claim), who))
    refused(w, Code.UNKNOWN_SIGNER, lambda: ClaimsClient(w.ledger, SigningKey.generate()).status(claim))
    refused(w, Code.CLAIM_NOT_INSURER, lambda: w.claims("hospital-officer").flags("insurer"))
    assert [c["id"] for c in w.claims("patient").claims()] == [claim]
    assert w.claims("patient-2").claims(w.pseudonym()) == []  # says nothing to anyone else
    assert [c["id"] for c in w.claims("insurer-officer").claims(w.pseudonym())] == [claim]
