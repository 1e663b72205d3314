"""The trials contract through the in-memory ledger (real execution): registration before enrolment,
consent to the current protocol, concealed randomisation, visits after amendments, lock and tamper
detection with a real site vault, E2A deadlines at the right block, and outcome switching."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from careledger.contracts import trials as contract
from careledger.contracts.trials.allocation import verify_allocation
from careledger.contracts.trials.anchors import verify_anchored
from careledger.contracts.trials.safety import DAY_MS
from careledger.core.errors import Code
from careledger.core.merkle import ProofError
from careledger.trials.anchor_tree import AnchorTree
from careledger.vault.canonical import canonical_bytes, compute_commitment
from careledger.vault.fhir import validate_resource
from careledger.vault.store import Vault
from support.trials import (
    DOC_V2,
    FORM_V1,
    FORM_V2,
    World,
    day_start,
    make_world,
    sample_dataset,
    synthea_observations,
)


def _commit(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _latest_block_ms(w: World) -> int:
    return int(w.ledger.history[-1].result.header_fields["time_ms"])


def _amend(w: World, trial: str, version: int, reconsent: bool) -> None:
    w.ok(w.sponsor, "trials.amend_protocol", {
        "trial": trial, "version": version, "document_hash": DOC_V2 if version == 2 else _commit(f"doc {version}"),
        "consent_form_hash": FORM_V2 if version == 2 else _commit(f"form {version}"),
        "reason": "dose adjustment after the interim safety review", "reconsent_required": reconsent})


# --- registration must come first ------------------------------------------------------------------

def test_enrolment_before_registration_is_refused() -> None:
    w = make_world()
    trial = "trl-" + "0" * 24
    r = w.run(w.investigator, "trials.enrol", {"trial": trial, "site": "hospital",
                                               "subject": w.subject("alice", trial)})
    assert r.code == Code.TRIAL_UNKNOWN
    assert w.consent("alice", trial).code == Code.TRIAL_UNKNOWN


def test_enrolment_in_the_registering_block_is_refused() -> None:
    """Registration must be committed in an earlier block than the first enrolment (COMPare's baseline)."""
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    # a second trial registered and enrolled into in the same block: the enrolment is refused
    raw_register = w.ledger.tx(w.sponsor, "trials.register", {
        "dataset": sample_dataset(design__allocation="non_randomised", design__masking="none"),
        "protocol": {"document_hash": _commit("d"), "consent_form_hash": FORM_V1}})
    checked = w.ledger.check(raw_register)
    new_trial = "trl-" + checked.tx.hash_hex[:24]
    raw_site = w.ledger.tx(w.sponsor, "trials.add_site", {
        "trial": new_trial, "org": "hospital",
        "ethics": {"status": "approved", "committee": "c", "contact": "c", "approval_date": "2023-10-20"},
        "investigators": [{"key": w.investigator.public_hex, "role": "principal_investigator"}]})
    raw_consent = w.ledger.tx(w.study_key("alice", new_trial), "trials.consent", {
        "trial": new_trial, "protocol_version": 1, "consent_form_hash": FORM_V1})
    raw_enrol = w.ledger.tx(w.investigator, "trials.enrol", {"trial": new_trial, "site": "hospital",
                                                             "subject": w.subject("alice", new_trial)})
    outcome = w.ledger.block(raw_register, raw_site, raw_consent, raw_enrol)
    assert outcome.codes == [0, 0, 0, Code.TRIAL_UNKNOWN]
    assert w.run(w.investigator, "trials.enrol", {"trial": new_trial, "site": "hospital",
                                                  "subject": w.subject("alice", new_trial)}).code == 0


# --- consent to the current protocol ---------------------------------------------------------------

def test_enrolment_with_consent_to_an_old_version_is_refused() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    _amend(w, trial, 2, reconsent=True)
    before = w.snapshot()
    r = w.enrol("alice", trial)
    assert r.code == Code.TRIAL_CONSENT_STALE
    assert w.snapshot() == before
    assert w.consent("alice", trial, 1, FORM_V1).code == Code.TRIAL_CONSENT_STALE  # the old form is closed
    assert w.consent("alice", trial, 2, FORM_V1).code == Code.TRIAL_CONSENT_FORM_MISMATCH
    assert w.consent("alice", trial, 2, FORM_V2).code == 0
    r = w.enrol("alice", trial)
    assert r.code == 0 and r.result["slot"] == 0


def test_an_amendment_without_reconsent_keeps_earlier_consent_valid() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    _amend(w, trial, 2, reconsent=False)
    assert w.enrol("alice", trial).code == 0


def test_visit_data_after_a_reconsent_amendment_is_refused_until_reconsent() -> None:
    w = make_world()
    trial = w.registered_trial()
    for name in ("alice", "bob"):
        assert w.consent(name, trial).code == 0
        assert w.enrol(name, trial).code == 0
    assert w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v1", [_commit("a1")])).code == 0
    _amend(w, trial, 2, reconsent=True)
    assert sorted(contract.subjects_awaiting_reconsent(w.ledger.state, trial)) == sorted(
        [w.subject("alice", trial), w.subject("bob", trial)])
    before = w.snapshot()
    r = w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v2", [_commit("a2")]))
    assert r.code == Code.TRIAL_RECONSENT_REQUIRED
    assert w.snapshot() == before
    # the refusal is public: its receipt carries the code, in a committed block
    assert w.ledger.history[-1].receipts[0].code == Code.TRIAL_RECONSENT_REQUIRED
    assert w.consent("alice", trial, 2, FORM_V2).code == 0
    assert contract.subjects_awaiting_reconsent(w.ledger.state, trial) == [w.subject("bob", trial)]
    r = w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v2", [_commit("a2")]))
    assert r.code == 0 and r.result["first_leaf"] == 1
    assert w.run(w.investigator, "trials.record_visits",
                 w.visit_payload(trial, "bob", "v1", [_commit("b1")])).code == Code.TRIAL_RECONSENT_REQUIRED


def test_withdrawn_consent_stops_visits() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    w.ok(w.study_key("alice", trial), "trials.withdraw_consent", {"trial": trial})
    r = w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v1", [_commit("a1")]))
    assert r.code == Code.TRIAL_CONSENT_WITHDRAWN


# --- concealed, verifiable randomisation ------------------------------------------------------------

def test_an_allocation_that_does_not_match_the_commitment_is_refused() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    other = w.schedule.reveal("hospital|50-64", 1, sealed=True).to_json()  # slot 1's sealed hash at slot 0
    forged = w.enrol_payload("alice", trial, sealed=other["sealed"])
    before = w.snapshot()
    assert w.run(w.investigator, "trials.enrol", forged).code == Code.TRIAL_ALLOCATION_MISMATCH
    skipped = w.enrol_payload("alice", trial) | {"allocation": w.reveal(trial, "hospital|50-64", index=1)}
    assert w.run(w.investigator, "trials.enrol", skipped).code == Code.TRIAL_ALLOCATION_OUT_OF_ORDER
    opened = w.enrol_payload("alice", trial) | {"allocation": w.reveal(trial, "hospital|50-64", sealed=False)}
    assert w.run(w.investigator, "trials.enrol", opened).code == Code.TRIAL_ALLOCATION_UNBLINDS
    assert w.snapshot() == before
    assert w.enrol("alice", trial).code == 0


def test_allocations_follow_each_stratum_and_unblind_after_lock() -> None:
    w = make_world()
    trial = w.registered_trial()
    people = [("p0", "hospital|50-64", "hospital"), ("p1", "hospital|65-85", "hospital"),
              ("p2", "hospital|50-64", "hospital"), ("p3", "clinic|50-64", "clinic")]
    for name, stratum, site in people:
        assert w.consent(name, trial).code == 0
        r = w.enrol(name, trial, stratum, site)
        assert r.code == 0 and r.result["arm"] is None  # masked: the arm stays sealed on the ledger
    status = contract.get_status(w.ledger.state, trial)
    assert status is not None
    assert dict(status.next_slot) == {"hospital|50-64": 2, "hospital|65-85": 1, "clinic|50-64": 1}
    r = w.run(w.sponsor, "trials.unblind", {"trial": trial, "allocations": [
        {"subject": w.subject("p0", trial), "arm": "app", "salt": "00" * 32}]})
    assert r.code == Code.TRIAL_NOT_LOCKED
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    reveal = []
    for name, stratum, _ in people:
        subject = contract.get_subject(w.ledger.state, trial, w.subject(name, trial))
        assert subject is not None and subject.slot is not None
        a = w.schedule.allocation(stratum, subject.slot)
        reveal.append({"subject": subject.subject, "arm": a.arm, "salt": a.salt.hex()})
    wrong = [dict(reveal[0], arm="sham" if reveal[0]["arm"] == "app" else "app")]
    assert w.run(w.sponsor, "trials.unblind", {"trial": trial, "allocations": wrong}).code \
        == Code.TRIAL_ALLOCATION_MISMATCH
    w.ok(w.sponsor, "trials.unblind", {"trial": trial, "allocations": reveal})
    arms = [contract.get_subject(w.ledger.state, trial, r["subject"]).arm for r in reveal]  # type: ignore[union-attr]
    assert arms == [r["arm"] for r in reveal]
    assert w.run(w.sponsor, "trials.unblind", {"trial": trial, "allocations": reveal[:1]}).code \
        == Code.TRIAL_ALREADY_UNBLINDED


def test_an_open_label_trial_reveals_and_checks_the_arm_at_enrolment() -> None:
    w = make_world()
    trial = w.register(sample_dataset(design__masking="none"))
    w.add_sites(trial)
    assert w.consent("alice", trial).code == 0
    good = w.reveal(trial, "hospital|65-85", sealed=False)
    wrong_arm = good | {"arm": "sham" if good["arm"] == "app" else "app"}
    payload = w.enrol_payload("alice", trial, "hospital|65-85")
    assert w.run(w.investigator, "trials.enrol", payload | {"allocation": wrong_arm}).code \
        == Code.TRIAL_ALLOCATION_MISMATCH
    r = w.run(w.investigator, "trials.enrol", payload | {"allocation": good})
    assert r.code == 0 and r.result["arm"] == w.schedule.allocation("hospital|65-85", 0).arm
    commitment = w.schedule.commitment()
    assert verify_allocation(commitment, w.schedule.reveal("hospital|65-85", 0))


# --- anchors, lock and tamper detection ------------------------------------------------------------

def test_a_changed_anchored_datum_is_detected_after_lock(tmp_path: Path) -> None:
    """Visit data (Synthea Observations) sealed in the hospital's real vault, anchored, locked; the vault's
    copy then changes: its commitment, leaf and proof no longer reach the locked root."""
    w = make_world()
    trial = w.registered_trial()
    vault = Vault.create(tmp_path / "vault", "hospital")
    observations = synthea_observations(12)
    sealed: dict[tuple[str, str], tuple[str, int]] = {}
    try:
        for name in ("alice", "bob"):
            assert w.consent(name, trial).code == 0
            assert w.enrol(name, trial).code == 0
        for i, obs in enumerate(observations):
            name, visit = ("alice", "bob")[i % 2], f"v{i // 2 + 1}"
            canonical = canonical_bytes(obs)
            assert validate_resource(obs, canonical=canonical) == "Observation"
            record = f"r-{i:032x}"
            s = vault.seal(record, 1, w.subject(name, trial), "Observation", canonical)
            vault.put_pending([s])
            r = w.run(w.steward, "trials.record_visits", w.visit_payload(trial, name, visit, [s.commitment]))
            assert r.code == 0
            sealed[(name, visit)] = (record, r.result["first_leaf"])
        lock = w.ok(w.sponsor, "trials.lock", {"trial": trial})
        size, root = contract.anchor_root(w.ledger.state, trial)
        assert (size, root.hex()) == (lock["size"], lock["root"]) == (12, lock["root"])
        # anyone holding the anchors rebuilds the tree and proves each visit against the locked root
        leaves = contract.anchor_leaves(w.ledger.state, trial)
        tree = AnchorTree()
        for leaf in leaves:
            tree.append_data(leaf)
        assert tree.root().hex() == lock["root"]
        record, leaf_index = sealed[("bob", "v3")]
        salt, canonical = vault.open(record, 1)
        rec = contract.get_visit(w.ledger.state, trial, w.subject("bob", trial), "v3")
        assert rec is not None and rec.head.resources == (("Observation", compute_commitment(salt, canonical)),)
        path = tree.proof(leaf_index)
        verify_anchored(leaves[leaf_index], leaf_index, size, path, root)
        # the site edits the stored Observation after lock
        edited = dict(observations[5])
        edited["status"] = "amended"
        changed = compute_commitment(salt, canonical_bytes(edited))
        bad_leaf = leaves[leaf_index].replace(compute_commitment(salt, canonical).encode(), changed.encode())
        assert bad_leaf != leaves[leaf_index]
        with pytest.raises(ProofError):
            verify_anchored(bad_leaf, leaf_index, size, path, root)
        # nor can it anchor the edit now: the trial is locked
        fix = w.visit_payload(trial, "bob", "v3", [changed], version=2, reason="transcription error")
        assert w.run(w.steward, "trials.record_visits", fix).code == Code.TRIAL_LOCKED
    finally:
        vault.close()


def test_corrections_before_lock_append_new_leaves() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    assert w.run(w.steward, "trials.record_visits", w.visit_payload(trial, "alice", "v1", [_commit("a")])).code == 0
    assert w.run(w.steward, "trials.record_visits",
                 w.visit_payload(trial, "alice", "v1", [_commit("b")])).code == Code.TRIAL_VISIT_EXISTS
    assert w.run(w.steward, "trials.record_visits",
                 w.visit_payload(trial, "alice", "v1", [_commit("b")], version=2)).code \
        == Code.TRIAL_VISIT_VERSION_CONFLICT
    r = w.run(w.steward, "trials.record_visits",
              w.visit_payload(trial, "alice", "v1", [_commit("b")], version=2, reason="unit corrected"))
    assert r.code == 0 and r.result["size"] == 2
    rec = contract.get_visit(w.ledger.state, trial, w.subject("alice", trial), "v1")
    assert rec is not None and [v.leaf for v in rec.versions] == [0, 1]
    assert len(contract.anchor_leaves(w.ledger.state, trial)) == 2


# --- safety reporting -------------------------------------------------------------------------------

def _susar(w: World, trial: str, criteria: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = w.ok(w.investigator, "trials.report_adverse_event", {
        "trial": trial, "site": "hospital", "subject": w.subject("alice", trial), "event": _commit("AdverseEvent 1"),
        "seriousness": criteria, "expectedness": "unexpected", "causality": "related"})
    return result


def test_a_late_susar_is_flagged_at_the_right_block() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    # the event is recorded at 23:00 UTC: Day 0 ends an hour later
    w.ledger.jump_to(day_start(w.ledger.next_time_ms()) + DAY_MS + 23 * 3_600_000)
    ae = _susar(w, trial, ["life_threatening"])
    day0 = _latest_block_ms(w)
    assert ae["susar"] and ae["initial_due_ms"] == day_start(day0) + 8 * DAY_MS
    assert ae["complete_due_ms"] == day_start(day0) + 16 * DAY_MS
    assert contract.overdue_susars(w.ledger.state, _latest_block_ms(w)) == []
    # an empty block one ms before the deadline: not yet overdue
    w.ledger.jump_to(ae["initial_due_ms"] - 1)
    w.ledger.block()
    assert contract.overdue_susars(w.ledger.state, _latest_block_ms(w), trial) == []
    # the next block passes the deadline: overdue, for the sponsor's and the regulator's queries alike
    w.ledger.jump_to(ae["initial_due_ms"])
    w.ledger.block()
    overdue = contract.overdue_susars(w.ledger.state, _latest_block_ms(w))
    assert [(o["event"], o["initial"], o["complete"]) for o in overdue] == [(ae["event"], "overdue", "pending")]
    # the sponsor's report then commits, and is recorded late
    r = w.run(w.sponsor, "trials.submit_safety_report", {"trial": trial, "event": ae["event"], "stage": "initial",
                                                         "report": _commit("CIOMS I")})
    assert r.code == 0 and r.result["late"] is True
    assert r.events[0]["attrs"]["late"] is True
    view = contract.safety_overview(w.ledger.state, _latest_block_ms(w), trial)
    assert [(v["initial"], v["complete"], v["late"], v["overdue"]) for v in view] == [("late", "pending", True, False)]
    w.ok(w.sponsor, "trials.submit_safety_report", {"trial": trial, "event": ae["event"], "stage": "complete",
                                                    "report": _commit("CIOMS I follow-up")})
    view = contract.safety_overview(w.ledger.state, _latest_block_ms(w), trial)
    assert (view[0]["complete"], view[0]["overdue"]) == ("on_time", False)


def test_an_on_time_report_and_events_needing_none() -> None:
    w = make_world()
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    ae = _susar(w, trial, ["hospitalisation"])
    assert ae["complete_due_ms"] is None and ae["initial_due_ms"] - _latest_block_ms(w) > 15 * DAY_MS - DAY_MS
    r = w.run(w.sponsor, "trials.submit_safety_report", {"trial": trial, "event": ae["event"], "stage": "initial",
                                                         "report": _commit("report")})
    assert r.code == 0 and r.result["late"] is False
    mild = w.ok(w.investigator, "trials.report_adverse_event", {
        "trial": trial, "site": "hospital", "subject": w.subject("alice", trial), "event": _commit("AE 2"),
        "expectedness": "unexpected", "causality": "related"})
    assert mild["susar"] is False and mild["category"] == "non_serious"
    assert w.run(w.sponsor, "trials.submit_safety_report", {"trial": trial, "event": mild["event"], "stage": "initial",
                                                            "report": _commit("r")}).code == Code.TRIAL_NOT_SUSAR


# --- results and outcome switching ------------------------------------------------------------------

P1 = {"id": "P1", "role": "primary", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
      "time_frame": "12 weeks", "result": "MD -1.2"}
S1 = {"id": "S1", "role": "secondary", "measure": "Knee range of motion", "method": "Goniometer, degrees",
      "time_frame": "12 weeks", "result": "MD 4 degrees"}
S2 = {"id": "S2", "role": "secondary", "measure": "Knee function", "method": "KOOS function score",
      "time_frame": "12 weeks", "result": "MD 3 points"}
SUMMARY = {"brief_summary": "s", "baseline_characteristics": "b", "participant_flow": "f", "adverse_events": "a"}


def _locked_trial(w: World) -> str:
    trial = w.registered_trial()
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    return trial


def _results(w: World, trial: str, outcomes: list[dict[str, Any]],
             omitted: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    r = w.run(w.sponsor, "trials.submit_results", {"trial": trial, "outcomes": outcomes, "omitted": omitted or [],
                                                   "dataset_hash": _commit("data"), "summary": SUMMARY})
    assert r.code == 0, r.message
    flags = [f.to_json() for f in contract.outcome_flags(w.ledger.state, trial)]
    assert flags == r.result["flags"]
    return flags


@pytest.mark.parametrize(("outcomes", "kind", "outcome"), [
    ([P1, S1, S2, {**P1, "id": "P2", "measure": "Opioid use", "method": "Diary"}], "primary_added", "P2"),
    ([S1, S2], "primary_dropped", "P1"),
    ([{**P1, "role": "secondary"}, S1, S2], "primary_demoted", "P1"),
    ([{**P1, "measure": "Knee stiffness"}, S1, S2], "primary_changed", "P1"),
    ([{**P1, "time_frame": "24 weeks"}, S1, S2], "time_frame_changed", "P1"),
    ([P1, {**S1, "role": "primary"}, S2], "primary_added", "S1"),
    ([P1, S1, S2, {**S2, "id": "S3", "measure": "Sleep"}], "secondary_added", "S3"),
    ([P1, S1], "secondary_dropped", "S2"),
    ([P1, S1, {**S2, "method": "WOMAC"}], "secondary_changed", "S2"),
])
def test_outcome_switching_is_flagged_publicly_for_each_kind(outcomes: list[dict[str, Any]], kind: str,
                                                             outcome: str) -> None:
    w = make_world()
    trial = _locked_trial(w)
    flags = _results(w, trial, outcomes)
    assert [(f["kind"], f["outcome"], f["declared"]) for f in flags] == [(kind, outcome, False)]


def test_the_baseline_is_the_last_registration_before_the_first_enrolment_block() -> None:
    w = make_world()
    trial = w.registered_trial()
    # v2, before anyone is enrolled: the pre-specified primary is now measured at 16 weeks
    v2 = sample_dataset(primary_outcomes=[{**{k: P1[k] for k in ("id", "measure", "method")},
                                           "time_frame": "16 weeks"}])
    w.ok(w.sponsor, "trials.update_registration", {"trial": trial, "dataset": v2, "reason": "visit schedule"})
    assert w.consent("alice", trial).code == 0
    assert w.enrol("alice", trial).code == 0
    # v3, after the start, openly: a second primary, with a reason
    v3 = sample_dataset(primary_outcomes=[
        *v2["primary_outcomes"], {"id": "P2", "measure": "Opioid use", "method": "Diary", "time_frame": "16 weeks"}])
    w.ok(w.sponsor, "trials.update_registration", {"trial": trial, "dataset": v3, "reason": "regulator request"})
    baseline = contract.registration_baseline(w.ledger.state, trial)
    assert baseline is not None and baseline.version == 2
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    # results beyond a year after primary completion (2024-06-30): also late
    w.ledger.jump_to(1_751_328_000_000 + DAY_MS)  # 2025-07-02
    p2 = {**P1, "id": "P2", "measure": "Opioid use", "method": "Diary", "time_frame": "16 weeks"}
    flags = _results(w, trial, [{**P1, "time_frame": "16 weeks"}, p2, {**S1, "time_frame": "6 weeks"}],
                     omitted=[{"id": "S2", "reason": "questionnaire licence lapsed"}])
    got = [(f["kind"], f["outcome"], f["declared"], f["declared_in"]) for f in flags]
    assert got == [("primary_added", "P2", True, "registration v3"),
                   ("time_frame_changed", "S1", False, None),
                   ("secondary_dropped", "S2", True, "results"),
                   ("results_late", None, False, None)]
    results = contract.get_results(w.ledger.state, trial)
    assert results is not None and results.baseline_version == 2


def test_results_need_the_lock_and_come_once() -> None:
    w = make_world()
    trial = w.registered_trial()
    payload = {"trial": trial, "outcomes": [P1], "dataset_hash": _commit("d"), "summary": SUMMARY}
    assert w.run(w.sponsor, "trials.submit_results", payload).code == Code.TRIAL_NOT_LOCKED
    w.ok(w.sponsor, "trials.lock", {"trial": trial})
    assert w.run(w.sponsor, "trials.submit_results", payload).code == 0
    assert w.run(w.sponsor, "trials.submit_results", payload).code == Code.TRIAL_RESULTS_EXIST
