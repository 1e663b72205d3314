"""The study-key scheme and the linkage statement (careledger.contracts.research.study_keys), shared by
research studies and trials: known answers, unlinkability, and every binding of the statement."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.research.study_keys import (
    LINKAGE_KIND,
    LinkageInvalid,
    compute_study_pseudonym,
    derive_study_key,
    make_linkage_statement,
    scope_info,
    study_pseudonym,
    subject_pseudonym,
    verify_linkage_statement,
)
from careledger.core import codec
from careledger.core.crypto import ED25519_SHA256
from careledger.core.errors import Code
from support import CHAIN_ID, seeded_key

SEED = bytes(range(32))
STUDY = "study-0123456789abcdef01234567"
TRIAL = "trl-0123456789abcdef01234567"
ISSUED = 1_700_000_000_000


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 by hand (one block of output): the independent check of the derivation."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_study_key_derivation_known_answer() -> None:
    key = derive_study_key(SEED, STUDY)
    assert key.seed == _hkdf_sha256(SEED, b"careledger/study-key/v1", STUDY.encode())
    assert key.seed.hex() == "a33b13f2fa1c9adb76274b408b881135c035198c25f1a2c65ff50c081f6d3422"
    assert key.public_hex == "5cd56816514ba692b2220973180f10fb3206fb4adc53e1f2f279f5e7bae76451"
    assert study_pseudonym(key) == "sp-50237a7942dbef2541636f2e1ba2c9e7"
    assert study_pseudonym(key) == "sp-" + hashlib.sha256(key.public_key).digest()[:16].hex()
    broad = derive_study_key(SEED, scope_info("category", "oncology"))
    assert study_pseudonym(broad) == "sp-59bbba94bcc44046b44af3a9496453e0"


def test_a_trial_is_a_study_to_the_scheme() -> None:
    """A trial's subject is the study pseudonym of the trial id: one derivation, whichever contract."""
    key = derive_study_key(SEED, TRIAL)
    assert key.seed == _hkdf_sha256(SEED, b"careledger/study-key/v1", TRIAL.encode())
    assert subject_pseudonym(SEED, TRIAL) == compute_study_pseudonym(key.public_hex) == study_pseudonym(key)
    assert derive_study_key(SEED, scope_info("study", TRIAL)).seed == key.seed


def test_study_pseudonyms_do_not_link() -> None:
    patient = seeded_key("keys/patient")
    a, b = derive_study_key(patient.seed, "study-a1"), derive_study_key(patient.seed, "study-b2")
    names = {compute_pseudonym(patient.public_hex), study_pseudonym(a), study_pseudonym(b),
             compute_study_pseudonym(derive_study_key(seeded_key("keys/other").seed, "study-a1").public_hex)}
    assert len(names) == 4
    with pytest.raises(ValueError):
        derive_study_key(b"short", "study-a1")
    with pytest.raises(ValueError):
        scope_info("cohort", "x")


def test_the_statement_is_the_documented_bytes() -> None:
    patient = seeded_key("keys/patient")
    doc = make_linkage_statement(patient, CHAIN_ID, "study", TRIAL, "hospital", ISSUED)
    study = derive_study_key(patient.seed, TRIAL)
    assert doc["statement"] == {"audience": "hospital", "chain_id": CHAIN_ID, "issued_ms": ISSUED,
                                "kind": "careledger/study-linkage/v2", "patient_key": patient.public_hex,
                                "scope": "study", "study_key": study.public_hex, "target": TRIAL}
    message = LINKAGE_KIND.encode() + b"\x00" + codec.encode(doc["statement"])
    ED25519_SHA256.verify(patient.public_key, "proof", CHAIN_ID, message, bytes.fromhex(doc["patient_sig"]))
    ED25519_SHA256.verify(study.public_key, "proof", CHAIN_ID, message, bytes.fromhex(doc["study_sig"]))
    with pytest.raises(ValueError):
        make_linkage_statement(patient, CHAIN_ID, "cohort", TRIAL, "hospital", ISSUED)
    with pytest.raises(ValueError):
        make_linkage_statement(patient, CHAIN_ID, "study", TRIAL, "hospital", -1)


def test_linkage_statement_binds_both_keys_the_chain_the_study_and_the_audience() -> None:
    patient = seeded_key("keys/patient")
    doc = make_linkage_statement(patient, CHAIN_ID, "study", STUDY, "hospital", ISSUED)
    link = verify_linkage_statement(doc, CHAIN_ID, "hospital", scope="study", target=STUDY)
    assert link.patient == compute_pseudonym(patient.public_hex)
    assert link.subject == study_pseudonym(derive_study_key(patient.seed, STUDY))
    assert (link.scope, link.target, link.audience, link.issued_ms) == ("study", STUDY, "hospital", ISSUED)
    other = make_linkage_statement(seeded_key("keys/mallory"), CHAIN_ID, "study", STUDY, "hospital", ISSUED)

    def changed(**fields: Any) -> dict[str, Any]:
        return {**doc, "statement": {**doc["statement"], **fields}}

    bad: list[Any] = [
        {**doc, "study_sig": doc["patient_sig"]},                                       # a signature swapped
        {**other, "statement": {**other["statement"], "patient_key": patient.public_hex}},  # her key claimed
        changed(target="study-" + "9" * 24), changed(issued_ms=ISSUED + 1),            # any change to the body
        changed(extra=1), changed(issued_ms="1"), changed(scope="cohort"), changed(kind="careledger/study-linkage/v1"),
        {k: v for k, v in doc.items() if k != "study_sig"}, {}, {"statement": None}, None, [],
        {**doc, "patient_sig": "zz"}, changed(patient_key="00" * 31),
    ]
    for case in bad:
        with pytest.raises(LinkageInvalid) as err:
            verify_linkage_statement(case, CHAIN_ID, "hospital")
        assert err.value.code == Code.LINKAGE_INVALID
    for kwargs, reason in (({"chain_id": "careledger-other", "audience": "hospital"}, "another chain"),
                           ({"chain_id": CHAIN_ID, "audience": "clinic"}, "another organisation")):
        with pytest.raises(LinkageInvalid, match=reason):
            verify_linkage_statement(doc, kwargs["chain_id"], kwargs["audience"])
    for scope, target in (("category", STUDY), ("study", TRIAL)):
        with pytest.raises(LinkageInvalid, match="another study"):
            verify_linkage_statement(doc, CHAIN_ID, "hospital", scope=scope, target=target)
