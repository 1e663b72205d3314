"""Coverage and plans off the ledger: FHIR R4 ``Coverage`` mapping, payer order, plan benefit terms.

A FHIR ``Coverage`` carries a member id, a subscriber id and often names: none of that reaches the
ledger. :func:`parse_coverage` keeps only what the ledger and adjudication need — the beneficiary's
pseudonym, the insurer, the plan key (``class`` of type ``plan``), the period at day precision, the
order (coordination of benefits: 1 = primary) and the status — and the full resource stays in the
insurer's vault behind a salted commitment (:func:`coverage_commitment`).

:class:`PlanRules` is one version of a plan's benefit terms (deductible, co-pay, co-insurance in
basis points, annual limits, covered categories, the code → category map and the fee schedule), read
from the document the ledger holds (schema: :mod:`careledger.contracts.claims.plan_rules`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import ValidationError

from careledger.contracts.claims.plan_rules import PlanRulesDoc
from careledger.core import codec
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import canonical_bytes, compute_commitment, from_python
from careledger.vault.fhir import FhirInvalid, operation_outcome, validate_resource

from .content import day_of

COVERAGE_CLASS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/coverage-class"
PSEUDONYM_SYSTEM: Final = "urn:careledger:pseudonym"
CoverageStatus = Literal["active", "cancelled"]


class CoverageInvalid(FhirInvalid):
    default_code = Code.COVERAGE_INVALID


class PlanRulesInvalid(LedgerError):
    default_code = Code.PLAN_RULES_INVALID


@dataclass(frozen=True, slots=True)
class CoverageTerms:
    """What the ledger and adjudication know of a coverage. ``end_day`` is inclusive (None: open)."""

    coverage: str
    insurer: str
    beneficiary: str
    plan: str
    start_day: int
    end_day: int | None
    order: int
    status: CoverageStatus

    def covers(self, day: int) -> bool:
        """Is ``day`` inside the coverage period (status aside)?"""
        return self.start_day <= day and (self.end_day is None or day <= self.end_day)

    def to_json(self) -> dict[str, Any]:
        return {"beneficiary": self.beneficiary, "coverage": self.coverage, "end_day": self.end_day,
                "insurer": self.insurer, "order": self.order, "plan": self.plan, "start_day": self.start_day,
                "status": self.status}

    @classmethod
    def from_json(cls, doc: Any) -> CoverageTerms:
        """Raises CoverageInvalid (COVERAGE_INVALID) for another shape."""
        try:
            assert type(doc) is dict and set(doc) == {"beneficiary", "coverage", "end_day", "insurer", "order",
                                                      "plan", "start_day", "status"}
            assert doc["status"] in ("active", "cancelled")
            for k in ("beneficiary", "coverage", "insurer", "plan"):
                assert type(doc[k]) is str
            assert type(doc["start_day"]) is int and type(doc["order"]) is int
            assert doc["end_day"] is None or type(doc["end_day"]) is int
        except (AssertionError, KeyError):
            raise CoverageInvalid("not a coverage document", operation_outcome(
                [("structure", "expected a CareLedger coverage document", "")])) from None
        return cls(doc["coverage"], doc["insurer"], doc["beneficiary"], doc["plan"], doc["start_day"],
                   doc["end_day"], doc["order"], doc["status"])


def parse_coverage(resource: Any, *, coverage: str, insurer: str, beneficiary: str | None = None) -> CoverageTerms:
    """Map a FHIR R4 ``Coverage`` to :class:`CoverageTerms` for the ledger.

    ``beneficiary`` is the patient's pseudonym; without it, ``Coverage.beneficiary`` must carry one as
    an identifier of system ``urn:careledger:pseudonym``. Identifiers, subscriber ids, names and the
    payor's display are never read. Raises FhirInvalid (FHIR_INVALID) when the R4B model refuses the
    resource, CoverageInvalid (COVERAGE_INVALID) when it is not a Coverage, its status is neither
    ``active`` nor ``cancelled``, it has no full start date, ends before it starts, has no plan class,
    an order outside 1-9, or no pseudonymous beneficiary.
    """
    value = from_python(resource)
    rtype = validate_resource(value)
    issues: list[tuple[str, str, str]] = []
    if rtype != "Coverage":
        raise CoverageInvalid(f"a {rtype} is not a Coverage", operation_outcome(
            [("not-supported", "expected a Coverage", rtype)]))
    status = value["status"]
    if status not in ("active", "cancelled"):
        issues.append(("not-supported", "status must be active or cancelled", "Coverage.status"))
    if beneficiary is None:
        ident = (value["beneficiary"].get("identifier") or {})
        if ident.get("system") == PSEUDONYM_SYSTEM and type(ident.get("value")) is str:
            beneficiary = ident["value"]
        else:
            issues.append(("required", "the beneficiary must be given as a CareLedger pseudonym",
                           "Coverage.beneficiary"))
    period = value.get("period") or {}
    start = end = None
    try:
        start = day_of(period["start"]) if type(period.get("start")) is str else None
        end = day_of(period["end"]) if type(period.get("end")) is str else None
    except ValueError:
        issues.append(("invalid", "the period needs full dates", "Coverage.period"))
    if start is None:
        issues.append(("required", "the coverage period needs a start date", "Coverage.period.start"))
    elif end is not None and end < start:
        issues.append(("invariant", "the period ends before it starts", "Coverage.period"))
    plan = next((c.get("value") for c in value.get("class", ())
                 if any(cd.get("system") == COVERAGE_CLASS_SYSTEM and cd.get("code") == "plan"
                        for cd in (c.get("type") or {}).get("coding", ()))), None)
    if type(plan) is not str:
        issues.append(("required", "a class of type plan names the plan", "Coverage.class"))
    order = value.get("order", 1)
    if type(order) is not int or not 1 <= order <= 9:
        issues.append(("invalid", "order must be 1 to 9", "Coverage.order"))
    if issues:
        raise CoverageInvalid(f"the Coverage cannot be registered: {len(issues)} problem(s)", operation_outcome(issues))
    assert beneficiary is not None and start is not None and type(plan) is str
    return CoverageTerms(coverage, insurer, beneficiary, plan, start, end, order, status)


def coverage_commitment(resource: Any, salt: bytes) -> str:
    """The salted commitment to the full FHIR Coverage (the records construction)."""
    return compute_commitment(salt, canonical_bytes(from_python(resource)))


def payer_order(coverages: Iterable[CoverageTerms], day: int) -> tuple[CoverageTerms, ...]:
    """The beneficiary's active coverages in force on ``day``, primary first (order, then coverage id)."""
    return tuple(sorted((c for c in coverages if c.status == "active" and c.covers(day)),
                        key=lambda c: (c.order, c.coverage)))


# --- plan benefit terms ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CategoryTerms:
    category: str
    covered: bool
    copay: int
    coinsurance_bps: int
    deductible_applies: bool
    annual_limit: int | None
    requires_authorization: bool


@dataclass(frozen=True)
class PlanRules:
    """One version of a plan's benefit terms, as the ledger records it (amounts in minor units).

    ``document`` is the rules document (the ledger's); the other fields are read from it once, at
    construction (:meth:`from_document`), for the kernel's hot path. Two versions are equal when
    their identity and documents are."""

    insurer: str
    plan: str
    version: int
    effective_day: int
    document: dict[str, Any] = field(repr=False)
    digest: str = field(compare=False)
    currency: str = field(compare=False)
    deductible: int = field(compare=False)
    annual_limit: int | None = field(compare=False)
    timely_filing_days: int = field(compare=False)
    edit_set: str | None = field(compare=False)
    enrolled_providers: frozenset[str] = field(repr=False, compare=False)
    categories: dict[str, CategoryTerms] = field(repr=False, compare=False)
    code_categories: dict[tuple[str, str], CategoryTerms] = field(repr=False, compare=False)
    fees: dict[tuple[str, str], int] = field(repr=False, compare=False)

    def category_of(self, system: str, code: str) -> CategoryTerms | None:
        """The category a code maps to (None: the plan does not know the code)."""
        return self.code_categories.get((system, code))

    def ref(self) -> dict[str, Any]:
        """How an adjudication names this version: plan, version and the digest of its document."""
        return {"digest": self.digest, "insurer": self.insurer, "plan": self.plan, "version": self.version}

    @classmethod
    def from_document(cls, insurer: str, plan: str, version: int, effective_day: int, document: Any) -> PlanRules:
        """Build from a rules document. Raises PlanRulesInvalid (PLAN_RULES_INVALID) when it fails the schema."""
        try:
            doc = PlanRulesDoc.model_validate(document).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "document"
            raise PlanRulesInvalid(f"plan rules: {where}: {first.get('msg', 'invalid')}") from None
        categories = {c["category"]: CategoryTerms(**c) for c in doc["categories"]}
        return cls(insurer=insurer, plan=plan, version=version, effective_day=effective_day, document=doc,
                   digest=plan_digest(doc), currency=doc["currency"], deductible=doc["deductible"],
                   annual_limit=doc["annual_limit"], timely_filing_days=doc["timely_filing_days"],
                   edit_set=doc["edit_set"], enrolled_providers=frozenset(doc["enrolled_providers"]),
                   categories=categories,
                   code_categories={(r["system"], r["code"]): categories[r["category"]]
                                    for r in doc["code_categories"]},
                   fees={(r["system"], r["code"]): r["allowed"] for r in doc["fee_schedule"]})

    def to_json(self) -> dict[str, Any]:
        return {"effective_day": self.effective_day, "insurer": self.insurer, "plan": self.plan,
                "rules": self.document, "version": self.version}

    @classmethod
    def from_json(cls, doc: Any) -> PlanRules:
        """The form :meth:`to_json` writes (and the ledger's plan record). Raises PlanRulesInvalid."""
        try:
            return cls.from_document(doc["insurer"], doc["plan"], doc["version"], doc["effective_day"], doc["rules"])
        except (KeyError, TypeError):
            raise PlanRulesInvalid("not a plan document: insurer, plan, version, effective_day, rules") from None


def plan_digest(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical rules document (what the ledger's plan record and adjudications name)."""
    return hashlib.sha256(codec.encode(document)).hexdigest()


def load_plan(path: Path) -> PlanRules:
    """A plan version from a JSON file in :meth:`PlanRules.to_json` form. Raises PlanRulesInvalid."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanRulesInvalid(f"{path.name}: cannot read a JSON plan ({type(exc).__name__})") from None
    return PlanRules.from_json(doc)
