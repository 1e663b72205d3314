"""Claims contract: a claim's life on the ledger, from submission to payment, appeal, void or replacement.

The ledger never sees a claim's content (codes, diagnoses, amounts): the provider's vault keeps it
and the insurer reads it through the gateway under the patient's consent for payment. The ledger
holds parties, the pseudonymous patient, the coverage, the anchored encounter the claim is for, a
salted commitment to the content, opaque line fingerprints, the service period (days) and the
status, and it enforces what it can see:

* **who**: a claim is submitted, voided or replaced by an admin of the provider or a member of it
  holding ``claims_officer``; it is adjudicated, flagged and paid by a ``claims_officer`` of the
  insurer it is addressed to; appealed by the provider or the patient (or the patient's delegate);
* **coverage**: it exists, is the named insurer's and the patient's, is active, and its period
  meets the claim's service period;
* **recorded care** (phantom billing): the encounter is a record anchored on the ledger — before the
  claim, since it must be in state — of type ``Encounter``, held by the provider, for the same patient
  and not erased. Otherwise the claim is *accepted and denied at once*: the ledger writes an
  adjudication of its own (``by = "ledger"``, every line ``CO-16`` with ``M127``) and the flag
  ``no-recorded-encounter`` (``encounter-erased`` when the encounter was erased for a reason other
  than ``entered_in_error``) to the insurer;
* **duplicates**: a fingerprint already on a live claim of the *same* insurer refuses the new claim if
  that claim was paid (a resubmission of a paid claim must be its replacement: CLAIM_ALREADY_PAID),
  and is flagged ``duplicate-same-payer`` otherwise; on a live claim of *another* insurer it is
  flagged ``duplicate-across-payers`` to both insurers (on both claims) — unless this claim is the
  legitimate secondary one: it names that claim as ``prior_payer_claim`` (coordination of benefits),
  whose coverage ranks before its own and which is already adjudicated;
* **replay**: a content commitment already submitted is refused (CLAIM_EXISTS); the same signed
  transaction twice never gets in (NONCE_REPLAYED);
* **states**::

      submitted ─┬─> pended ──> adjudicated ─┬─> paid ──> appealed ──> readjudicated ─> paid ...
                 └──────────────> adjudicated ├─> appealed ─────────────> readjudicated
      any live state ─> voided (claims.void) | replaced (by a claim submitted with ``replaces``)

  adjudication is allowed from ``submitted``, ``pended`` and ``appealed`` (an appeal's pended outcome
  keeps ``appealed``); payment only after an approved or partial (re)adjudication; appeal from
  ``adjudicated``, ``readjudicated`` or ``paid``; ``voided`` and ``replaced`` are final;
* **adjudication record**: outcome, per-line outcome and codes (group-CARC and RARC: never amounts,
  procedure codes or diagnoses), the plan version in force for the service start (and its digest),
  the governance-approved edit-table version in force for it, the content commitment it read (which
  must be the claim's: CLAIM_CONTENT_MISMATCH), and salted commitments to the adjudication's canonical
  input and result, which anyone holding the inputs re-checks; ``accumulators_from`` names the
  previous adjudication whose accumulators this one started from, which must be the coverage's
  current one (CLAIM_ACCUMULATOR_STALE): a coverage's adjudications form one chain.

**Erasure of the encounter** (``records.erase``). The claims contract keeps every claim, adjudication,
payment, appeal and flag record that referenced the encounter: they hold no content, only
commitments, opaque fingerprints and codes, and a payer must keep its payment records for their
retention period. What changes: the salt is destroyed, so the encounter can no longer be read or
fingerprints recomputed by anyone who had not already received it; a payer that did (and keeps its
copy under its own retention duty) can still recompute and compare them, and the fingerprints on the
ledger still match later claims' fingerprints computed before the erasure. A claim submitted *after*
the erasure is denied by the ledger (``CO-16`` / ``M127``) with the flag ``encounter-erased`` (or
``no-recorded-encounter`` for an encounter erased as entered in error); a claim submitted before it
may still be adjudicated and paid by an insurer that holds the content; :func:`encounter_state`
tells readers which claims now point at an erased encounter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from careledger.contracts import identity, records
from careledger.contracts.base import Handler, Payload, Signer, TxContext
from careledger.contracts.consent import acts_for_patient
from careledger.contracts.records import Pseudonym, RecordId, require_patient_active
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Hex32, OrgId

from .layout import (
    ADJUDICATED_STATUSES,
    CLOSED_STATUSES,
    FLAG_CONTENT_MISMATCH,
    FLAG_DUPLICATE_ACROSS_PAYERS,
    FLAG_DUPLICATE_SAME_PAYER,
    FLAG_ENCOUNTER_ERASED,
    FLAG_ENCOUNTER_MISMATCH,
    FLAG_FINGERPRINT_MISMATCH,
    FLAG_NO_RECORDED_ENCOUNTER,
    PHANTOM_LINE_CODES,
    AccumulatorHead,
    AdjudicationRecord,
    AppealRecord,
    ClaimRecord,
    FingerprintEntry,
    FlagRecord,
    LineOutcomeRecord,
    PaymentRecord,
    State,
    accumulator_key,
    adjudication_key,
    appeal_key,
    claim_by_commitment,
    claim_key,
    claims_with_fingerprint,
    commitment_key,
    coverage_key,
    fingerprint_key,
    flag_key,
    get_accumulator_head,
    get_claim,
    get_coverage,
    get_plan,
    get_table,
    latest_adjudication,
    patient_claim_key,
    payment_key,
    plan_in_force,
    put_claim,
    table_in_force,
)
from .plan_rules import TableName

ClaimId = Annotated[str, StringConstraints(pattern=r"^clm-[0-9a-f]{24}$")]
CoverageId = Annotated[str, StringConstraints(pattern=r"^cov-[0-9a-f]{24}$")]
TableVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
Day = Annotated[int, Field(ge=0, le=2_932_896)]  # 1970-01-01 .. 9999-12-31
MAX_LINES = 999
LineCount = Annotated[int, Field(ge=1, le=MAX_LINES)]
OutcomeCode = Annotated[str, StringConstraints(pattern=r"^(?:(?:CO|OA|PI|PR)-[A-Z0-9]{1,3}|[A-Z]{1,2}[0-9]{1,4})$")]
PROVIDER_ORG_ROLES = ("hospital", "clinic", "pharmacy")
CLAIMS_ROLE = "claims_officer"


# --- who may act ------------------------------------------------------------------------------------------------

def is_claims_officer(signer: Signer, org: str, *, admin: bool) -> bool:
    """Is ``signer`` an active ``claims_officer`` member of ``org`` (or, when ``admin``, its admin)?"""
    if not signer.active or signer.org != org:
        return False
    return (signer.kind == "member" and signer.has_role(CLAIMS_ROLE)) or (admin and signer.kind == "admin")


def require_provider_officer(ctx: TxContext, provider: str) -> None:
    if not is_claims_officer(ctx.signer, provider, admin=True):
        raise TxFailed(f"only an admin or a claims officer of {provider!r} acts for its claims",
                       Code.CLAIM_NOT_PROVIDER)


def require_insurer_officer(ctx: TxContext, insurer: str, *, admin: bool = False) -> None:
    if not is_claims_officer(ctx.signer, insurer, admin=admin):
        raise TxFailed(f"only a claims officer of {insurer!r} acts for it", Code.CLAIM_NOT_INSURER)


def require_org_role(state: State, org: str, roles: tuple[str, ...], code: Code) -> None:
    """The organisation exists, is active (ORG_UNKNOWN / ORG_INACTIVE) and holds one of ``roles`` (``code``)."""
    rec = identity.get_org(state, org)
    if rec is None:
        raise TxFailed(f"organisation {org!r} is not a consortium member", Code.ORG_UNKNOWN)
    if not rec.is_active:
        raise TxFailed(f"organisation {org!r} is no longer active", Code.ORG_INACTIVE)
    if not set(roles) & set(rec.roles):
        raise TxFailed(f"organisation {org!r} is not a {'/'.join(roles)}", code)


def _claim(state: State, claim: str) -> ClaimRecord:
    record = get_claim(state, claim)
    if record is None:
        raise TxFailed(f"no claim {claim}", Code.CLAIM_UNKNOWN)
    return record


def encounter_state(state: State, record: str) -> str:
    """What the ledger knows of an encounter record now: ``active``, ``erased`` or ``unknown``."""
    head = records.get_head(state, record)
    return "unknown" if head is None else head.status


def _write_flag(state: Overlay, ctx: TxContext, n: int, insurer: str, claim: str, kind: str,
                other_claim: str | None = None, other_insurer: str | None = None, by: str = "ledger") -> None:
    state.put(flag_key(insurer, ctx.env.height, ctx.index, n),
              FlagRecord(insurer, claim, kind, other_claim, other_insurer, by, ctx.env.height,
                         ctx.env.time_ms).to_json())
    ctx.emit("claim_flagged", claim=claim, insurer=insurer, kind=kind)


def _with_flag(record: ClaimRecord, kind: str, time_ms: int) -> ClaimRecord:
    return replace(record, flags=tuple(sorted({*record.flags, kind})), updated_ms=time_ms)


# --- claims.submit ----------------------------------------------------------------------------------------------

class Submit(Payload):
    provider: OrgId
    insurer: OrgId
    patient: Pseudonym
    coverage: CoverageId
    encounter: RecordId
    type: Literal["professional", "institutional"]
    start_day: Day
    end_day: Day
    lines: LineCount
    content_commitment: Hex32
    fingerprints: Annotated[list[Hex32], Field(min_length=1, max_length=MAX_LINES)]
    replaces: ClaimId | None = None
    prior_payer_claim: ClaimId | None = None

    @model_validator(mode="after")
    def _shape(self) -> Submit:
        if self.end_day < self.start_day:
            raise ValueError("the service period ends before it starts")
        if any(a >= b for a, b in zip(self.fingerprints, self.fingerprints[1:], strict=False)):
            raise ValueError("fingerprints must be sorted and must not repeat")
        if len(self.fingerprints) > self.lines:
            raise ValueError("more fingerprints than lines")
        if self.replaces is not None and self.replaces == self.prior_payer_claim:
            raise ValueError("a claim cannot replace its prior payer's claim")
        return self


def authorize_submit(state: Overlay, ctx: TxContext, p: Submit) -> None:
    require_provider_officer(ctx, p.provider)


def _encounter_finding(state: State, p: Submit) -> str | None:
    """None when the encounter is recorded as the claim says; else the flag the claim raises."""
    head = records.get_head(state, p.encounter)
    if head is None or head.type != "Encounter" or head.custodian != p.provider or head.pseudonym != p.patient:
        return FLAG_NO_RECORDED_ENCOUNTER
    if head.is_erased:
        erasure = records.get_erasure(state, p.encounter)
        reason = None if erasure is None else erasure.reason
        return FLAG_NO_RECORDED_ENCOUNTER if reason == "entered_in_error" else FLAG_ENCOUNTER_ERASED
    return None


def _check_prior_payer(state: State, p: Submit, coverage_order: int) -> None:
    if p.prior_payer_claim is None:
        return
    primary = get_claim(state, p.prior_payer_claim)
    if primary is None:
        raise TxFailed(f"no claim {p.prior_payer_claim}", Code.CLAIM_COB_INVALID)
    primary_cov = get_coverage(state, primary.coverage)
    assert primary_cov is not None
    if primary.patient != p.patient or primary.insurer == p.insurer:
        raise TxFailed("the prior payer's claim is another patient's, or this insurer's", Code.CLAIM_COB_INVALID)
    if primary_cov.order >= coverage_order:
        raise TxFailed("the prior payer's coverage does not rank before this one", Code.CLAIM_COB_INVALID)
    latest = latest_adjudication(state, primary)
    if primary.status not in (*ADJUDICATED_STATUSES, "appealed") or latest is None or latest.outcome == "pended":
        raise TxFailed("the prior payer has not adjudicated its claim", Code.CLAIM_COB_INVALID)


def _duplicates(state: State, p: Submit) -> list[tuple[ClaimRecord, str]]:
    """Live claims sharing a fingerprint with ``p``, with the flag each raises. Raises CLAIM_ALREADY_PAID."""
    found: dict[str, tuple[ClaimRecord, str]] = {}
    for fingerprint in p.fingerprints:
        for entry in claims_with_fingerprint(state, fingerprint):
            if entry.claim in found or entry.claim == p.replaces:
                continue
            other = get_claim(state, entry.claim)
            assert other is not None
            if other.status in CLOSED_STATUSES:
                continue
            if p.replaces is not None and other.prior_payer_claim == p.replaces:
                continue  # the secondary claim of the claim this one replaces
            if other.insurer == p.insurer:
                if other.payments > 0:
                    raise TxFailed(f"claim {other.id} for this service was paid; resubmit it as its replacement",
                                   Code.CLAIM_ALREADY_PAID)
                found[other.id] = (other, FLAG_DUPLICATE_SAME_PAYER)
            elif p.prior_payer_claim != other.id:
                found[other.id] = (other, FLAG_DUPLICATE_ACROSS_PAYERS)
    return [found[k] for k in sorted(found)]


def apply_submit(state: Overlay, ctx: TxContext, p: Submit) -> Any:
    """Record a claim. Raises ORG_UNKNOWN / ORG_INACTIVE / CLAIM_NOT_PROVIDER / CLAIM_NOT_INSURER for
    unfit organisations, PATIENT_UNKNOWN, CLAIM_COVERAGE_UNKNOWN, CLAIM_COVERAGE_MISMATCH (another
    insurer's or patient's coverage), CLAIM_COVERAGE_INACTIVE, CLAIM_COVERAGE_PERIOD (the service period
    misses the coverage period), CLAIM_EXISTS (content already submitted), CLAIM_RELATED_INVALID (a
    replacement of a claim that is not this provider's, insurer's and patient's live claim),
    CLAIM_COB_INVALID, CLAIM_ALREADY_PAID. A claim for care never recorded is accepted and denied."""
    require_org_role(state, p.provider, PROVIDER_ORG_ROLES, Code.CLAIM_NOT_PROVIDER)
    require_org_role(state, p.insurer, ("insurer",), Code.CLAIM_NOT_INSURER)
    require_patient_active(state, p.patient)
    cov = get_coverage(state, p.coverage)
    if cov is None:
        raise TxFailed(f"no coverage {p.coverage}", Code.CLAIM_COVERAGE_UNKNOWN)
    if cov.insurer != p.insurer or cov.beneficiary != p.patient:
        raise TxFailed("the coverage is not this insurer's cover of this patient", Code.CLAIM_COVERAGE_MISMATCH)
    if cov.status != "active":
        raise TxFailed(f"coverage {p.coverage} is {cov.status}", Code.CLAIM_COVERAGE_INACTIVE)
    if not cov.overlaps(p.start_day, p.end_day):
        raise TxFailed("the service period lies outside the coverage period", Code.CLAIM_COVERAGE_PERIOD)
    if claim_by_commitment(state, p.content_commitment) is not None:
        raise TxFailed("a claim with this content was already submitted", Code.CLAIM_EXISTS)
    replaced = None
    if p.replaces is not None:
        replaced = get_claim(state, p.replaces)
        if replaced is None or replaced.status in CLOSED_STATUSES or (replaced.provider, replaced.insurer,
                                                                      replaced.patient) != (p.provider, p.insurer,
                                                                                            p.patient):
            raise TxFailed("only a live claim of this provider, insurer and patient can be replaced",
                           Code.CLAIM_RELATED_INVALID)
    _check_prior_payer(state, p, cov.order)
    duplicates = _duplicates(state, p)
    finding = _encounter_finding(state, p)
    cid = ctx.derive_id("clm")
    now = ctx.env.time_ms
    flags = sorted({kind for _, kind in duplicates} | ({finding} if finding else set()))
    record = ClaimRecord(
        id=cid, type=p.type, provider=p.provider, insurer=p.insurer, patient=p.patient, coverage=p.coverage,
        encounter=p.encounter, start_day=p.start_day, end_day=p.end_day, content_commitment=p.content_commitment,
        fingerprints=tuple(p.fingerprints), lines=p.lines, status="adjudicated" if finding else "submitted",
        replaces=p.replaces, replaced_by=None, prior_payer_claim=p.prior_payer_claim,
        adjudications=1 if finding else 0, payments=0, appeals=0, flags=tuple(flags), submitted_height=ctx.env.height,
        submitted_ms=now, updated_ms=now)
    put_claim(state, record)
    state.put(commitment_key(p.content_commitment), {"claim": cid})
    state.put(patient_claim_key(p.patient, cid), {"insurer": p.insurer, "provider": p.provider})
    for fingerprint in p.fingerprints:
        state.put(fingerprint_key(fingerprint, cid), FingerprintEntry(cid, p.insurer, p.provider).to_json())
    if replaced is not None:
        put_claim(state, replace(replaced, status="replaced", replaced_by=cid, updated_ms=now))
    n = 0
    if finding:
        lines = tuple(LineOutcomeRecord(i, "denied", PHANTOM_LINE_CODES) for i in range(1, p.lines + 1))
        state.put(adjudication_key(cid, 1), AdjudicationRecord(
            claim=cid, n=1, by="ledger", outcome="denied", lines=lines, plan=None, plan_version=None,
            plan_digest=None, edit_set=None, content_commitment=p.content_commitment, input_commitment=None,
            result_commitment=None, accumulators_from=None, height=ctx.env.height, time_ms=now).to_json())
        _write_flag(state, ctx, n, p.insurer, cid, finding)
        n += 1
    for other, kind in duplicates:
        _write_flag(state, ctx, n, p.insurer, cid, kind, other.id, other.insurer)
        n += 1
        if kind == FLAG_DUPLICATE_ACROSS_PAYERS:
            _write_flag(state, ctx, n, other.insurer, other.id, kind, cid, p.insurer)
            n += 1
        put_claim(state, _with_flag(other, kind, now))
    ctx.emit("claim_submitted", claim=cid, provider=p.provider, insurer=p.insurer,
             status=record.status)
    return {"claim": cid, "status": record.status, "flags": flags}


# --- claims.adjudicate ----------------------------------------------------------------------------------------------

class LineOutcome(Payload):
    sequence: Annotated[int, Field(ge=1, le=999_999)]
    outcome: Literal["approved", "denied", "pended"]
    codes: Annotated[list[OutcomeCode], Field(max_length=16)]

    @model_validator(mode="after")
    def _sorted(self) -> LineOutcome:
        if any(a >= b for a, b in zip(self.codes, self.codes[1:], strict=False)):
            raise ValueError("codes must be sorted and must not repeat")
        return self


class EditSetRef(Payload):
    name: TableName
    version: TableVersion


class AccumulatorRef(Payload):
    claim: ClaimId
    n: Annotated[int, Field(ge=1, le=9999)]


class Adjudicate(Payload):
    claim: ClaimId
    outcome: Literal["approved", "partial", "denied", "pended"]
    lines: Annotated[list[LineOutcome], Field(min_length=1, max_length=MAX_LINES)]
    plan_version: Annotated[int, Field(ge=1, le=999_999)]
    edit_set: EditSetRef | None = None
    content_commitment: Hex32
    input_commitment: Hex32
    result_commitment: Hex32
    accumulators_from: AccumulatorRef | None = None


def authorize_adjudicate(state: Overlay, ctx: TxContext, p: Adjudicate) -> None:
    require_insurer_officer(ctx, _claim(state, p.claim).insurer)


NEXT_ON_ADJUDICATION = {"submitted": ("pended", "adjudicated"), "pended": ("pended", "adjudicated"),
                        "appealed": ("appealed", "readjudicated")}


def _expected_outcome(lines: list[LineOutcome]) -> str | None:
    outcomes = {line.outcome for line in lines}
    if "pended" in outcomes:
        return "pended" if outcomes == {"pended"} else None
    if outcomes == {"denied"}:
        return "denied"
    return "partial" if "denied" in outcomes else "approved"


def apply_adjudicate(state: Overlay, ctx: TxContext, p: Adjudicate) -> Any:
    """Record the insurer's adjudication. Raises CLAIM_UNKNOWN, CLAIM_BAD_TRANSITION (not awaiting one),
    CLAIM_CONTENT_MISMATCH (another content than the claim's), CLAIM_LINES_MISMATCH (not one outcome per
    line), CLAIM_OUTCOME_INCONSISTENT (the claim outcome does not follow from the lines, or a denied line
    has no adjustment reason), CLAIM_PLAN_UNKNOWN / CLAIM_PLAN_NOT_IN_FORCE, CLAIM_TABLE_UNKNOWN /
    CLAIM_TABLE_NOT_IN_FORCE, CLAIM_ACCUMULATOR_STALE."""
    claim = _claim(state, p.claim)
    if claim.status not in NEXT_ON_ADJUDICATION:
        raise TxFailed(f"claim {claim.id} is {claim.status}: not awaiting adjudication", Code.CLAIM_BAD_TRANSITION)
    if p.content_commitment != claim.content_commitment:
        raise TxFailed("the adjudicated content is not the claim's", Code.CLAIM_CONTENT_MISMATCH)
    sequences = {line.sequence for line in p.lines}
    if len(p.lines) != claim.lines or len(sequences) != len(p.lines):
        raise TxFailed(f"the claim has {claim.lines} lines: one outcome each", Code.CLAIM_LINES_MISMATCH)
    if _expected_outcome(p.lines) != p.outcome or any(
            line.outcome == "denied" and not any("-" in c for c in line.codes) for line in p.lines):
        raise TxFailed("the claim outcome does not follow from its lines", Code.CLAIM_OUTCOME_INCONSISTENT)
    cov = get_coverage(state, claim.coverage)
    assert cov is not None
    plan = get_plan(state, claim.insurer, cov.plan, p.plan_version)
    if plan is None:
        raise TxFailed(f"plan {cov.plan} has no version {p.plan_version}", Code.CLAIM_PLAN_UNKNOWN)
    in_force = plan_in_force(state, claim.insurer, cov.plan, claim.start_day)
    if in_force is None or in_force.version != p.plan_version:
        raise TxFailed("that plan version is not the one in force for the service", Code.CLAIM_PLAN_NOT_IN_FORCE)
    edit_set = None
    set_name = plan.rules.get("edit_set")
    table = None if set_name is None else table_in_force(state, set_name, claim.start_day)
    if p.edit_set is not None:
        named = get_table(state, p.edit_set.name, p.edit_set.version)
        if named is None:
            raise TxFailed(f"no edit table {p.edit_set.name} {p.edit_set.version}", Code.CLAIM_TABLE_UNKNOWN)
        if table is None or (named.name, named.version) != (table.name, table.version):
            raise TxFailed("that edit-table version is not the one in force", Code.CLAIM_TABLE_NOT_IN_FORCE)
        edit_set = {"digest": named.digest, "name": named.name, "version": named.version}
    elif table is not None:
        raise TxFailed(f"edit table {table.name} {table.version} is in force: name it", Code.CLAIM_TABLE_NOT_IN_FORCE)
    n = claim.adjudications + 1
    accumulators_from = None if p.accumulators_from is None else p.accumulators_from.model_dump()
    if p.outcome != "pended":
        head = get_accumulator_head(state, cov.id)
        current = None if head is None else {"claim": head.claim, "n": head.n}
        if accumulators_from != current:
            raise TxFailed("the accumulators are not the coverage's current ones", Code.CLAIM_ACCUMULATOR_STALE)
        state.put(accumulator_key(cov.id), AccumulatorHead(cov.id, claim.id, n, p.result_commitment).to_json())
    record = AdjudicationRecord(
        claim=claim.id, n=n, by=ctx.signer.key, outcome=p.outcome,
        lines=tuple(LineOutcomeRecord(x.sequence, x.outcome, tuple(x.codes))
                    for x in sorted(p.lines, key=lambda x: x.sequence)),
        plan=cov.plan, plan_version=plan.version, plan_digest=plan.digest, edit_set=edit_set,
        content_commitment=p.content_commitment, input_commitment=p.input_commitment,
        result_commitment=p.result_commitment, accumulators_from=accumulators_from, height=ctx.env.height,
        time_ms=ctx.env.time_ms)
    state.put(adjudication_key(claim.id, n), record.to_json())
    pended_status, done_status = NEXT_ON_ADJUDICATION[claim.status]
    status = pended_status if p.outcome == "pended" else done_status
    put_claim(state, replace(claim, status=status, adjudications=n, updated_ms=ctx.env.time_ms))
    ctx.emit("claim_adjudicated", claim=claim.id, outcome=p.outcome, n=n)
    return {"claim": claim.id, "n": n, "outcome": p.outcome, "status": status}


# --- claims.flag ----------------------------------------------------------------------------------------------------

class Flag(Payload):
    claim: ClaimId
    kind: Literal["content-mismatch", "fingerprint-mismatch", "encounter-mismatch"]


INSURER_FLAGS = (FLAG_CONTENT_MISMATCH, FLAG_ENCOUNTER_MISMATCH, FLAG_FINGERPRINT_MISMATCH)


def apply_flag(state: Overlay, ctx: TxContext, p: Flag) -> Any:
    """The insurer's node found the content (or fingerprints, or encounter) not to match what the
    ledger holds: the flag goes in its feed and on the claim; the claim's status does not change."""
    claim = _claim(state, p.claim)
    _write_flag(state, ctx, 0, claim.insurer, claim.id, p.kind, by=ctx.signer.key)
    put_claim(state, _with_flag(claim, p.kind, ctx.env.time_ms))
    return {"claim": claim.id, "kind": p.kind}


# --- claims.pay -----------------------------------------------------------------------------------------------------

class Pay(Payload):
    claim: ClaimId
    remittance: Hex32  # a commitment to the remittance (835 / payment advice) kept off the ledger


def apply_pay(state: Overlay, ctx: TxContext, p: Pay) -> Any:
    """Record a payment: only after an approved or partial (re)adjudication. Raises CLAIM_BAD_TRANSITION."""
    claim = _claim(state, p.claim)
    latest = latest_adjudication(state, claim)
    if claim.status not in ("adjudicated", "readjudicated") or latest is None \
            or latest.outcome not in ("approved", "partial"):
        raise TxFailed(f"claim {claim.id} is {claim.status}: nothing to pay", Code.CLAIM_BAD_TRANSITION)
    n = claim.payments + 1
    state.put(payment_key(claim.id, n), PaymentRecord(claim.id, n, p.remittance, ctx.signer.key, ctx.env.height,
                                                      ctx.env.time_ms).to_json())
    put_claim(state, replace(claim, status="paid", payments=n, updated_ms=ctx.env.time_ms))
    ctx.emit("claim_paid", claim=claim.id, n=n)
    return {"claim": claim.id, "n": n, "status": "paid"}


# --- claims.appeal --------------------------------------------------------------------------------------------------

class Appeal(Payload):
    claim: ClaimId
    reason: Literal["coding", "coverage", "coordination_of_benefits", "medical_necessity", "units", "other"]


def _appellant(state: State, ctx: TxContext, claim: ClaimRecord) -> str:
    if is_claims_officer(ctx.signer, claim.provider, admin=True):
        return "provider"
    who = acts_for_patient(state, ctx.signer, claim.patient, ctx.env.time_ms)
    if who is None:
        raise TxFailed("only the provider, the patient or the patient's delegate may appeal", Code.CLAIM_NOT_PARTY)
    return who


def authorize_appeal(state: Overlay, ctx: TxContext, p: Appeal) -> None:
    _appellant(state, ctx, _claim(state, p.claim))


def apply_appeal(state: Overlay, ctx: TxContext, p: Appeal) -> Any:
    """Appeal an adjudication. Raises CLAIM_BAD_TRANSITION unless adjudicated, readjudicated or paid."""
    claim = _claim(state, p.claim)
    if claim.status not in ADJUDICATED_STATUSES:
        raise TxFailed(f"claim {claim.id} is {claim.status}: nothing to appeal", Code.CLAIM_BAD_TRANSITION)
    n = claim.appeals + 1
    state.put(appeal_key(claim.id, n), AppealRecord(claim.id, n, ctx.signer.key, _appellant(state, ctx, claim),
                                                    p.reason, ctx.env.height, ctx.env.time_ms).to_json())
    put_claim(state, replace(claim, status="appealed", appeals=n, updated_ms=ctx.env.time_ms))
    ctx.emit("claim_appealed", claim=claim.id, n=n)
    return {"claim": claim.id, "n": n, "status": "appealed"}


# --- claims.void ----------------------------------------------------------------------------------------------------

class Void(Payload):
    claim: ClaimId
    reason: Literal["entered_in_error", "duplicate", "not_rendered", "other"]


def authorize_void(state: Overlay, ctx: TxContext, p: Void) -> None:
    require_provider_officer(ctx, _claim(state, p.claim).provider)


def apply_void(state: Overlay, ctx: TxContext, p: Void) -> Any:
    """Void a live claim (X12 frequency 8); its adjudications and payments stay. CLAIM_BAD_TRANSITION if closed."""
    claim = _claim(state, p.claim)
    if claim.status in CLOSED_STATUSES:
        raise TxFailed(f"claim {claim.id} is already {claim.status}", Code.CLAIM_BAD_TRANSITION)
    put_claim(state, replace(claim, status="voided", updated_ms=ctx.env.time_ms))
    ctx.emit("claim_voided", claim=claim.id, reason=p.reason)
    return {"claim": claim.id, "status": "voided"}


def _authorize_insurer_of_claim(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_insurer_officer(ctx, _claim(state, p.claim).insurer)


HANDLERS: list[Handler[Any]] = [
    Handler("claims.submit", 1, Submit, apply_submit, authorize_submit,
            summary="A provider submits a claim for an anchored encounter: parties, coverage, a commitment to "
                    "its content and line fingerprints; never codes or amounts.",
            read_hints=lambda p: [coverage_key(p.coverage), records.head_key(p.encounter),
                                  identity.patient_key(p.patient), commitment_key(p.content_commitment),
                                  identity.org_key(p.provider), identity.org_key(p.insurer)]),
    Handler("claims.adjudicate", 1, Adjudicate, apply_adjudicate, authorize_adjudicate,
            summary="The insurer records an adjudication: outcome, per-line codes, rule versions and commitments "
                    "to its input and result.",
            read_hints=lambda p: [claim_key(p.claim)]),
    Handler("claims.flag", 1, Flag, apply_flag, _authorize_insurer_of_claim,
            summary="The insurer flags a claim whose content, fingerprints or encounter do not match the ledger.",
            read_hints=lambda p: [claim_key(p.claim)]),
    Handler("claims.pay", 1, Pay, apply_pay, _authorize_insurer_of_claim,
            summary="The insurer records a payment (a commitment to the remittance, no amount).",
            read_hints=lambda p: [claim_key(p.claim)]),
    Handler("claims.appeal", 1, Appeal, apply_appeal, authorize_appeal,
            summary="The provider or the patient appeals an adjudication.",
            read_hints=lambda p: [claim_key(p.claim)]),
    Handler("claims.void", 1, Void, apply_void, authorize_void,
            summary="The provider voids a claim; its records stay.", read_hints=lambda p: [claim_key(p.claim)]),
]
