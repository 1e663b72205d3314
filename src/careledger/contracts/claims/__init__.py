"""Claims contract: coverage, plan and edit-table versions, claims checked against recorded care, their
adjudication records, payments, appeals and fraud flags — never a code, diagnosis or amount.

==========================  ======================================================================
type (version 1)            who, and what
==========================  ======================================================================
claims.register_coverage    insurer: a coverage for a pseudonymous beneficiary (plan, period, order)
claims.update_coverage      insurer: status, end, order of a coverage
claims.register_plan        insurer: the next version of a plan's benefit rules (the rules themselves)
claims.propose_table        any organisation admin: an edit-table version (digest) for a vote
claims.vote_table           any organisation admin: vote; more than 2/3 of organisations approve
claims.submit               provider: a claim for an anchored encounter (or it is denied as phantom)
claims.adjudicate           insurer: outcome, per-line codes, rule versions, input/result commitments
claims.flag                 insurer: content, fingerprint or encounter mismatch found by its node
claims.pay                  insurer: a payment (a commitment to the remittance)
claims.appeal               provider or patient: appeal an adjudication
claims.void                 provider: void a claim
==========================  ======================================================================

The rules, the state machine and what erasing an encounter does to its claims are in
:mod:`.handlers`; the state layout in :mod:`.layout`; the plan rules schema in :mod:`.plan_rules`.
"""

from __future__ import annotations

from typing import Any

from careledger.contracts.base import Handler

from . import coverage, handlers, tables
from .handlers import encounter_state
from .layout import (
    adjudications_of,
    claims_of_patient,
    coverages_of,
    eligibility,
    flags_of,
    get_accumulator_head,
    get_adjudication,
    get_claim,
    get_coverage,
    get_plan,
    get_table,
    latest_adjudication,
    payments_of,
    plan_in_force,
    plan_versions,
    table_in_force,
)

HANDLERS: list[Handler[Any]] = [*coverage.HANDLERS, *tables.HANDLERS, *handlers.HANDLERS]

__all__ = [
    "HANDLERS",
    "adjudications_of",
    "claims_of_patient",
    "coverages_of",
    "eligibility",
    "encounter_state",
    "flags_of",
    "get_accumulator_head",
    "get_adjudication",
    "get_claim",
    "get_coverage",
    "get_plan",
    "get_table",
    "latest_adjudication",
    "payments_of",
    "plan_in_force",
    "plan_versions",
    "table_in_force",
]
