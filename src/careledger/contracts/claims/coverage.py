"""Claims contract: coverage and plan versions, registered by the insurer.

* ``claims.register_coverage`` / ``claims.update_coverage``: a policy for a pseudonymous beneficiary
  (never a name, birth date or member number: the FHIR Coverage stays in the insurer's vault behind
  ``commitment``): plan key, period (days, inclusive), payer order for coordination of benefits
  (1 = primary) and status. Two active coverages of one beneficiary with the same order may not
  overlap (COVERAGE_ORDER_CONFLICT). Each update bumps ``version``.
* ``claims.register_plan``: one immutable version of a plan's benefit rules — the full rules document
  (:mod:`.plan_rules`), since plans are not PHI — with its digest. Versions are numbered 1, 2, …; a
  version takes effect on ``effective_day``, which may not precede the day it is registered nor the
  previous version's (no retroactive rules: a claim is adjudicated under the version in force for its
  service start, which was fixed before the service).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.records import Pseudonym, require_patient_active
from careledger.core import codec
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId

from .handlers import CoverageId, Day, require_insurer_officer, require_org_role
from .layout import (
    CoverageRecord,
    PlanRecord,
    State,
    coverage_key,
    coverages_of,
    day_of_ms,
    get_coverage,
    plan_versions,
    put_coverage,
    put_plan,
)
from .plan_rules import PlanKey, PlanRulesDoc

Order = Annotated[int, Field(ge=1, le=9)]


def _check_order(state: State, beneficiary: str, coverage: str, order: int, start: int, end: int | None) -> None:
    for other in coverages_of(state, beneficiary):
        if other.id != coverage and other.status == "active" and other.order == order and other.overlaps(start, end):
            raise TxFailed(f"coverage {other.id} already has payer order {order} for that period",
                           Code.COVERAGE_ORDER_CONFLICT)


class RegisterCoverage(Payload):
    insurer: OrgId
    beneficiary: Pseudonym
    plan: PlanKey
    start_day: Day
    end_day: Day | None = None
    order: Order = 1
    commitment: Hex32


def authorize_register_coverage(state: Overlay, ctx: TxContext, p: RegisterCoverage) -> None:
    require_insurer_officer(ctx, p.insurer, admin=True)


def apply_register_coverage(state: Overlay, ctx: TxContext, p: RegisterCoverage) -> Any:
    """Raises ORG_UNKNOWN / ORG_INACTIVE / CLAIM_NOT_INSURER (not an insurer), PATIENT_UNKNOWN,
    INVALID_PAYLOAD (the period ends before it starts), COVERAGE_ORDER_CONFLICT."""
    require_org_role(state, p.insurer, ("insurer",), Code.CLAIM_NOT_INSURER)
    require_patient_active(state, p.beneficiary)
    if p.end_day is not None and p.end_day < p.start_day:
        raise TxFailed("the coverage period ends before it starts", Code.INVALID_PAYLOAD)
    cid = ctx.derive_id("cov")
    _check_order(state, p.beneficiary, cid, p.order, p.start_day, p.end_day)
    put_coverage(state, CoverageRecord(cid, p.insurer, p.beneficiary, p.plan, p.start_day, p.end_day, p.order,
                                       "active", p.commitment, 1, ctx.env.height, ctx.env.time_ms))
    ctx.emit("coverage_registered", coverage=cid, insurer=p.insurer)
    return {"coverage": cid}


class UpdateCoverage(Payload):
    coverage: CoverageId
    status: Literal["active", "cancelled"]
    end_day: Day | None = None
    order: Order = 1
    commitment: Hex32


def _coverage(state: State, coverage: str) -> CoverageRecord:
    record = get_coverage(state, coverage)
    if record is None:
        raise TxFailed(f"no coverage {coverage}", Code.CLAIM_COVERAGE_UNKNOWN)
    return record


def authorize_update_coverage(state: Overlay, ctx: TxContext, p: UpdateCoverage) -> None:
    require_insurer_officer(ctx, _coverage(state, p.coverage).insurer, admin=True)


def apply_update_coverage(state: Overlay, ctx: TxContext, p: UpdateCoverage) -> Any:
    """Change status, end or order (a new version). Raises CLAIM_COVERAGE_UNKNOWN, INVALID_PAYLOAD,
    COVERAGE_ORDER_CONFLICT."""
    record = _coverage(state, p.coverage)
    if p.end_day is not None and p.end_day < record.start_day:
        raise TxFailed("the coverage period ends before it starts", Code.INVALID_PAYLOAD)
    if p.status == "active":
        _check_order(state, record.beneficiary, record.id, p.order, record.start_day, p.end_day)
    updated = CoverageRecord(record.id, record.insurer, record.beneficiary, record.plan, record.start_day, p.end_day,
                             p.order, p.status, p.commitment, record.version + 1, ctx.env.height, ctx.env.time_ms)
    put_coverage(state, updated)
    ctx.emit("coverage_updated", coverage=record.id, status=p.status)
    return {"coverage": record.id, "version": updated.version, "status": p.status}


class RegisterPlan(Payload):
    insurer: OrgId
    plan: PlanKey
    version: Annotated[int, Field(ge=1, le=999_999)]
    effective_day: Day
    rules: PlanRulesDoc


def authorize_register_plan(state: Overlay, ctx: TxContext, p: RegisterPlan) -> None:
    require_insurer_officer(ctx, p.insurer, admin=True)


def plan_document_digest(rules: dict[str, Any]) -> str:
    """SHA-256 of the canonical rules document (equal to :func:`careledger.claims.coverage.plan_digest`)."""
    return hashlib.sha256(codec.encode(rules)).hexdigest()


def apply_register_plan(state: Overlay, ctx: TxContext, p: RegisterPlan) -> Any:
    """Raises ORG_UNKNOWN / ORG_INACTIVE / CLAIM_NOT_INSURER, CLAIM_PLAN_VERSION_CONFLICT (not the next
    version, or effective before today or before the previous version)."""
    require_org_role(state, p.insurer, ("insurer",), Code.CLAIM_NOT_INSURER)
    versions = plan_versions(state, p.insurer, p.plan)
    expected = versions[-1].version + 1 if versions else 1
    if p.version != expected:
        raise TxFailed(f"the next version of plan {p.plan} is {expected}", Code.CLAIM_PLAN_VERSION_CONFLICT)
    today = day_of_ms(ctx.env.time_ms)
    if p.effective_day < today or (versions and p.effective_day < versions[-1].effective_day):
        raise TxFailed("a plan version cannot take effect before it is registered or before the previous one",
                       Code.CLAIM_PLAN_VERSION_CONFLICT)
    rules = p.rules.model_dump(mode="json")
    digest = plan_document_digest(rules)
    put_plan(state, PlanRecord(p.insurer, p.plan, p.version, p.effective_day, digest, rules, ctx.env.height,
                               ctx.env.time_ms))
    ctx.emit("plan_registered", insurer=p.insurer, plan=p.plan, version=p.version)
    return {"plan": p.plan, "version": p.version, "digest": digest}


HANDLERS: list[Handler[Any]] = [
    Handler("claims.register_coverage", 1, RegisterCoverage, apply_register_coverage, authorize_register_coverage,
            summary="An insurer registers a coverage for a pseudonymous beneficiary: plan, period, payer order.",
            read_hints=lambda p: []),
    Handler("claims.update_coverage", 1, UpdateCoverage, apply_update_coverage, authorize_update_coverage,
            summary="An insurer changes a coverage's status, end or payer order.",
            read_hints=lambda p: [coverage_key(p.coverage)]),
    Handler("claims.register_plan", 1, RegisterPlan, apply_register_plan, authorize_register_plan,
            summary="An insurer registers a new version of a plan's benefit rules (the rules are on the ledger).",
            read_hints=lambda p: []),
]
