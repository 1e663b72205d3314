"""Per-trial study keys (HKDF-SHA256 of the patient's seed), unlinkable subject pseudonyms, and the
off-ledger linkage statement signed with both keys."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.trials import compute_subject_pseudonym, get_consent
from careledger.core.crypto import SigningKey
from careledger.core.errors import AuthError, Code
from careledger.trials.pseudonyms import (
    derive_study_key,
    linkage_statement,
    subject_pseudonym,
    verify_linkage_statement,
)
from support.trials import make_world

SEED = hashlib.sha256(b"careledger-test/patient/alice").digest()


def _rfc5869(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 written out from RFC 5869 (extract, then expand), to check the scheme's parameters."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def test_the_study_key_follows_the_shared_scheme() -> None:
    trial = "trl-0123456789abcdef01234567"
    expected = SigningKey(_rfc5869(SEED, b"careledger/study-key/v1", trial.encode(), 32))
    key = derive_study_key(SEED, trial)
    assert key.public_hex == expected.public_hex
    assert subject_pseudonym(SEED, trial) == "sp-" + hashlib.sha256(key.public_key).digest()[:16].hex()
    with pytest.raises(ValueError):
        derive_study_key(SEED[:31], trial)


def test_pseudonyms_differ_per_trial_and_from_the_patient_pseudonym() -> None:
    patient = SigningKey(SEED)
    a, b = subject_pseudonym(SEED, "trl-a"), subject_pseudonym(SEED, "trl-b")
    assert a != b and a == subject_pseudonym(SEED, "trl-a")
    assert a[3:] != compute_pseudonym(patient.public_hex)[3:]


def test_nothing_on_the_ledger_links_the_subject_to_the_patient() -> None:
    w = make_world()
    trial = w.registered_trial()
    patient = w.patient("alice")
    assert w.ledger.register_patient(patient).code == 0
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    subject = w.subject("alice", trial)
    consent = get_consent(w.ledger.state, trial, subject)
    assert consent is not None and consent.key == w.study_key("alice", trial).public_hex
    trial_values = b"".join(v for k, v in w.ledger.snapshot().items() if k.startswith("trials/"))
    for needle in (patient.public_hex, compute_pseudonym(patient.public_hex)):
        assert needle.encode() not in trial_values
    study = w.study_key("alice", trial).public_hex
    others = {k: v for k, v in w.ledger.snapshot().items() if not k.startswith(("trials/", "nonce/"))}
    assert any(patient.public_hex in k for k in others)  # her registered identity is there ...
    for needle in (study, subject):  # ... and nothing of her trial identity is
        assert all(needle not in k and needle.encode() not in v for k, v in others.items())


def test_the_linkage_statement_proves_the_subject_is_hers_and_nothing_else_passes() -> None:
    patient = SigningKey(SEED)
    trial, chain = "trl-0123456789abcdef01234567", "careledger-test"
    statement = linkage_statement(patient, trial, "hospital", chain, 1_700_000_000_000)
    pt, sp = verify_linkage_statement(statement, chain, trial, "hospital")
    assert pt == compute_pseudonym(patient.public_hex)
    assert sp == compute_subject_pseudonym(derive_study_key(SEED, trial).public_hex)
    with pytest.raises(AuthError) as exc:
        verify_linkage_statement(statement, chain, trial, "clinic")
    assert exc.value.code == Code.REQUEST_MALFORMED
    with pytest.raises(AuthError) as exc:
        verify_linkage_statement(statement, "another-chain", trial, "hospital")
    assert exc.value.code == Code.BAD_SIGNATURE
    swapped = {**statement, "study_signature": statement["patient_signature"]}
    with pytest.raises(AuthError) as exc:
        verify_linkage_statement(swapped, chain, trial, "hospital")
    assert exc.value.code == Code.BAD_SIGNATURE
    other = SigningKey(hashlib.sha256(b"someone else").digest())
    claimed = {**statement, "body": {**statement["body"], "patient_key": other.public_hex,
                                     "patient": compute_pseudonym(other.public_hex)}}
    with pytest.raises(AuthError) as exc:
        verify_linkage_statement(claimed, chain, trial, "hospital")
    assert exc.value.code == Code.BAD_SIGNATURE
    with pytest.raises(AuthError) as exc:
        verify_linkage_statement({"body": {}}, chain, trial, "hospital")
    assert exc.value.code == Code.REQUEST_MALFORMED
