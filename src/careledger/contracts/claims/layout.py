"""The claims contract's state: keys, records (one explicit JSON form each) and typed accessors.

State (values canonical JSON; no amounts, procedure codes or diagnoses anywhere)::

    claims/coverage/<coverage>                   CoverageRecord   pseudonymous beneficiary, plan, period, order
    claims/beneficiary/<pseudonym>/<coverage>    {insurer}        a patient's coverages (eligibility, order checks)
    claims/plan/<insurer>/<plan>/<version:06d>   PlanRecord       one immutable version of a plan's rules
    claims/table/<name>/<version>                TableRecord      an edit-table version and its governance vote
    claims/claim/<claim>                         ClaimRecord      parties, coverage, encounter, commitment, status
    claims/commitment/<content commitment>       {claim}          refuses a replayed submission
    claims/fingerprint/<fingerprint>/<claim>     FingerprintEntry the line fingerprints of every claim
    claims/patient/<pseudonym>/<claim>           {insurer, provider}  the patient's claims
    claims/adjudication/<claim>/<n:04d>          AdjudicationRecord   each adjudication, in order
    claims/payment/<claim>/<n:04d>               PaymentRecord        each payment (a commitment to the remittance)
    claims/appeal/<claim>/<n:04d>                AppealRecord
    claims/flag/<insurer>/<height:012d>-<index:05d>-<n:04d>   FlagRecord   an insurer's flag feed, commit order
    claims/accumulator/<coverage>                AccumulatorHead  the last adjudication whose accumulators count

Days are integer days since 1970-01-01 (UTC calendar days); periods include their last day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from careledger.core.codec import decode_trusted
from careledger.core.state import Overlay, StateReader

State = StateReader | Overlay
DAY_MS = 86_400_000

CLAIM_STATUSES = ("submitted", "pended", "adjudicated", "paid", "appealed", "readjudicated", "voided", "replaced")
CLOSED_STATUSES = ("voided", "replaced")
ADJUDICATED_STATUSES = ("adjudicated", "paid", "readjudicated")


# Flags: the ledger's and insurers' own fraud and integrity signals (never CARC).
FLAG_NO_RECORDED_ENCOUNTER = "no-recorded-encounter"
FLAG_ENCOUNTER_ERASED = "encounter-erased"
FLAG_DUPLICATE_ACROSS_PAYERS = "duplicate-across-payers"
FLAG_DUPLICATE_SAME_PAYER = "duplicate-same-payer"
FLAG_CONTENT_MISMATCH = "content-mismatch"
FLAG_FINGERPRINT_MISMATCH = "fingerprint-mismatch"
FLAG_ENCOUNTER_MISMATCH = "encounter-mismatch"
FLAGS = (FLAG_CONTENT_MISMATCH, FLAG_DUPLICATE_ACROSS_PAYERS, FLAG_DUPLICATE_SAME_PAYER, FLAG_ENCOUNTER_ERASED,
         FLAG_ENCOUNTER_MISMATCH, FLAG_FINGERPRINT_MISMATCH, FLAG_NO_RECORDED_ENCOUNTER)
# The codes of a line the ledger itself denies for want of a recorded encounter (phantom billing).
PHANTOM_LINE_CODES = ("CO-16", "M127")


def day_of_ms(time_ms: int) -> int:
    """The UTC calendar day of a block time."""
    return time_ms // DAY_MS


# --- keys -------------------------------------------------------------------------------------------------------

def coverage_key(coverage: str) -> str:
    return f"claims/coverage/{coverage}"


def beneficiary_prefix(pseudonym: str) -> str:
    return f"claims/beneficiary/{pseudonym}/"


def beneficiary_key(pseudonym: str, coverage: str) -> str:
    return f"claims/beneficiary/{pseudonym}/{coverage}"


def plan_prefix(insurer: str, plan: str) -> str:
    return f"claims/plan/{insurer}/{plan}/"


def plan_key(insurer: str, plan: str, version: int) -> str:
    return f"claims/plan/{insurer}/{plan}/{version:06d}"


def table_prefix(name: str) -> str:
    return f"claims/table/{name}/"


def table_key(name: str, version: str) -> str:
    return f"claims/table/{name}/{version}"


def claim_key(claim: str) -> str:
    return f"claims/claim/{claim}"


def commitment_key(commitment: str) -> str:
    return f"claims/commitment/{commitment}"


def fingerprint_prefix(fingerprint: str) -> str:
    return f"claims/fingerprint/{fingerprint}/"


def fingerprint_key(fingerprint: str, claim: str) -> str:
    return f"claims/fingerprint/{fingerprint}/{claim}"


def patient_claims_prefix(pseudonym: str) -> str:
    return f"claims/patient/{pseudonym}/"


def patient_claim_key(pseudonym: str, claim: str) -> str:
    return f"claims/patient/{pseudonym}/{claim}"


def adjudication_prefix(claim: str) -> str:
    return f"claims/adjudication/{claim}/"


def adjudication_key(claim: str, n: int) -> str:
    return f"claims/adjudication/{claim}/{n:04d}"


def payment_prefix(claim: str) -> str:
    return f"claims/payment/{claim}/"


def payment_key(claim: str, n: int) -> str:
    return f"claims/payment/{claim}/{n:04d}"


def appeal_key(claim: str, n: int) -> str:
    return f"claims/appeal/{claim}/{n:04d}"


def flag_prefix(insurer: str) -> str:
    return f"claims/flag/{insurer}/"


def flag_key(insurer: str, height: int, index: int, n: int) -> str:
    return f"claims/flag/{insurer}/{height:012d}-{index:05d}-{n:04d}"


def accumulator_key(coverage: str) -> str:
    return f"claims/accumulator/{coverage}"


# --- records ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CoverageRecord:
    id: str
    insurer: str
    beneficiary: str
    plan: str
    start_day: int
    end_day: int | None
    order: int
    status: str  # active | cancelled
    commitment: str
    version: int
    height: int
    time_ms: int

    def covers(self, day: int) -> bool:
        return self.start_day <= day and (self.end_day is None or day <= self.end_day)

    def overlaps(self, start_day: int, end_day: int | None) -> bool:
        """Does [start_day, end_day] (None: open) meet this coverage's period?"""
        return (self.end_day is None or start_day <= self.end_day) and (end_day is None or self.start_day <= end_day)

    def to_json(self) -> dict[str, Any]:
        return {"beneficiary": self.beneficiary, "commitment": self.commitment, "end_day": self.end_day,
                "height": self.height, "id": self.id, "insurer": self.insurer, "order": self.order, "plan": self.plan,
                "start_day": self.start_day, "status": self.status, "time_ms": self.time_ms, "version": self.version}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CoverageRecord:
        return cls(doc["id"], doc["insurer"], doc["beneficiary"], doc["plan"], doc["start_day"], doc["end_day"],
                   doc["order"], doc["status"], doc["commitment"], doc["version"], doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class PlanRecord:
    insurer: str
    plan: str
    version: int
    effective_day: int
    digest: str
    rules: dict[str, Any]
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "effective_day": self.effective_day, "height": self.height,
                "insurer": self.insurer, "plan": self.plan, "rules": self.rules, "time_ms": self.time_ms,
                "version": self.version}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PlanRecord:
        return cls(doc["insurer"], doc["plan"], doc["version"], doc["effective_day"], doc["digest"], doc["rules"],
                   doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class TableRecord:
    """An edit-table version and its vote: ``open`` → ``approved`` | ``rejected`` (no votes after ``expires``)."""

    name: str
    version: str
    effective_day: int
    digest: str
    source: str
    status: str
    proposer_org: str
    yes: tuple[str, ...]
    no: tuple[str, ...]
    opened: int
    expires: int
    closed: int | None

    def to_json(self) -> dict[str, Any]:
        return {"closed": self.closed, "digest": self.digest, "effective_day": self.effective_day,
                "expires": self.expires, "name": self.name, "no": list(self.no), "opened": self.opened,
                "proposer_org": self.proposer_org, "source": self.source, "status": self.status,
                "version": self.version, "yes": list(self.yes)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TableRecord:
        return cls(doc["name"], doc["version"], doc["effective_day"], doc["digest"], doc["source"], doc["status"],
                   doc["proposer_org"], tuple(doc["yes"]), tuple(doc["no"]), doc["opened"], doc["expires"],
                   doc["closed"])


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    id: str
    type: str
    provider: str
    insurer: str
    patient: str
    coverage: str
    encounter: str
    start_day: int
    end_day: int
    content_commitment: str
    fingerprints: tuple[str, ...]
    lines: int
    status: str
    replaces: str | None
    replaced_by: str | None
    prior_payer_claim: str | None
    adjudications: int
    payments: int
    appeals: int
    flags: tuple[str, ...]
    submitted_height: int
    submitted_ms: int
    updated_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"adjudications": self.adjudications, "appeals": self.appeals,
                "content_commitment": self.content_commitment, "coverage": self.coverage, "encounter": self.encounter,
                "end_day": self.end_day, "fingerprints": list(self.fingerprints), "flags": list(self.flags),
                "id": self.id, "insurer": self.insurer, "lines": self.lines, "patient": self.patient,
                "payments": self.payments, "prior_payer_claim": self.prior_payer_claim, "provider": self.provider,
                "replaced_by": self.replaced_by, "replaces": self.replaces, "start_day": self.start_day,
                "status": self.status, "submitted_height": self.submitted_height, "submitted_ms": self.submitted_ms,
                "type": self.type, "updated_ms": self.updated_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClaimRecord:
        return cls(doc["id"], doc["type"], doc["provider"], doc["insurer"], doc["patient"], doc["coverage"],
                   doc["encounter"], doc["start_day"], doc["end_day"], doc["content_commitment"],
                   tuple(doc["fingerprints"]), doc["lines"], doc["status"], doc["replaces"], doc["replaced_by"],
                   doc["prior_payer_claim"], doc["adjudications"], doc["payments"], doc["appeals"],
                   tuple(doc["flags"]), doc["submitted_height"], doc["submitted_ms"], doc["updated_ms"])


@dataclass(frozen=True, slots=True)
class LineOutcomeRecord:
    sequence: int
    outcome: str
    codes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"codes": list(self.codes), "outcome": self.outcome, "sequence": self.sequence}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LineOutcomeRecord:
        return cls(doc["sequence"], doc["outcome"], tuple(doc["codes"]))


@dataclass(frozen=True, slots=True)
class AdjudicationRecord:
    """An adjudication as the ledger keeps it: outcome, per-line codes, the exact rule versions and the
    commitments to the insurer's input and result (``by = "ledger"``: the contract's own phantom denial)."""

    claim: str
    n: int
    by: str
    outcome: str
    lines: tuple[LineOutcomeRecord, ...]
    plan: str | None
    plan_version: int | None
    plan_digest: str | None
    edit_set: dict[str, Any] | None
    content_commitment: str
    input_commitment: str | None
    result_commitment: str | None
    accumulators_from: dict[str, Any] | None
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"accumulators_from": self.accumulators_from, "by": self.by, "claim": self.claim,
                "content_commitment": self.content_commitment, "edit_set": self.edit_set, "height": self.height,
                "input_commitment": self.input_commitment, "lines": [x.to_json() for x in self.lines], "n": self.n,
                "outcome": self.outcome, "plan": self.plan, "plan_digest": self.plan_digest,
                "plan_version": self.plan_version, "result_commitment": self.result_commitment,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AdjudicationRecord:
        return cls(doc["claim"], doc["n"], doc["by"], doc["outcome"],
                   tuple(LineOutcomeRecord.from_json(x) for x in doc["lines"]), doc["plan"], doc["plan_version"],
                   doc["plan_digest"], doc["edit_set"], doc["content_commitment"], doc["input_commitment"],
                   doc["result_commitment"], doc["accumulators_from"], doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    claim: str
    n: int
    remittance: str
    by: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "claim": self.claim, "height": self.height, "n": self.n, "remittance": self.remittance,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PaymentRecord:
        return cls(doc["claim"], doc["n"], doc["remittance"], doc["by"], doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class AppealRecord:
    claim: str
    n: int
    by: str
    by_kind: str
    reason: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "by_kind": self.by_kind, "claim": self.claim, "height": self.height, "n": self.n,
                "reason": self.reason, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AppealRecord:
        return cls(doc["claim"], doc["n"], doc["by"], doc["by_kind"], doc["reason"], doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class FlagRecord:
    insurer: str
    claim: str
    kind: str
    other_claim: str | None
    other_insurer: str | None
    by: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "claim": self.claim, "height": self.height, "insurer": self.insurer,
                "kind": self.kind, "other_claim": self.other_claim, "other_insurer": self.other_insurer,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FlagRecord:
        return cls(doc["insurer"], doc["claim"], doc["kind"], doc["other_claim"], doc["other_insurer"], doc["by"],
                   doc["height"], doc["time_ms"])


@dataclass(frozen=True, slots=True)
class FingerprintEntry:
    claim: str
    insurer: str
    provider: str

    def to_json(self) -> dict[str, Any]:
        return {"insurer": self.insurer, "provider": self.provider}


@dataclass(frozen=True, slots=True)
class AccumulatorHead:
    coverage: str
    claim: str
    n: int
    result_commitment: str

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "coverage": self.coverage, "n": self.n,
                "result_commitment": self.result_commitment}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AccumulatorHead:
        return cls(doc["coverage"], doc["claim"], doc["n"], doc["result_commitment"])


# --- accessors ----------------------------------------------------------------------------------------------------

def _get(state: State, key: str) -> dict[str, Any] | None:
    raw = state.get_raw(key)
    return None if raw is None else decode_trusted(raw)


def _scan(state: State, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for key, raw in state.scan_raw(prefix):
        yield key, decode_trusted(raw)


def get_coverage(state: State, coverage: str) -> CoverageRecord | None:
    doc = _get(state, coverage_key(coverage))
    return None if doc is None else CoverageRecord.from_json(doc)


def put_coverage(state: Overlay, record: CoverageRecord) -> None:
    state.put(coverage_key(record.id), record.to_json())
    state.put(beneficiary_key(record.beneficiary, record.id), {"insurer": record.insurer})


def coverages_of(state: State, pseudonym: str) -> list[CoverageRecord]:
    """Every coverage registered for the patient, by coverage id."""
    out = []
    for key, _ in _scan(state, beneficiary_prefix(pseudonym)):
        record = get_coverage(state, key.rsplit("/", 1)[1])
        assert record is not None
        out.append(record)
    return out


def eligibility(state: State, pseudonym: str, day: int) -> list[CoverageRecord]:
    """The patient's active coverages in force on ``day``, primary first (the eligibility answer)."""
    return sorted((c for c in coverages_of(state, pseudonym) if c.status == "active" and c.covers(day)),
                  key=lambda c: (c.order, c.id))


def get_plan(state: State, insurer: str, plan: str, version: int) -> PlanRecord | None:
    doc = _get(state, plan_key(insurer, plan, version))
    return None if doc is None else PlanRecord.from_json(doc)


def put_plan(state: Overlay, record: PlanRecord) -> None:
    state.put(plan_key(record.insurer, record.plan, record.version), record.to_json())


def plan_versions(state: State, insurer: str, plan: str) -> list[PlanRecord]:
    return [PlanRecord.from_json(doc) for _, doc in _scan(state, plan_prefix(insurer, plan))]


def plan_in_force(state: State, insurer: str, plan: str, day: int) -> PlanRecord | None:
    """The plan version that applies to services on ``day``: the highest version in effect by then."""
    best = None
    for record in plan_versions(state, insurer, plan):
        if record.effective_day <= day:
            best = record
    return best


def get_table(state: State, name: str, version: str) -> TableRecord | None:
    doc = _get(state, table_key(name, version))
    return None if doc is None else TableRecord.from_json(doc)


def put_table(state: Overlay, record: TableRecord) -> None:
    state.put(table_key(record.name, record.version), record.to_json())


def table_in_force(state: State, name: str, day: int) -> TableRecord | None:
    """The approved edit-table version that applies to services on ``day``: of those in effect by
    then, the latest effective, and of those the last approved."""
    best: TableRecord | None = None
    for _, doc in _scan(state, table_prefix(name)):
        record = TableRecord.from_json(doc)
        if record.status != "approved" or record.effective_day > day:
            continue
        assert record.closed is not None
        if best is None or (record.effective_day, record.closed) > (best.effective_day, best.closed or 0):
            best = record
    return best


def get_claim(state: State, claim: str) -> ClaimRecord | None:
    doc = _get(state, claim_key(claim))
    return None if doc is None else ClaimRecord.from_json(doc)


def put_claim(state: Overlay, record: ClaimRecord) -> None:
    state.put(claim_key(record.id), record.to_json())


def claim_by_commitment(state: State, commitment: str) -> str | None:
    doc = _get(state, commitment_key(commitment))
    return None if doc is None else str(doc["claim"])


def claims_with_fingerprint(state: State, fingerprint: str) -> list[FingerprintEntry]:
    return [FingerprintEntry(key.rsplit("/", 1)[1], doc["insurer"], doc["provider"])
            for key, doc in _scan(state, fingerprint_prefix(fingerprint))]


def claims_of_patient(state: State, pseudonym: str) -> list[ClaimRecord]:
    out = []
    for key, _ in _scan(state, patient_claims_prefix(pseudonym)):
        record = get_claim(state, key.rsplit("/", 1)[1])
        assert record is not None
        out.append(record)
    return out


def get_adjudication(state: State, claim: str, n: int) -> AdjudicationRecord | None:
    doc = _get(state, adjudication_key(claim, n))
    return None if doc is None else AdjudicationRecord.from_json(doc)


def latest_adjudication(state: State, record: ClaimRecord) -> AdjudicationRecord | None:
    return None if record.adjudications == 0 else get_adjudication(state, record.id, record.adjudications)


def adjudications_of(state: State, claim: str) -> list[AdjudicationRecord]:
    return [AdjudicationRecord.from_json(doc) for _, doc in _scan(state, adjudication_prefix(claim))]


def payments_of(state: State, claim: str) -> list[PaymentRecord]:
    return [PaymentRecord.from_json(doc) for _, doc in _scan(state, payment_prefix(claim))]


def flags_of(state: State, insurer: str) -> list[FlagRecord]:
    """The insurer's flag feed, in commit order."""
    return [FlagRecord.from_json(doc) for _, doc in _scan(state, flag_prefix(insurer))]


def get_accumulator_head(state: State, coverage: str) -> AccumulatorHead | None:
    doc = _get(state, accumulator_key(coverage))
    return None if doc is None else AccumulatorHead.from_json(doc)
