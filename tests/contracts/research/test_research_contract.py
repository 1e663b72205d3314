"""The research contract through the in-memory ledger: registry, research consent, releases, queries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.researchstudy import ResearchStudy

from careledger.contracts import research as rc
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.state import Overlay
from careledger.research.patient import research_consent_to_fhir, research_log, studies_released_to, study_to_fhir
from careledger.research.release import snapshot_root
from careledger.research.synthetic import generate_patient
from support import GENESIS_TIME_MS, seeded_key
from support.research import DAY_MS, World, study_spec, subject_of, version_spec


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _state(world: World) -> dict[str, bytes]:
    return {k: v for k, v in world.ledger.snapshot().items() if not k.startswith("nonce/")}


def refused(world: World, key: SigningKey, tx_type: str, payload: dict[str, Any], code: Code) -> None:
    """The transaction is included with ``code`` and writes nothing."""
    before = _state(world)
    receipt = world.ledger.run(key, tx_type, payload)
    assert receipt.code == code, (receipt.code, receipt.message)
    assert _state(world) == before


def _people(world: World, n: int) -> list[Any]:
    return [world.add_patient(f"p{i}", generate_patient("contract", i, encounters=1)) for i in range(n)]


def _release(world: World, sid: str, entries: list[tuple[str, str]], **over: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "study": sid, "study_version": 1, "custodian": "hospital", "recipient": world.researcher.public_hex,
        "dataset_root": "ab" * 32, "records": 40, "subjects": len(entries), "snapshot_root": snapshot_root(entries),
        "resource_types": ["Condition", "Patient"], "quasi_identifiers": ["birth_year", "sex", "zip3"],
        "config_hash": "cd" * 32, "rule_version": "safe-harbor/v1", "zip3_list": "census-2010", "zip3_vintage": 2010,
        "k_achieved": 5, "suppressed": 0, "as_of_day": world.as_of_day,
        "entries": [{"consent": c, "subject": s} for s, c in entries]}
    payload.update(over)
    return payload


# --- the registry ------------------------------------------------------------------------------------------

def test_register_version_close_and_read(world: World) -> None:
    sid = world.register_study()
    study = rc.get_study(world.view, sid)
    assert study is not None and study.kind == "data" and study.version == 1 and study.status == "active"
    assert study.sponsor == "research" and study.ethics_ref == "IRB-2025-117" and study.consent_version == 1
    assert study.request.resource_types == ("Condition", "Encounter", "Immunization", "MedicationRequest",
                                            "Observation", "Patient", "Procedure")
    ResearchStudy.model_validate(study_to_fhir(study))  # the registry entry is a valid FHIR ResearchStudy
    world.ok(world.researcher, "research.new_version", {**version_spec(title="Cardiometabolic outcomes v2"),
                                                       "study": sid, "version": 2, "reconsent": True})
    v2 = rc.get_study(world.view, sid)
    assert v2 is not None and v2.version == 2 and v2.consent_version == 2 and v2.title.endswith("v2")
    first = rc.get_study_version(world.view, sid, 1)
    assert first is not None and first.version == 1 and first.title == "Cardiometabolic outcomes"
    world.ok(world.researcher, "research.close_study", {"study": sid})
    closed = rc.get_study(world.view, sid)
    assert closed is not None and closed.status == "closed"


@pytest.mark.parametrize(("over", "code"), [
    ({"request": {"resource_types": ["Condition"]}}, Code.STUDY_INVALID),                     # no Patient
    ({"request": {"resource_types": ["Patient", "Claim"]}}, Code.STUDY_INVALID),             # not releasable
    ({"request": {"resource_types": ["Patient"], "elements": ["Condition.code"]}}, Code.STUDY_INVALID),
    ({"anonymity": {"l": 2}}, Code.STUDY_INVALID),                                            # l without a type
    ({"anonymity": {"quasi_identifiers": ["sex", "sex"]}}, Code.STUDY_INVALID),
    ({"period": {"start_ms": 10, "end_ms": 5}}, Code.STUDY_INVALID),
    ({"sponsor": "nowhere"}, Code.NOT_STUDY_SPONSOR),
])
def test_register_refusals(world: World, over: dict[str, Any], code: Code) -> None:
    refused(world, world.researcher, "research.register_study", study_spec(**over), code)


def test_only_the_sponsor_registers_and_changes(world: World) -> None:
    refused(world, world.consortium.admin("hospital"), "research.register_study", study_spec(), Code.NOT_STUDY_SPONSOR)
    sid = world.register_study()
    outsider = world.consortium.admin("hospital")
    refused(world, outsider, "research.close_study", {"study": sid}, Code.NOT_STUDY_SPONSOR)
    refused(world, world.researcher, "research.new_version", {**version_spec(), "study": sid, "version": 3},
            Code.STUDY_VERSION_CONFLICT)
    refused(world, world.researcher, "research.close_study", {"study": "study-" + "0" * 24}, Code.STUDY_UNKNOWN)


def test_k_below_five_is_not_even_a_valid_payload(world: World) -> None:
    raw = world.ledger.tx(world.researcher, "research.register_study", study_spec(anonymity={"k": 3}))
    assert world.ledger.refused(raw).code == Code.INVALID_PAYLOAD


def test_a_trial_is_a_study_another_contract_writes(world: World) -> None:
    sid = world.register_study()
    study = rc.get_study(world.view, sid)
    assert study is not None
    overlay = Overlay(world.view)
    trial = replace(study, id="study-" + "1" * 24, kind="trial", purpose="CLINTRCH",
                    registration={"primary_registry": "ISRCTN", "trial_id": "ISRCTN12345678"})
    rc.put_study(overlay, trial)
    back = rc.get_study(overlay, trial.id)
    assert back == trial and rc.get_study_version(overlay, trial.id, 1) == trial
    # a broad consent never covers a trial; a study consent to it does
    broad = rc.ResearchConsentRecord("rcn-" + "2" * 24, "sp-" + "3" * 32, "category", trial.category, None, (),
                                     "active", 1, 1)
    specific = replace(broad, scope="study", target=trial.id, study_version=1)
    assert not rc.consent_covers(broad, trial) and rc.consent_covers(specific, trial)
    assert rc.consent_covers(broad, study)


# --- research consent ---------------------------------------------------------------------------------------

def test_consent_under_a_study_pseudonym(world: World) -> None:
    sid = world.register_study()
    (p,) = _people(world, 1)
    cid = world.opt_in(p, "study", sid, link=False)
    subject = subject_of(p, "study", sid)
    consent = rc.get_consent_by_id(world.view, cid)
    assert consent is not None and consent.subject == subject and consent.study_version == 1
    assert subject != p.pseudonym and p.pseudonym not in str(world.ledger.get(f"research/consent/{subject}/{cid}"))
    Consent.model_validate(research_consent_to_fhir(consent, rc.get_study(world.view, sid)))
    broad = world.opt_in(p, "category", "cardiometabolic", link=False)
    record = rc.get_consent_by_id(world.view, broad)
    assert record is not None and record.subject == subject_of(p, "category", "cardiometabolic") != subject
    Consent.model_validate(research_consent_to_fhir(record))


def test_consent_refusals(world: World) -> None:
    sid = world.register_study()
    (p,) = _people(world, 1)
    key = p.study_key("study", sid)
    refused(world, p.key, "research.consent", {"scope": "study", "target": sid}, Code.STUDY_KEY_REGISTERED)
    refused(world, key, "research.consent", {"scope": "study", "target": "study-" + "9" * 24}, Code.STUDY_UNKNOWN)
    refused(world, key, "research.consent", {"scope": "category", "target": "Cardio"}, Code.STUDY_INVALID)
    refused(world, key, "research.consent", {"scope": "study", "target": sid, "resource_types": ["Coverage"]},
            Code.STUDY_INVALID)
    cid = world.opt_in(p, "study", sid, link=False)
    refused(world, key, "research.consent", {"scope": "study", "target": sid}, Code.RESEARCH_CONSENT_EXISTS)
    refused(world, seeded_key("someone else's study key"), "research.revoke_consent", {"consent": cid},
            Code.NOT_CONSENT_SUBJECT)
    refused(world, key, "research.revoke_consent", {"consent": "rcn-" + "0" * 24}, Code.RESEARCH_CONSENT_UNKNOWN)
    world.ok(key, "research.revoke_consent", {"consent": cid})
    refused(world, key, "research.revoke_consent", {"consent": cid}, Code.RESEARCH_CONSENT_REVOKED)
    world.ok(world.researcher, "research.close_study", {"study": sid})
    refused(world, key, "research.consent", {"scope": "study", "target": sid}, Code.STUDY_CLOSED)


# --- anchored releases -------------------------------------------------------------------------------------

def test_release_anchor_snapshot_and_the_patients_log(world: World) -> None:
    sid = world.register_study()
    people = _people(world, 3)
    entries = sorted((subject_of(p, "study", sid), world.opt_in(p, "study", sid, link=False)) for p in people)
    first = world.ok(world.vault.gateway_key, "research.release", _release(world, sid, entries[:2], subjects=3,
                                                                            snapshot_root=snapshot_root(entries)))
    rid = first["release"]
    assert first["status"] == "anchoring"
    refused(world, world.vault.gateway_key, "research.release_subjects",
            {"release": rid, "entries": [{"consent": entries[0][1], "subject": entries[0][0]}]},
            Code.RELEASE_SUBJECT_DUPLICATE)
    done = world.ok(world.vault.gateway_key, "research.release_subjects",
                    {"release": rid, "entries": [{"consent": entries[2][1], "subject": entries[2][0]}]})
    assert done["status"] == "complete"
    release = rc.get_release(world.view, rid)
    assert release is not None and release.k_achieved == 5 and release.zip3_vintage == 2010
    assert list(rc.release_subjects(world.view, rid)) == entries
    refused(world, world.vault.gateway_key, "research.release_subjects",
            {"release": rid, "entries": [{"consent": entries[2][1], "subject": entries[2][0]}]}, Code.RELEASE_COMPLETE)
    # the patient finds the release under her study pseudonym; nothing is filed under her usual one
    log = research_log(world.view, people[0].key.seed, [("study", sid)])
    assert [(e["study"], e["release"], e["custodian"]) for e in log] == [(sid, rid, "hospital")]
    assert log[0]["text"].startswith(f"de-identified data released to study {sid} at height")
    assert studies_released_to(world.view, people[0].key.seed, [("study", sid)]) == [sid]
    assert all(people[0].pseudonym not in k for k in world.ledger.snapshot() if k.startswith("research/"))
    assert rc.releases_of_study(world.view, sid) == [rid]


@pytest.mark.parametrize(("over", "code"), [
    ({"k_achieved": 4}, Code.RELEASE_K_TOO_LOW),
    ({"resource_types": ["Patient", "Claim"]}, Code.RELEASE_TYPES_NOT_REQUESTED),
    ({"quasi_identifiers": ["sex", "zip3"]}, Code.RELEASE_RULES_MISMATCH),
    ({"suppressed": 1}, Code.RELEASE_RULES_MISMATCH),
    ({"study_version": 2}, Code.STUDY_VERSION_CONFLICT),
    ({"snapshot_root": "ee" * 32}, Code.RELEASE_SNAPSHOT_MISMATCH),
    ({"study": "study-" + "9" * 24}, Code.STUDY_UNKNOWN),
])
def test_release_refusals(world: World, over: dict[str, Any], code: Code) -> None:
    sid = world.register_study()
    people = _people(world, 2)
    entries = sorted((subject_of(p, "study", sid), world.opt_in(p, "study", sid, link=False)) for p in people)
    refused(world, world.vault.gateway_key, "research.release", _release(world, sid, entries, **over), code)


def test_release_signer_recipient_l_and_revoked_consent(world: World) -> None:
    sid = world.register_study(anonymity={"k": 5, "l": 2, "sensitive_type": "Condition"})
    people = _people(world, 2)
    entries = sorted((subject_of(p, "study", sid), world.opt_in(p, "study", sid, link=False)) for p in people)
    key = world.vault.gateway_key
    refused(world, world.consortium.admin("clinic"), "research.release", _release(world, sid, entries),
            Code.NOT_RELEASE_CUSTODIAN)
    refused(world, key, "research.release", _release(world, sid, entries), Code.RELEASE_L_TOO_LOW)
    refused(world, key, "research.release", _release(world, sid, entries, l_achieved=2,
                                                     recipient=world.consortium.admin("hospital").public_hex),
            Code.RELEASE_RECIPIENT_INVALID)
    p = people[0]
    world.ok(p.study_key("study", sid), "research.revoke_consent", {"consent": dict((s, c) for s, c in entries)[
        subject_of(p, "study", sid)]})
    refused(world, key, "research.release", _release(world, sid, entries, l_achieved=2),
            Code.RESEARCH_CONSENT_NOT_COVERING)
    other = [(s, c) for s, c in entries if s != subject_of(p, "study", sid)]
    wrong = [(other[0][0], entries[0][1] if entries[0][0] != other[0][0] else entries[1][1])]
    refused(world, key, "research.release", _release(world, sid, wrong, l_achieved=2), Code.RESEARCH_CONSENT_UNKNOWN)
    assert world.ok(key, "research.release", _release(world, sid, other, l_achieved=2))["status"] == "complete"


def test_renewed_consent_is_required_after_a_reconsent_version(world: World) -> None:
    sid = world.register_study()
    people = _people(world, 2)
    entries = sorted((subject_of(p, "study", sid), world.opt_in(p, "study", sid, link=False)) for p in people)
    world.ok(world.researcher, "research.new_version", {**version_spec(), "study": sid, "version": 2,
                                                       "reconsent": True})
    refused(world, world.vault.gateway_key, "research.release", _release(world, sid, entries, study_version=2),
            Code.RESEARCH_CONSENT_NOT_COVERING)
    world.ok(world.researcher, "research.close_study", {"study": sid})
    refused(world, world.vault.gateway_key, "research.release", _release(world, sid, entries, study_version=2),
            Code.STUDY_CLOSED)


def test_a_release_is_anchored_only_within_the_study_period(world: World) -> None:
    """Closed is not the only way a study stops: before its period starts and from its end on, no release
    is anchored and no anchoring release gets more snapshot entries (STUDY_CLOSED, nothing written), as
    no consent or query is accepted then."""
    key = world.vault.gateway_key
    people = _people(world, 6)
    block_ms = 1000
    now = GENESIS_TIME_MS + world.ledger.height * block_ms
    later = world.register_study(title="Not started", period={"start_ms": now + DAY_MS, "end_ms": now + 2 * DAY_MS})
    broad = sorted((subject_of(p, "category", "cardiometabolic"), world.opt_in(p, "category", "cardiometabolic",
                                                                                link=False)) for p in people)
    refused(world, key, "research.release", _release(world, later, broad), Code.STUDY_CLOSED)

    end_ms = GENESIS_TIME_MS + (world.ledger.height + 10) * block_ms  # open for nine more blocks
    ending = world.register_study(title="Ending", period={"start_ms": GENESIS_TIME_MS, "end_ms": end_ms})
    entries = sorted((subject_of(p, "study", ending), world.opt_in(p, "study", ending, link=False)) for p in people)
    first = {**_release(world, ending, entries), "entries": [{"consent": c, "subject": s} for s, c in entries[:3]]}
    anchoring = world.ok(key, "research.release", first)  # within the period: anchored, three entries to come
    assert anchoring["status"] == "anchoring" and anchoring["subjects_anchored"] == 3
    while world.ledger.env().time_ms < end_ms:
        world.ledger.block()  # the study's period runs out (it is still active: nobody closed it)
    study = rc.get_study(world.view, ending)
    assert study is not None and study.status == "active" and not study.is_open_at(world.ledger.env().time_ms)
    rest = {"release": anchoring["release"], "entries": [{"consent": c, "subject": s} for s, c in entries[3:]]}
    refused(world, key, "research.release_subjects", rest, Code.STUDY_CLOSED)
    refused(world, key, "research.release", _release(world, ending, entries), Code.STUDY_CLOSED)
    release = rc.get_release(world.view, anchoring["release"])
    assert release is not None and release.status == "anchoring" and release.subjects_anchored == 3


# --- aggregate queries ---------------------------------------------------------------------------------------

def _query(sid: str, **over: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"measure": "count", "group_by": ["sex"]}
    q.update(over)
    return {"study": sid, "query": q}


def test_query_and_answer_anchors(world: World) -> None:
    sid = world.register_study()
    qid = world.ok(world.researcher, "research.query", _query(sid))["query"]
    query = rc.get_query(world.view, qid)
    assert query is not None and query.query_hash == rc.compute_query_hash(query.query)
    answer = {"answer_hash": "aa" * 32, "cells": 2, "contributors": 30, "custodian": "hospital", "query": qid,
              "suppressed_cells": 1}
    world.ok(world.vault.gateway_key, "research.answer", answer)
    assert [a.custodian for a in rc.answers_to(world.view, qid)] == ["hospital"]
    refused(world, world.vault.gateway_key, "research.answer", answer, Code.QUERY_ANSWERED)
    refused(world, world.vault.gateway_key, "research.answer", {**answer, "query": "rq-" + "0" * 24},
            Code.QUERY_UNKNOWN)


@pytest.mark.parametrize(("over", "code"), [
    ({"measure": "sum"}, Code.QUERY_INVALID),
    ({"sum_of": "resources:Encounter"}, Code.QUERY_INVALID),
    ({"group_by": ["condition"]}, Code.QUERY_INVALID),
])
def test_query_refusals(world: World, over: dict[str, Any], code: Code) -> None:
    sid = world.register_study()
    refused(world, world.researcher, "research.query", _query(sid, **over), code)


def test_only_the_sponsors_researchers_query_and_custodians_answer(world: World) -> None:
    sid = world.register_study()
    refused(world, world.consortium.admin("hospital"), "research.query", _query(sid), Code.NOT_STUDY_SPONSOR)
    qid = world.ok(world.researcher, "research.query", _query(sid))["query"]
    answer = {"answer_hash": "aa" * 32, "cells": 1, "contributors": 0, "custodian": "hospital", "query": qid,
              "suppressed_cells": 2}
    refused(world, world.vault.gateway_key, "research.answer", answer, Code.QUERY_INVALID)
    refused(world, world.researcher, "research.answer", {**answer, "suppressed_cells": 0}, Code.NOT_RELEASE_CUSTODIAN)
