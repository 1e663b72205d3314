"""Adjudication: one pure function from a claim and the facts around it to a balanced, coded result.

:func:`adjudicate` (content, coverage, plan rules version, edit tables, ledger facts) → result has
no clock, no randomness, no I/O and no floats: every amount is an integer in the currency's minor
units, and the same inputs give the same canonical bytes on any machine. The insurer's node runs it
and records on the ledger the outcome, the per-line codes, the exact plan and table versions and
two salted commitments (to the canonical input and to the canonical result); anyone who holds the
inputs and the salt (the patient, the provider, an auditor) re-runs it and gets the same bytes, or
the differences (:func:`verify_adjudication`, :func:`diff_results`).

**Balancing** (X12 835): for every line and for the claim, ``submitted - Σ adjustments = benefit``
(the amount paid), to the minor unit. Each adjustment is ``(group, CARC, amount)`` with group
``CO``/``OA``/``PI``/``PR``; remarks (RARC) explain them.

**Order of decisions.** Claim level, first match wins, for every line:

1. coverage not active → CO-31;
2. no anchored encounter (``encounter.status == "absent"``: never anchored, another provider's or
   patient's, not an Encounter, erased) → CO-16 with M127 and the flag ``no-recorded-encounter``;
3. encounter anchored but its content not (yet) readable (``"unavailable"``) → the claim is
   *pended*: each line OA-133 for its whole charge, nothing accumulates;
4. a secondary (or later) coverage without the prior payer's adjudication → OA-22 (another payer is
   primary: bill it first, then this claim again naming its claim);
5. the plan lists enrolled providers and this provider is not one → CO-B7.

Then per line, first match wins (a denied line carries one adjustment for its whole charge):

6. no charge → CO-16 with M79 (amount 0);
7. the line names an encounter other than the anchored one, or its dates fall outside the
   encounter's period → CO-16 with M127 and the flag ``no-recorded-encounter``;
8. service before the coverage start → PR-26; after its end → PR-27;
9. filed more than the plan's ``timely_filing_days`` after the service ended → CO-29;
10. the code maps to no plan category → CO-96; to a category the plan does not cover → PR-204;
11. the category requires authorization and the claim carries no ``preAuthRef`` → CO-197.

Then across the surviving lines (each step sees the survivors of the previous one, all at once,
so the result does not depend on line order):

12. exact duplicate — same date, code system, code and modifiers as an earlier surviving line of
    this claim, or as a paid line of another claim (``prior_lines``) → OA-18;
13. NCCI PTP: the line's code is column 2 of an edit in force that day whose column 1 code is on
    another surviving line or a paid line of the same date → CO-236, unless the modifier indicator
    is 1 and an NCCI-associated modifier is on either line (indicator 9 never applies);
14. MUE: indicator 1 — the line's units above the value → CO-151; indicators 2 and 3 — the units
    of every surviving line with that code and date plus those of paid lines above the value →
    each such line CO-151 with N362, unless the indicator is 3 and the insurer overrode that code
    on appeal (``mue_overrides``).

Finally each surviving line is priced, in sequence order, against the accumulators (which each
priced line updates before the next):

* ``eligible`` = the charge, capped by the fee schedule at ``allowed x units`` (excess CO-45);
* a secondary payer first takes off what the prior payer paid on the line (OA-23, at most eligible);
* deductible (while the benefit year's deductible is not met, for categories it applies to), then
  the co-pay (at most what is left), then co-insurance on the rest at ``coinsurance_bps``;
* the benefit is what is left, capped by the plan's and the category's annual limits (excess PR-119);
  a secondary payer pays the lesser of that benefit and what the prior payer left;
* the patient's share (eligible - prior payer - benefit) is booked as PR-1, then PR-3, then PR-2,
  then PR-119, each at most its computed amount — so the line balances exactly.

**Rounding**: the only division is co-insurance, ``(base x bps + 5000) // 10000`` — round half up
to the minor unit, on non-negative integers. Nothing else rounds.

The claim's outcome: ``pended`` (step 3), ``denied`` (every line denied), ``partial`` (some),
``approved`` (none). A claim-level remark M54 says when the declared total differs from the sum of
the line charges. A benefit year is the calendar year of the line's service date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from careledger.contracts.claims.layout import FLAG_NO_RECORDED_ENCOUNTER
from careledger.core import codec
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import compute_commitment

from . import codes as claim_codes
from .content import ClaimContent, ClaimLine, year_of
from .coverage import CategoryTerms, CoverageTerms, PlanRules
from .edits import EditTables

INPUT_SCHEMA: Final = "careledger/adjudication-input/v1"
RESULT_SCHEMA: Final = "careledger/adjudication-result/v1"
EncounterStatus = Literal["verified", "unavailable", "absent"]


class AdjudicationInputInvalid(LedgerError):
    """The inputs do not belong together (another plan, insurer, currency or coverage)."""

    default_code = Code.ADJUDICATION_INPUT_MISMATCH


class AdjudicationDiffers(LedgerError):
    """A re-run adjudication does not reproduce the recorded one."""

    default_code = Code.ADJUDICATION_DIFFERS


# --- facts from the ledger (and from the encounter the insurer read through the gateway) -------------------

@dataclass(frozen=True, slots=True)
class EncounterFacts:
    """The encounter the claim is for: ``verified`` (anchored, read, commitment checked; its id and
    period known), ``unavailable`` (anchored, content not readable yet) or ``absent`` (no anchor fit)."""

    record: str
    status: EncounterStatus
    resource_id: str | None = None
    start_day: int | None = None
    end_day: int | None = None

    def is_referenced_by(self, reference: str) -> bool:
        """Does a claim line's encounter reference name this encounter (``urn:uuid:<id>``, ``Encounter/<id>``)?"""
        rid = self.resource_id
        return rid is not None and (reference in (rid, f"urn:uuid:{rid}", f"Encounter/{rid}")
                                    or reference.endswith(f"/Encounter/{rid}"))

    def to_json(self) -> dict[str, Any]:
        return {"end_day": self.end_day, "record": self.record, "resource_id": self.resource_id,
                "start_day": self.start_day, "status": self.status}


@dataclass(frozen=True, slots=True)
class PriorLine:
    """A paid line of another claim for the same patient by the same provider (duplicates, PTP, MUE)."""

    claim: str
    service_day: int
    system: str
    code: str
    modifiers: tuple[str, ...]
    units: int

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "code": self.code, "modifiers": list(self.modifiers),
                "service_day": self.service_day, "system": self.system, "units": self.units}


@dataclass(frozen=True, slots=True)
class PriorPayer:
    """The prior payer's adjudication of this claim (coordination of benefits): paid per line sequence."""

    claim: str
    insurer: str
    paid: tuple[tuple[int, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "insurer": self.insurer, "paid": [list(p) for p in self.paid]}


@dataclass(frozen=True, slots=True)
class YearTotals:
    year: int
    deductible_met: int = 0
    benefit_paid: int = 0
    category_paid: tuple[tuple[str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"benefit_paid": self.benefit_paid, "category_paid": [list(c) for c in self.category_paid],
                "deductible_met": self.deductible_met, "year": self.year}


@dataclass(frozen=True, slots=True)
class Accumulators:
    """What a coverage has used per benefit year: deductible met, benefit paid, per category."""

    coverage: str
    years: tuple[YearTotals, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "years": [y.to_json() for y in self.years]}

    @classmethod
    def from_json(cls, doc: Any) -> Accumulators:
        try:
            return cls(str(doc["coverage"]), tuple(
                YearTotals(int(y["year"]), int(y["deductible_met"]), int(y["benefit_paid"]),
                           tuple((str(c), int(a)) for c, a in y["category_paid"])) for y in doc["years"]))
        except (KeyError, TypeError, ValueError):
            raise AdjudicationInputInvalid("not an accumulators document") from None

    def without(self, result: AdjudicationResult) -> Accumulators:
        """These accumulators less what ``result`` added (re-adjudicating a claim starts from here)."""
        acc = _Accum(self)
        for line in result.lines:
            if line.outcome == "approved" and line.category is not None:
                acc.add(line.year, -line.deductible, -line.benefit, line.category)
        return acc.freeze()


@dataclass(frozen=True, slots=True)
class LedgerFacts:
    """What the insurer's node knows from the ledger (and the encounter it read) when adjudicating."""

    claim: str
    provider: str
    received_day: int
    encounter: EncounterFacts
    accumulators: Accumulators
    prior_lines: tuple[PriorLine, ...] = ()
    prior_payer: PriorPayer | None = None
    mue_overrides: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"accumulators": self.accumulators.to_json(), "claim": self.claim,
                "encounter": self.encounter.to_json(), "mue_overrides": sorted(self.mue_overrides),
                "prior_lines": [p.to_json() for p in self.prior_lines],
                "prior_payer": None if self.prior_payer is None else self.prior_payer.to_json(),
                "provider": self.provider, "received_day": self.received_day}


# --- the result ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Adjustment:
    group: str
    reason: str
    amount: int

    @property
    def code(self) -> str:
        return claim_codes.adjustment_code(self.group, self.reason)

    def to_json(self) -> list[Any]:
        return [self.group, self.reason, self.amount]


@dataclass(frozen=True, slots=True)
class LineResult:
    """One line's adjudication. ``benefit`` is what the payer pays; the line balances."""

    sequence: int
    outcome: claim_codes.LineOutcome
    category: str | None
    year: int
    submitted: int
    eligible: int
    deductible: int
    copay: int
    coinsurance: int
    benefit: int
    adjustments: tuple[Adjustment, ...]
    remarks: tuple[str, ...] = ()

    @property
    def adjusted(self) -> int:
        return sum(a.amount for a in self.adjustments)

    @property
    def patient_responsibility(self) -> int:
        return sum(a.amount for a in self.adjustments if a.group == "PR")

    def balances(self) -> bool:
        return self.submitted - self.adjusted == self.benefit

    def codes(self) -> list[str]:
        """The line's outcome codes as the ledger records them: group-CARC and RARC, sorted, no amounts."""
        return sorted({a.code for a in self.adjustments} | set(self.remarks))

    def to_json(self) -> dict[str, Any]:
        return {"adjustments": [a.to_json() for a in self.adjustments], "benefit": self.benefit,
                "category": self.category, "coinsurance": self.coinsurance, "copay": self.copay,
                "deductible": self.deductible, "eligible": self.eligible, "outcome": self.outcome,
                "remarks": list(self.remarks), "sequence": self.sequence, "submitted": self.submitted,
                "year": self.year}


@dataclass(frozen=True, slots=True)
class AdjudicationResult:
    claim: str
    coverage: str
    insurer: str
    plan: dict[str, Any]
    edit_set: dict[str, Any] | None
    currency: str
    outcome: claim_codes.ClaimOutcome
    lines: tuple[LineResult, ...]
    remarks: tuple[str, ...]
    flags: tuple[str, ...]
    accumulators: Accumulators

    @property
    def submitted(self) -> int:
        return sum(line.submitted for line in self.lines)

    @property
    def paid(self) -> int:
        return sum(line.benefit for line in self.lines)

    @property
    def adjusted(self) -> int:
        return sum(line.adjusted for line in self.lines)

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(line, k) for line in self.lines)
                for k in ("submitted", "eligible", "deductible", "copay", "coinsurance", "benefit")}

    def balances(self) -> bool:
        """Per line and per claim: submitted - Σ adjustments = benefit."""
        return all(line.balances() for line in self.lines) and self.submitted - self.adjusted == self.paid

    def ledger_lines(self) -> list[dict[str, Any]]:
        """The per-line outcomes the ``claims.adjudicate`` payload carries (codes only, no amounts)."""
        return [{"codes": line.codes(), "outcome": line.outcome, "sequence": line.sequence} for line in self.lines]

    def to_json(self) -> dict[str, Any]:
        return {"accumulators": self.accumulators.to_json(), "claim": self.claim, "coverage": self.coverage,
                "currency": self.currency, "edit_set": self.edit_set, "flags": list(self.flags),
                "insurer": self.insurer, "lines": [line.to_json() for line in self.lines],
                "outcome": self.outcome, "plan": self.plan, "remarks": list(self.remarks),
                "schema": RESULT_SCHEMA, "totals": self.totals()}

    def canonical(self) -> bytes:
        return codec.encode(self.to_json())

    def commitment(self, salt: bytes) -> str:
        """``SHA-256(salt ‖ canonical result)`` — what ``claims.adjudicate`` records."""
        return compute_commitment(salt, self.canonical())

    @classmethod
    def from_json(cls, doc: Any) -> AdjudicationResult:
        """A result from its JSON form (e.g. the one an EOB was built from). Raises AdjudicationInputInvalid."""
        try:
            assert doc["schema"] == RESULT_SCHEMA
            lines = tuple(LineResult(
                int(x["sequence"]), x["outcome"], x["category"], int(x["year"]), int(x["submitted"]),
                int(x["eligible"]), int(x["deductible"]), int(x["copay"]), int(x["coinsurance"]), int(x["benefit"]),
                tuple(Adjustment(str(g), str(r), int(a)) for g, r, a in x["adjustments"]),
                tuple(str(r) for r in x["remarks"])) for x in doc["lines"])
            result = cls(str(doc["claim"]), str(doc["coverage"]), str(doc["insurer"]), dict(doc["plan"]),
                         None if doc["edit_set"] is None else dict(doc["edit_set"]), str(doc["currency"]),
                         doc["outcome"], lines, tuple(doc["remarks"]), tuple(doc["flags"]),
                         Accumulators.from_json(doc["accumulators"]))
        except (AssertionError, KeyError, TypeError, ValueError):
            raise AdjudicationInputInvalid("not an adjudication result document") from None
        if result.to_json() != doc:
            raise AdjudicationInputInvalid("the result document's totals or fields are inconsistent")
        return result


# --- the kernel --------------------------------------------------------------------------------------------

class _Accum:
    """Mutable accumulators while one claim is priced: year -> [deductible met, benefit paid, {category: paid}]."""

    __slots__ = ("coverage", "years")

    def __init__(self, acc: Accumulators) -> None:
        self.coverage = acc.coverage
        self.years: dict[int, list[Any]] = {
            y.year: [y.deductible_met, y.benefit_paid, dict(y.category_paid)] for y in acc.years}

    def year(self, year: int) -> list[Any]:
        entry = self.years.get(year)
        if entry is None:
            entry = self.years[year] = [0, 0, {}]
        return entry

    def add(self, year: int, deductible: int, benefit: int, category: str) -> None:
        entry = self.year(year)
        entry[0] += deductible
        entry[1] += benefit
        entry[2][category] = entry[2].get(category, 0) + benefit

    def freeze(self) -> Accumulators:
        return Accumulators(self.coverage, tuple(
            YearTotals(y, e[0], e[1], tuple(sorted((c, a) for c, a in e[2].items() if a)))
            for y, e in sorted(self.years.items())))


def _check_inputs(content: ClaimContent, coverage: CoverageTerms, plan: PlanRules, tables: EditTables | None,
                  facts: LedgerFacts) -> None:
    if coverage.insurer != plan.insurer or coverage.plan != plan.plan:
        raise AdjudicationInputInvalid("the plan is not the coverage's plan")
    if content.currency != plan.currency:
        raise AdjudicationInputInvalid("the claim's currency is not the plan's")
    if facts.accumulators.coverage != coverage.coverage:
        raise AdjudicationInputInvalid("the accumulators are another coverage's")
    if tables is not None and tables.name != plan.edit_set:
        raise AdjudicationInputInvalid("the edit tables are not the set the plan applies")
    if facts.prior_payer is not None and coverage.order == 1:
        raise AdjudicationInputInvalid("a primary coverage has no prior payer")


def _denied(line: ClaimLine, group: str, carc: str, remarks: tuple[str, ...],
            outcome: claim_codes.LineOutcome = "denied",
            category: str | None = None) -> LineResult:
    charge = line.charge or 0
    return LineResult(line.sequence, outcome, category, year_of(line.service_day), charge, 0, 0, 0, 0, 0,
                      (Adjustment(group, carc, charge),), remarks)


def _precheck(line: ClaimLine, content: ClaimContent, coverage: CoverageTerms, plan: PlanRules,
              facts: LedgerFacts, flags: set[str]) -> tuple[str, str, tuple[str, ...]] | None:
    """Steps 6-11: the first reason this line is denied on its own, or None."""
    if line.charge is None:
        return "CO", claim_codes.CARC_LACKS_INFORMATION, (claim_codes.RARC_MISSING_CHARGE,)
    enc = facts.encounter
    outside = (enc.start_day is not None and line.service_day < enc.start_day) or \
        (enc.end_day is not None and line.service_end_day > enc.end_day)
    if (line.encounters and not any(enc.is_referenced_by(r) for r in line.encounters)) or outside:
        flags.add(FLAG_NO_RECORDED_ENCOUNTER)
        return "CO", claim_codes.CARC_LACKS_INFORMATION, (claim_codes.RARC_NO_MEDICAL_RECORD,)
    if line.service_day < coverage.start_day:
        return "PR", claim_codes.CARC_BEFORE_COVERAGE, ()
    if coverage.end_day is not None and line.service_day > coverage.end_day:
        return "PR", claim_codes.CARC_AFTER_COVERAGE, ()
    if facts.received_day - line.service_end_day > plan.timely_filing_days:
        return "CO", claim_codes.CARC_TIMELY_FILING, ()
    category = plan.category_of(line.system, line.code)
    if category is None:
        return "CO", claim_codes.CARC_NON_COVERED, ()
    if not category.covered:
        return "PR", claim_codes.CARC_NOT_IN_PLAN, ()
    if category.requires_authorization and not content.preauth_refs:
        return "CO", claim_codes.CARC_NO_AUTHORIZATION, ()
    return None


def _edits(survivors: list[ClaimLine], tables: EditTables | None, facts: LedgerFacts,
           denials: dict[int, tuple[str, str, tuple[str, ...]]]) -> None:
    """Steps 12-14 over the surviving lines: duplicates, PTP pairs, units per date."""
    prior_keys = {(p.service_day, p.system, p.code, p.modifiers) for p in facts.prior_lines}
    seen: set[tuple[int, str, str, tuple[str, ...]]] = set()
    kept: list[ClaimLine] = []
    for line in survivors:
        key = (line.service_day, line.system, line.code, line.modifiers)
        if key in seen or key in prior_keys:
            denials[line.sequence] = ("OA", claim_codes.CARC_DUPLICATE, ())
        else:
            seen.add(key)
            kept.append(line)
    if tables is None:
        return
    # PTP: partners on the same date, this claim's surviving lines and paid lines
    partners: dict[tuple[int, str], list[tuple[int, tuple[str, ...]]]] = {}
    for line in kept:
        if tables.applies_to(line.system):
            partners.setdefault((line.service_day, line.code), []).append((line.sequence, line.modifiers))
    for p in facts.prior_lines:
        if tables.applies_to(p.system):
            partners.setdefault((p.service_day, p.code), []).append((-1, p.modifiers))
    bundled: set[int] = set()
    for line in kept:
        if not tables.applies_to(line.system):
            continue
        for edit in tables.ptp_with_column2(line.code):
            if not edit.in_force(line.service_day):
                continue
            for seq, mods in partners.get((line.service_day, edit.column1), ()):
                if seq == line.sequence:
                    continue
                if edit.modifier_indicator == 1 and (claim_codes.NCCI_MODIFIERS.intersection(line.modifiers)
                                                     or claim_codes.NCCI_MODIFIERS.intersection(mods)):
                    continue
                bundled.add(line.sequence)
    for seq in bundled:
        denials[seq] = ("CO", claim_codes.CARC_NCCI, ())
    kept = [line for line in kept if line.sequence not in bundled]
    # MUE
    groups: dict[tuple[int, str, str], list[ClaimLine]] = {}
    for line in kept:
        if not tables.applies_to(line.system):
            continue
        mue = tables.mue_for(line.code)
        if mue is None:
            continue
        if mue.mai == 1:
            if line.units > mue.max_units:
                denials[line.sequence] = ("CO", claim_codes.CARC_UNITS, ())
        else:
            groups.setdefault((line.service_day, line.system, line.code), []).append(line)
    for (day, system, code), lines in groups.items():
        mue = tables.mue_for(code)
        assert mue is not None
        total = sum(x.units for x in lines) + sum(p.units for p in facts.prior_lines
                                                   if p.service_day == day and p.system == system and p.code == code)
        if total > mue.max_units and not (mue.mai == 3 and code in facts.mue_overrides):
            for x in lines:
                denials[x.sequence] = ("CO", claim_codes.CARC_UNITS, (claim_codes.RARC_UNITS_MAXIMUM,))


def _price(line: ClaimLine, category: CategoryTerms, plan: PlanRules, acc: _Accum,
           prior_paid: dict[int, int] | None) -> LineResult:
    """Price a surviving line against the accumulators (and update them). See the module docstring."""
    submitted = line.charge
    assert submitted is not None
    adjustments: list[Adjustment] = []
    fee = plan.fees.get((line.system, line.code))
    eligible = submitted if fee is None or submitted <= fee * line.units else fee * line.units
    if submitted > eligible:
        adjustments.append(Adjustment("CO", claim_codes.CARC_FEE_SCHEDULE, submitted - eligible))
    prior = 0
    if prior_paid is not None:
        prior = min(prior_paid.get(line.sequence, 0), eligible)
        if prior:
            adjustments.append(Adjustment("OA", claim_codes.CARC_PRIOR_PAYER, prior))
    year = year_of(line.service_day)
    totals = acc.year(year)
    deductible = min(eligible, max(0, plan.deductible - totals[0])) if category.deductible_applies else 0
    rest = eligible - deductible
    copay = min(category.copay, rest)
    rest -= copay
    coinsurance = (rest * category.coinsurance_bps + 5000) // 10000
    rest -= coinsurance
    benefit = rest
    if plan.annual_limit is not None:
        benefit = min(benefit, max(0, plan.annual_limit - totals[1]))
    if category.annual_limit is not None:
        benefit = min(benefit, max(0, category.annual_limit - totals[2].get(category.category, 0)))
    over = rest - benefit
    pay = min(benefit, eligible - prior) if prior_paid is not None else benefit
    # the patient's share, booked in order, each part at most its computed amount
    share = eligible - prior - pay
    pr_deductible = min(deductible, share)
    share -= pr_deductible
    pr_copay = min(copay, share)
    share -= pr_copay
    pr_coinsurance = min(coinsurance, share)
    share -= pr_coinsurance
    pr_over = min(over, share)
    assert share == pr_over
    for carc, amount in ((claim_codes.CARC_DEDUCTIBLE, pr_deductible), (claim_codes.CARC_COPAY, pr_copay),
                         (claim_codes.CARC_COINSURANCE, pr_coinsurance), (claim_codes.CARC_BENEFIT_MAXIMUM, pr_over)):
        if amount:
            adjustments.append(Adjustment("PR", carc, amount))
    acc.add(year, pr_deductible, pay, category.category)
    return LineResult(line.sequence, "approved", category.category, year, submitted, eligible, pr_deductible,
                      pr_copay, pr_coinsurance, pay, tuple(adjustments))


def adjudicate(content: ClaimContent, coverage: CoverageTerms, plan: PlanRules, tables: EditTables | None,
               facts: LedgerFacts) -> AdjudicationResult:
    """Adjudicate a claim (see the module docstring for every rule, in order, and the rounding).

    Raises AdjudicationInputInvalid (ADJUDICATION_INPUT_MISMATCH) when the inputs do not belong
    together: the plan is not the coverage's, the currencies differ, the accumulators are another
    coverage's, the tables are not the plan's edit set, or a primary coverage is given a prior payer.
    Every other finding is a coded adjustment in the result, never an exception.
    """
    _check_inputs(content, coverage, plan, tables, facts)
    flags: set[str] = set()
    acc = _Accum(facts.accumulators)
    claim_level: tuple[str, str, tuple[str, ...]] | None = None
    pended = False
    if coverage.status != "active":
        claim_level = ("CO", claim_codes.CARC_NOT_INSURED, ())
    elif facts.encounter.status == "absent":
        claim_level = ("CO", claim_codes.CARC_LACKS_INFORMATION, (claim_codes.RARC_NO_MEDICAL_RECORD,))
        flags.add(FLAG_NO_RECORDED_ENCOUNTER)
    elif facts.encounter.status == "unavailable":
        pended = True
    elif coverage.order > 1 and facts.prior_payer is None:
        claim_level = ("OA", claim_codes.CARC_OTHER_PAYER_PRIMARY, ())
    elif plan.enrolled_providers and facts.provider not in plan.enrolled_providers:
        claim_level = ("CO", claim_codes.CARC_PROVIDER_NOT_ELIGIBLE, ())
    lines: list[LineResult]
    if pended:
        lines = [_denied(line, "OA", claim_codes.CARC_PENDING, (), "pended") for line in content.lines]
    elif claim_level is not None:
        lines = [_denied(line, *claim_level) for line in content.lines]
    else:
        denials: dict[int, tuple[str, str, tuple[str, ...]]] = {}
        survivors = []
        for line in content.lines:
            found = _precheck(line, content, coverage, plan, facts, flags)
            if found is None:
                survivors.append(line)
            else:
                denials[line.sequence] = found
        _edits(survivors, tables, facts, denials)
        prior_paid = None if facts.prior_payer is None else dict(facts.prior_payer.paid)
        lines = []
        for line in content.lines:
            found = denials.get(line.sequence)
            category = plan.category_of(line.system, line.code)
            if found is None:
                assert category is not None
                lines.append(_price(line, category, plan, acc, prior_paid))
            else:
                lines.append(_denied(line, *found, category=None if category is None else category.category))
    remarks: tuple[str, ...] = ()
    if content.declared_total is not None and all(line.charge is not None for line in content.lines) \
            and content.declared_total != content.submitted:
        remarks = (claim_codes.RARC_TOTAL_CHARGES,)
    outcome: claim_codes.ClaimOutcome
    if pended:
        outcome = "pended"
    elif all(line.outcome == "denied" for line in lines):
        outcome = "denied"
    elif any(line.outcome == "denied" for line in lines):
        outcome = "partial"
    else:
        outcome = "approved"
    return AdjudicationResult(
        claim=facts.claim, coverage=coverage.coverage, insurer=coverage.insurer, plan=plan.ref(),
        edit_set=None if tables is None else tables.ref(), currency=content.currency, outcome=outcome,
        lines=tuple(lines), remarks=remarks, flags=tuple(sorted(flags)), accumulators=acc.freeze())


# --- re-checking ----------------------------------------------------------------------------------------------

def adjudication_input(content: ClaimContent, coverage: CoverageTerms, plan: PlanRules, tables: EditTables | None,
                       facts: LedgerFacts) -> dict[str, Any]:
    """Everything the result depends on, as one document (plan and tables named by digest)."""
    return {"content": content.to_json(), "coverage": coverage.to_json(),
            "edit_set": None if tables is None else tables.ref(), "facts": facts.to_json(), "plan": plan.ref(),
            "schema": INPUT_SCHEMA}


def input_commitment(salt: bytes, content: ClaimContent, coverage: CoverageTerms, plan: PlanRules,
                     tables: EditTables | None, facts: LedgerFacts) -> str:
    """``SHA-256(salt ‖ canonical input)`` — the commitment ``claims.adjudicate`` records to the input."""
    return compute_commitment(salt, codec.encode(adjudication_input(content, coverage, plan, tables, facts)))


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    expected: Any
    actual: Any


def _diff(path: str, a: Any, b: Any, out: list[Difference]) -> None:
    if type(a) is dict and type(b) is dict:
        for key in sorted(set(a) | set(b)):
            _diff(f"{path}.{key}" if path else key, a.get(key), b.get(key), out)
    elif type(a) is list and type(b) is list and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(f"{path}[{i}]", x, y, out)
    elif a != b:
        out.append(Difference(path, a, b))


def diff_results(expected: AdjudicationResult | dict[str, Any],
                 actual: AdjudicationResult | dict[str, Any]) -> tuple[Difference, ...]:
    """Every field where two results differ, by JSON path (``lines[1].benefit``); empty when equal."""
    out: list[Difference] = []
    a = expected.to_json() if isinstance(expected, AdjudicationResult) else expected
    b = actual.to_json() if isinstance(actual, AdjudicationResult) else actual
    _diff("", a, b, out)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Verification:
    """A third party's re-run: does it reproduce the ledger's commitments (and a claimed result)?"""

    result: AdjudicationResult
    input_matches: bool
    result_matches: bool
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return self.input_matches and self.result_matches and not self.differences


def verify_adjudication(content: ClaimContent, coverage: CoverageTerms, plan: PlanRules, tables: EditTables | None,
                        facts: LedgerFacts, *, salt: bytes, input_commitment_hex: str, result_commitment_hex: str,
                        claimed: AdjudicationResult | None = None) -> Verification:
    """Re-run the adjudication and compare with what the ledger records (and with ``claimed``, the
    result the insurer sent, e.g. behind an EOB). Never raises for a mismatch: it reports it."""
    result = adjudicate(content, coverage, plan, tables, facts)
    differences = diff_results(claimed, result) if claimed is not None else ()
    return Verification(
        result=result,
        input_matches=input_commitment(salt, content, coverage, plan, tables, facts) == input_commitment_hex,
        result_matches=result.commitment(salt) == result_commitment_hex, differences=differences)


def require_reproduced(verification: Verification) -> AdjudicationResult:
    """The re-run result, or AdjudicationDiffers (ADJUDICATION_DIFFERS) naming what did not match."""
    if verification.ok:
        return verification.result
    parts = [f"{d.path}" for d in verification.differences[:5]]
    if not verification.input_matches:
        parts.insert(0, "input commitment")
    if not verification.result_matches:
        parts.insert(0, "result commitment")
    raise AdjudicationDiffers("the adjudication does not reproduce: " + ", ".join(parts))


def paid_lines(content: ClaimContent, result: AdjudicationResult, claim: str) -> Iterable[PriorLine]:
    """The approved lines of an adjudicated claim as ``prior_lines`` facts for later claims."""
    approved = {line.sequence for line in result.lines if line.outcome == "approved"}
    for line in content.lines:
        if line.sequence in approved:
            yield PriorLine(claim, line.service_day, line.system, line.code, line.modifiers, line.units)
