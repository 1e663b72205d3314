"""Safety reporting (ICH E2A) and summary results with the outcome-switching check (COMPare).

* ``trials.report_adverse_event``: the site records an adverse event of an enrolled subject: the
  salted commitment of its FHIR ``AdverseEvent`` (kept in the site's vault), the seriousness
  criteria met, expectedness and causality. The ledger classifies it and, for a SUSAR, computes the
  E2A deadlines from the block's time (Day 0: the sponsor learns of it through the shared ledger).
* ``trials.submit_safety_report``: the sponsor records that the expedited report (initial, and for
  a fatal or life-threatening SUSAR the complete one) went to the regulators, by its hash; a
  report committed after its deadline is recorded ``late``. Whether a report is *overdue* is not
  stored: ``queries.safety_overview`` derives it from the latest block's time.
* ``trials.submit_results``: after database lock, the sponsor submits summary results against the
  registered outcomes (WHO item 23); the ledger checks them against the last registration before
  the first enrolment's block and records every outcome-switching flag, declared or silent, and
  ``results_late`` when they come more than 12 months after primary completion. Public to members.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.trials.dataset import OutcomeId, ShortText, SummaryResults, Text
from careledger.contracts.trials.layout import (
    AdverseEventRecord,
    RegistrationVersion,
    ReportSubmission,
    ResultsRecord,
    ae_key,
    get_adverse_event,
    get_results,
    get_subject,
    get_trial,
    iter_registrations,
    put_adverse_event,
    put_results,
    put_status,
    site_key,
    status_key,
    subject_key,
)
from careledger.contracts.trials.outcomes import (
    Omission,
    OutcomeState,
    RegistrationSnapshot,
    ReportedOutcome,
    check_outcome_switching,
    results_late_flag,
)
from careledger.contracts.trials.rules import (
    EventId,
    LongReason,
    SubjectId,
    TrialId,
    require_site,
    require_site_staff,
    require_sponsor,
    require_status,
)
from careledger.contracts.trials.safety import DAY_MS, compute_clock
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId

Criterion = Literal["death", "life_threatening", "hospitalisation", "disability", "congenital_anomaly",
                    "medically_important"]


# --- adverse events -------------------------------------------------------------------------------

class ReportAdverseEvent(Payload):
    trial: TrialId
    site: OrgId
    subject: SubjectId
    event: Hex32
    seriousness: Annotated[list[Criterion], Field(max_length=6)] = []
    expectedness: Literal["expected", "unexpected"]
    causality: Literal["related", "not_related"]


def authorize_site_data(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_status(state, p.trial)
    require_site_staff(ctx, require_site(state, p.trial, p.site), stewards=True)


def apply_report_adverse_event(state: Overlay, ctx: TxContext, p: ReportAdverseEvent) -> Any:
    """Record an adverse event and its E2A clock (Day 0 = this block's time). Raises
    TRIAL_SUBJECT_UNKNOWN, TRIAL_SUBJECT_NOT_AT_SITE, or INVALID_PAYLOAD for repeated criteria."""
    require_status(state, p.trial)
    subject = get_subject(state, p.trial, p.subject)
    if subject is None:
        raise TxFailed("the subject is not enrolled in this trial", Code.TRIAL_SUBJECT_UNKNOWN)
    if subject.site != p.site:
        raise TxFailed("the subject is enrolled at another site", Code.TRIAL_SUBJECT_NOT_AT_SITE)
    if len(set(p.seriousness)) != len(p.seriousness):
        raise TxFailed("a seriousness criterion is repeated", Code.INVALID_PAYLOAD)
    criteria = tuple(sorted(p.seriousness))
    clock = compute_clock(ctx.env.time_ms, criteria, p.expectedness == "expected", p.causality == "related")
    event = ctx.derive_id("ae")
    put_adverse_event(state, p.trial, AdverseEventRecord(
        event, p.subject, p.site, p.event, criteria, p.expectedness == "expected", p.causality == "related",
        clock.category, clock.susar, clock.day0_ms, ctx.env.height, clock.initial_due_ms, clock.complete_due_ms,
        None, None))
    ctx.emit("adverse_event_recorded", trial=p.trial, event=event, susar=clock.susar,
             initial_due_ms=clock.initial_due_ms)
    return {"trial": p.trial, "event": event, "category": clock.category, "susar": clock.susar,
            "initial_due_ms": clock.initial_due_ms, "complete_due_ms": clock.complete_due_ms}


class SubmitSafetyReport(Payload):
    trial: TrialId
    event: EventId
    stage: Literal["initial", "complete"]
    report: Hex32


def authorize_sponsor(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_sponsor(ctx, require_status(state, p.trial))


def apply_submit_safety_report(state: Overlay, ctx: TxContext, p: SubmitSafetyReport) -> Any:
    """Record an expedited report, late or on time. Raises TRIAL_AE_UNKNOWN, TRIAL_NOT_SUSAR (no
    expedited report is due), TRIAL_REPORT_DUPLICATE, or TRIAL_REPORT_OUT_OF_ORDER (a complete report
    before the initial one, or for a SUSAR that is neither fatal nor life-threatening)."""
    require_status(state, p.trial)
    ae = get_adverse_event(state, p.trial, p.event)
    if ae is None:
        raise TxFailed(f"no adverse event {p.event} in this trial", Code.TRIAL_AE_UNKNOWN)
    if not ae.susar:
        raise TxFailed("the event is not a SUSAR: no expedited report is due", Code.TRIAL_NOT_SUSAR)
    submission = ReportSubmission(p.report, ctx.signer.key, ctx.env.height, ctx.env.time_ms, False)
    if p.stage == "initial":
        if ae.initial is not None:
            raise TxFailed("the initial report is already recorded", Code.TRIAL_REPORT_DUPLICATE)
        assert ae.initial_due_ms is not None
        submission = replace(submission, late=ctx.env.time_ms >= ae.initial_due_ms)
        ae = replace(ae, initial=submission)
    else:
        if ae.complete_due_ms is None:
            raise TxFailed("only a fatal or life-threatening SUSAR has a separate complete report",
                           Code.TRIAL_REPORT_OUT_OF_ORDER)
        if ae.initial is None:
            raise TxFailed("the initial report comes first", Code.TRIAL_REPORT_OUT_OF_ORDER)
        if ae.complete is not None:
            raise TxFailed("the complete report is already recorded", Code.TRIAL_REPORT_DUPLICATE)
        submission = replace(submission, late=ctx.env.time_ms >= ae.complete_due_ms)
        ae = replace(ae, complete=submission)
    put_adverse_event(state, p.trial, ae)
    ctx.emit("safety_report_submitted", trial=p.trial, event=p.event, stage=p.stage, late=submission.late)
    return {"trial": p.trial, "event": p.event, "stage": p.stage, "late": submission.late}


# --- results --------------------------------------------------------------------------------------

class ResultOutcome(Payload):
    """A reported outcome: the registered outcome's id (or a new id for one not pre-specified)."""

    id: OutcomeId
    role: Literal["primary", "secondary"]
    measure: ShortText
    method: Text
    time_frame: ShortText
    result: Text
    change_reason: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class OmittedOutcome(Payload):
    id: OutcomeId
    reason: LongReason


class SubmitResults(Payload):
    trial: TrialId
    outcomes: Annotated[list[ResultOutcome], Field(min_length=1, max_length=80)]
    omitted: Annotated[list[OmittedOutcome], Field(max_length=80)] = []
    dataset_hash: Hex32
    summary: SummaryResults


def baseline_registration(versions: list[RegistrationVersion], first_enrolment_height: int | None
                          ) -> tuple[RegistrationVersion, list[RegistrationVersion]]:
    """COMPare's baseline, the last version committed before the first enrolment's block, and the
    versions from the start on. Without any enrolment the latest version is the baseline."""
    if first_enrolment_height is None:
        return versions[-1], []
    before = [v for v in versions if v.height < first_enrolment_height]
    assert before, "registration precedes the first enrolment"
    return before[-1], [v for v in versions if v.height >= first_enrolment_height]


def _snapshot(v: RegistrationVersion) -> RegistrationSnapshot:
    return RegistrationSnapshot.from_dataset(v.version, v.reason, v.dataset)


def apply_submit_results(state: Overlay, ctx: TxContext, p: SubmitResults) -> Any:
    """Record summary results and their outcome-switching flags. Raises TRIAL_NOT_LOCKED,
    TRIAL_RESULTS_EXIST, or TRIAL_RESULTS_INVALID (an outcome id reported twice, omitted twice,
    both reported and omitted, or omitted without ever having been registered)."""
    status = require_status(state, p.trial)
    if status.lock is None:
        raise TxFailed("results follow the database lock", Code.TRIAL_NOT_LOCKED)
    if get_results(state, p.trial) is not None:
        raise TxFailed("results are already recorded", Code.TRIAL_RESULTS_EXIST)
    reported_ids = [o.id for o in p.outcomes]
    omitted_ids = [o.id for o in p.omitted]
    if len(set(reported_ids)) != len(reported_ids) or len(set(omitted_ids)) != len(omitted_ids) \
            or set(reported_ids) & set(omitted_ids):
        raise TxFailed("each outcome is reported or omitted once", Code.TRIAL_RESULTS_INVALID)
    versions = list(iter_registrations(state, p.trial))
    baseline, later = baseline_registration(versions, status.first_enrolment_height)
    registered = {oid for v in versions for oid in _snapshot(v).outcomes}
    unknown = [oid for oid in omitted_ids if oid not in registered]
    if unknown:
        raise TxFailed(f"omitted outcome {unknown[0]!r} was never registered", Code.TRIAL_RESULTS_INVALID)
    flags = check_outcome_switching(
        _snapshot(baseline), [_snapshot(v) for v in later],
        [ReportedOutcome(o.id, OutcomeState(o.role, o.measure, o.method, o.time_frame), o.change_reason)
         for o in p.outcomes],
        [Omission(o.id, o.reason) for o in p.omitted])
    trial = get_trial(state, p.trial)
    assert trial is not None
    primary_completion = trial.dataset["completion"]["primary"]["date"]
    late = results_late_flag(primary_completion, ctx.env.time_ms // DAY_MS)
    if late is not None:
        flags.append(late)
    put_results(state, p.trial, ResultsRecord(
        ctx.env.height, ctx.env.time_ms, ctx.signer.key, baseline.version, baseline.height, primary_completion,
        tuple(o.model_dump(mode="json") for o in p.outcomes), tuple(o.model_dump(mode="json") for o in p.omitted),
        p.dataset_hash, p.summary.model_dump(mode="json"), tuple(f.to_json() for f in flags)))
    put_status(state, replace(status, results_height=ctx.env.height))
    silent = sum(1 for f in flags if not f.declared)
    ctx.emit("trial_results", trial=p.trial, flags=len(flags), silent=silent)
    return {"trial": p.trial, "baseline_version": baseline.version, "flags": [f.to_json() for f in flags]}


HANDLERS: list[Handler[Any]] = [
    Handler("trials.report_adverse_event", 1, ReportAdverseEvent, apply_report_adverse_event, authorize_site_data,
            summary="A site records an adverse event (commitment, seriousness, expectedness, causality); SUSAR "
                    "deadlines follow from the block time.",
            read_hints=lambda p: [status_key(p.trial), site_key(p.trial, p.site), subject_key(p.trial, p.subject)]),
    Handler("trials.submit_safety_report", 1, SubmitSafetyReport, apply_submit_safety_report, authorize_sponsor,
            summary="The sponsor records an expedited SUSAR report (initial or complete), late or on time.",
            read_hints=lambda p: [status_key(p.trial), ae_key(p.trial, p.event)]),
    Handler("trials.submit_results", 1, SubmitResults, apply_submit_results, authorize_sponsor,
            summary="The sponsor submits summary results; outcome switching is checked and flagged publicly."),
]
