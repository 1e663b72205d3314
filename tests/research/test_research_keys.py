"""Per-study keys and pseudonyms (the scheme shared with trials), and linkage statements."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.research import compute_study_pseudonym
from careledger.research.keys import (
    LinkageInvalid,
    derive_study_key,
    make_linkage_statement,
    scope_info,
    study_pseudonym,
    verify_linkage_statement,
)
from support import CHAIN_ID, seeded_key

SEED = bytes(range(32))
STUDY = "study-0123456789abcdef01234567"


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


def test_linkage_statement_binds_both_keys() -> None:
    patient = seeded_key("keys/patient")
    doc = make_linkage_statement(patient, CHAIN_ID, "study", STUDY)
    link = verify_linkage_statement(doc, CHAIN_ID)
    assert link.patient == compute_pseudonym(patient.public_hex)
    assert link.subject == study_pseudonym(derive_study_key(patient.seed, STUDY))
    swapped = {**doc, "study_sig": doc["patient_sig"]}
    other_study = make_linkage_statement(seeded_key("keys/mallory"), CHAIN_ID, "study", STUDY)
    stolen = {**other_study, "statement": {**other_study["statement"], "patient_key": patient.public_hex}}
    for bad in (swapped, stolen, {**doc, "statement": {**doc["statement"], "extra": 1}}, {}, {"statement": None}):
        with pytest.raises(LinkageInvalid):
            verify_linkage_statement(bad, CHAIN_ID)
    with pytest.raises(LinkageInvalid, match="another chain"):
        verify_linkage_statement(doc, "careledger-other")


def test_the_scheme_is_the_trials_scheme_byte_for_byte() -> None:
    from careledger.trials.pseudonyms import derive_study_key as trial_key
    from careledger.trials.pseudonyms import subject_pseudonym

    patient = seeded_key("keys/patient")
    for study in (STUDY, "trl-" + "a" * 24):
        assert derive_study_key(patient.seed, study).seed == trial_key(patient.seed, study).seed
        assert study_pseudonym(derive_study_key(patient.seed, study)) == subject_pseudonym(patient.seed, study)
