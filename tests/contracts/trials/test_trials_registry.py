"""A trial is a study of the research registry: every registration version writes its study record
(kind ``trial``) through the research contract's layout, which in turn leaves it to the trials contract."""

from __future__ import annotations

import hashlib

from careledger.contracts import research
from careledger.contracts.trials import get_trial
from careledger.core.errors import Code
from support.trials import make_world, sample_dataset


def test_registration_creates_the_trial_study_with_the_who_data_set() -> None:
    w = make_world()
    trial = w.register()
    study = research.get_study(w.ledger.state, trial)
    rec = get_trial(w.ledger.state, trial)
    assert study is not None and rec is not None
    assert (study.id, study.kind, study.version, study.status) == (trial, "trial", 1, "active")
    assert study.sponsor == "research"
    assert study.registration == rec.dataset and study.title == rec.dataset["public_title"]
    assert (study.purpose, study.category, study.ethics_ref) == ("CLINTRCH", "clinical-trial", "REC-23-117")
    assert study.request.resource_types == () and study.period_end_ms is None
    assert (study.registered_height, study.registered_ms, study.registered_by) == (
        rec.registered_height, rec.registered_ms, w.sponsor.public_hex)
    assert research.get_study_version(w.ledger.state, trial, 1) == study


def test_every_registration_version_is_a_study_version_and_completion_closes_it() -> None:
    w = make_world()
    trial = w.register()
    w.ok(w.sponsor, "trials.update_registration", {
        "trial": trial, "reason": "a second country", "dataset": sample_dataset(countries=["GB", "FR", "DE"])})
    w.ok(w.sponsor, "trials.set_recruitment_status", {"trial": trial, "status": "complete",
                                                      "reason": "target reached"})
    study = research.get_study(w.ledger.state, trial)
    assert study is not None and (study.version, study.status) == (3, "closed")
    v1, v2 = (research.get_study_version(w.ledger.state, trial, v) for v in (1, 2))
    assert v1 is not None and v2 is not None
    assert v1.registration is not None and v2.registration is not None
    assert (v1.registration["countries"], v2.registration["countries"]) == (["FR", "GB"], ["DE", "FR", "GB"])
    assert (v1.status, v2.status, v2.updated_height) == ("active", "active", v1.updated_height + 1)


def test_the_research_contract_leaves_a_trial_to_its_own_contract() -> None:
    w = make_world()
    trial = w.register()
    before = w.snapshot()
    spec = {"title": "Not a trial", "category": "oncology", "ethics_ref": "REC-1", "period": {"start_ms": 0},
            "request": {"resource_types": ["Patient"]}}
    for tx, payload in (("research.new_version", {**spec, "study": trial, "version": 2}),
                        ("research.close_study", {"study": trial})):
        assert w.run(w.sponsor, tx, payload).code == Code.STUDY_KIND_MISMATCH
    assert w.snapshot() == before


def test_a_refused_registration_writes_no_study() -> None:
    w = make_world()
    r = w.run(w.sponsor, "trials.register", {
        "dataset": sample_dataset(recruitment_status="complete"),
        "protocol": {"document_hash": hashlib.sha256(b"d").hexdigest(), "consent_form_hash": "0" * 64}})
    assert r.code == Code.TRIAL_REGISTRATION_INVALID
    assert not [k for k in w.snapshot() if k.startswith(("research/", "trials/"))]
