"""Subjects under the registry's study keys: nothing on the ledger links a subject to the patient, and
the site learns who she is only from the linkage statement she addresses to it."""

from __future__ import annotations

from careledger.contracts.identity import compute_pseudonym
from careledger.contracts.research.study_keys import LinkageInvalid, make_linkage_statement, verify_linkage_statement
from careledger.contracts.trials import get_consent
from careledger.core.errors import Code
from support import CHAIN_ID, GENESIS_TIME_MS
from support.trials import make_world


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
    trial_values = b"".join(v for k, v in w.ledger.snapshot().items() if k.startswith(("trials/", "research/")))
    for needle in (patient.public_hex, compute_pseudonym(patient.public_hex)):
        assert needle.encode() not in trial_values
    study = w.study_key("alice", trial).public_hex
    others = {k: v for k, v in w.ledger.snapshot().items() if not k.startswith(("trials/", "nonce/"))}
    assert any(patient.public_hex in k for k in others)  # her registered identity is there ...
    for needle in (study, subject):  # ... and nothing of her trial identity is
        assert all(needle not in k and needle.encode() not in v for k, v in others.items())


def test_the_site_learns_the_subject_from_her_statement_and_no_other_site_can_use_it() -> None:
    w = make_world()
    trial = w.registered_trial()
    alice = w.patient("alice")
    statement = make_linkage_statement(alice, CHAIN_ID, "study", trial, "hospital", GENESIS_TIME_MS)
    link = verify_linkage_statement(statement, CHAIN_ID, "hospital", scope="study", target=trial)
    assert (link.patient, link.subject) == (compute_pseudonym(alice.public_hex), w.subject("alice", trial))
    for audience, target in (("clinic", trial), ("hospital", "trl-" + "0" * 24)):
        try:
            verify_linkage_statement(statement, CHAIN_ID, audience, scope="study", target=target)
        except LinkageInvalid as exc:
            assert exc.code == Code.LINKAGE_INVALID
        else:
            raise AssertionError(f"a statement for the hospital passed at {audience} for {target}")
