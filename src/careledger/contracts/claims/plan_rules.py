"""The shape of a plan's benefit rules: data on the ledger, one immutable document per plan version.

An insurer registers each version of a plan's rules with ``claims.register_plan``; the ledger keeps
the document itself (plans are not PHI) and its digest, and every adjudication names the version it
applied. The off-ledger kernel (:mod:`careledger.claims.coverage`) reads the same document into
:class:`~careledger.claims.coverage.PlanRules`, so there is exactly one schema.

All amounts are integer minor units of ``currency``; rates are basis points (1/100 of a percent);
``coinsurance_bps`` is the patient's share. A benefit year is the calendar year of a line's
service date.

Document (canonical JSON; lists sorted, no repeats)::

    {"currency": "USD", "deductible": 50000, "annual_limit": 10000000 | null,
     "timely_filing_days": 365, "edit_set": "synthetic-practitioner" | null,
     "enrolled_providers": ["hospital", ...],            (empty: any consortium provider)
     "categories": [{"category": "office-visit", "covered": true, "copay": 2500, "coinsurance_bps": 2000,
                     "deductible_applies": true, "annual_limit": null, "requires_authorization": false}, ...],
     "code_categories": [{"system": "http://snomed.info/sct", "code": "185349003", "category": "office-visit"}, ...],
     "fee_schedule": [{"system": ..., "code": ..., "allowed": 12000}, ...]}   (allowed amount per unit)
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from careledger.contracts.base import Payload
from careledger.core.types import OrgId

Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,39}$")]
CodeSystem = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9+.:/_#%-]{0,199}$")]
ServiceCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,39}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,47}$")]
PlanKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
MinorUnits = Annotated[int, Field(ge=0, le=10**13)]
BasisPoints = Annotated[int, Field(ge=0, le=10_000)]
MAX_CODE_ROWS = 1024
MAX_CATEGORIES = 64
MAX_ENROLLED = 256


class CategoryTerms(Payload):
    category: Category
    covered: bool
    copay: MinorUnits = 0
    coinsurance_bps: BasisPoints = 0
    deductible_applies: bool = True
    annual_limit: MinorUnits | None = None
    requires_authorization: bool = False


class CodeCategory(Payload):
    system: CodeSystem
    code: ServiceCode
    category: Category


class FeeScheduleEntry(Payload):
    system: CodeSystem
    code: ServiceCode
    allowed: MinorUnits


class PlanRulesDoc(Payload):
    """A plan version's benefit rules. Raises (as INVALID_PAYLOAD in a payload) on repeated
    categories, codes or providers, on a code mapped to an undeclared category, and on unsorted lists
    (the document is canonical: one plan, one byte string)."""

    currency: Currency
    deductible: MinorUnits
    annual_limit: MinorUnits | None = None
    timely_filing_days: Annotated[int, Field(ge=1, le=3650)]
    edit_set: TableName | None = None
    enrolled_providers: Annotated[list[OrgId], Field(max_length=MAX_ENROLLED)] = []
    categories: Annotated[list[CategoryTerms], Field(min_length=1, max_length=MAX_CATEGORIES)]
    code_categories: Annotated[list[CodeCategory], Field(max_length=MAX_CODE_ROWS)] = []
    fee_schedule: Annotated[list[FeeScheduleEntry], Field(max_length=MAX_CODE_ROWS)] = []

    @model_validator(mode="after")
    def _canonical_lists(self) -> PlanRulesDoc:
        def strictly_sorted(keys: list[tuple[str, ...]], what: str) -> None:
            if any(a >= b for a, b in pairwise(keys)):
                raise ValueError(f"{what} must be sorted and must not repeat")

        strictly_sorted([(p,) for p in self.enrolled_providers], "enrolled_providers")
        strictly_sorted([(c.category,) for c in self.categories], "categories")
        strictly_sorted([(c.system, c.code) for c in self.code_categories], "code_categories")
        strictly_sorted([(f.system, f.code) for f in self.fee_schedule], "fee_schedule")
        declared = {c.category for c in self.categories}
        for row in self.code_categories:
            if row.category not in declared:
                raise ValueError(f"code_categories names an undeclared category {row.category!r}")
        return self
