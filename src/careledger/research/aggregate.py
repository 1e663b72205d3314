"""Aggregate count and sum queries answered by one custodian, small cells suppressed (pure).

A study may ask every custodian a count or sum grouped by attributes, without receiving rows. Each
custodian answers over its consenting patients only (the same consent rules as a release), from
per-patient *facts* extracted from the source records at their Safe Harbor level:

    sex, birth decade (``1950s``; ``90+`` over 89 years; ``unknown``), ZIP3 (``000`` for a
    restricted area), the condition codes, the count of records of each type, and the latest value of
    each observation code (an exact decimal)

Grouping by ``condition`` puts a patient in the cell of each listed code she has (``none`` if she
has none of them). Cells of 1 to 10 patients are suppressed: their count and sum are withheld
(CMS cell-size rule), and so are the smallest other cells needed so that the withheld cells cannot
be recovered by subtracting the shown ones from a total (complementary suppression, see
:func:`complementary_suppression`); empty cells are not listed. Differencing *across* queries with
other groupings is not prevented: that needs query auditing or noise (a known limit). The answer is
canonical JSON; its SHA-256 is what the ledger anchors (``research.answer``), and what the researcher
checks on delivery.
"""

from __future__ import annotations

import decimal
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from careledger.core import codec
from careledger.core.crypto import sha256
from careledger.research import dataset as ds
from careledger.research.config import DeidConfig
from careledger.research.deid import decimal_of
from careledger.research.kanon import NINETY_PLUS, UNKNOWN
from careledger.research.release import source_quasi_identifiers

SMALL_CELL = 11
"""Cells with fewer patients than this (1-10) are suppressed."""
_SUM_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN,
                               traps=[decimal.InvalidOperation, decimal.Inexact])
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What an aggregate query may ask of one patient (``patient`` is the custodian's own key for her;
    it never leaves the custodian)."""

    patient: str
    sex: str
    birth_decade: str
    birth_year: int | None  # for cohort criteria only, never grouped on
    zip3: str
    conditions: frozenset[str]
    resource_counts: Mapping[str, int] = field(default_factory=dict)
    observations: Mapping[str, Decimal] = field(default_factory=dict)


def _decade(birth_year: str) -> str:
    if birth_year in (NINETY_PLUS, UNKNOWN):
        return birth_year
    return f"{int(birth_year) // 10 * 10}s"


def extract_facts(patient_key: str, resources: Sequence[Mapping[str, Any]], config: DeidConfig,
                  as_of_day: int) -> PatientFacts | None:
    """A patient's facts from her source records (None without exactly one Patient resource)."""
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        return None
    qi = source_quasi_identifiers(patients[0], config, as_of_day)
    birth = patients[0].get("birthDate")
    year = int(birth[:4]) if type(birth) is str and birth[:4].isdigit() else None
    counts: dict[str, int] = {}
    latest: dict[str, tuple[str, Decimal]] = {}
    conditions: set[str] = set()
    for r in resources:
        rtype = str(r.get("resourceType"))
        counts[rtype] = counts.get(rtype, 0) + 1
        if rtype == "Condition":
            conditions.update(ds.codes_of(r))
        elif rtype == "Observation":
            vq = r.get("valueQuantity")
            value = decimal_of(vq.get("value")) if type(vq) is dict else None
            when = r.get("effectiveDateTime")
            if value is None or type(when) is not str:
                continue
            for code in ds.codes_of(r):
                if code not in latest or when >= latest[code][0]:
                    latest[code] = (when, value)
    return PatientFacts(patient_key, qi["sex"], _decade(qi["birth_year"]), year, qi["zip3"], frozenset(conditions),
                        counts, {code: v for code, (_, v) in sorted(latest.items())})


def _matches(cohort: Mapping[str, Any], f: PatientFacts) -> bool:
    if cohort["sex"] and f.sex not in cohort["sex"]:
        return False
    lo, hi = cohort["birth_year_min"], cohort["birth_year_max"]
    if (lo is not None or hi is not None) and (
            f.birth_year is None or (lo is not None and f.birth_year < lo) or (hi is not None and f.birth_year > hi)):
        return False
    return not cohort["conditions_any"] or not f.conditions.isdisjoint(cohort["conditions_any"])


def _groups(query: Mapping[str, Any], f: PatientFacts) -> list[tuple[str, ...]]:
    keys: list[list[str]] = []
    for g in query["group_by"]:
        if g == "sex":
            keys.append([f.sex])
        elif g == "birth_decade":
            keys.append([f.birth_decade])
        elif g == "zip3":
            keys.append([f.zip3])
        else:  # the query's codes are sorted in its canonical form
            found = [c for c in query["condition_codes"] if c in f.conditions]
            keys.append(found or ["none"])
    out: list[tuple[str, ...]] = [()]
    for options in keys:
        out = [(*prefix, o) for prefix in out for o in options]
    return out


def _key_getter(group_by: Sequence[str]) -> Callable[[PatientFacts], tuple[str, ...]]:
    """The cell of a patient when every grouping attribute is single-valued (no ``condition``)."""
    names = list(group_by)
    if not names:
        return lambda f: ()
    if len(names) == 1:
        get = operator.attrgetter(names[0])
        return lambda f: (get(f),)
    return operator.attrgetter(*names)


def _value_getter(sum_of: str) -> Callable[[PatientFacts], Decimal | int | None]:
    """What a sum adds for one patient: her count of records of a type, or her latest value of an
    observation code (None: she has none, and adds nothing)."""
    if sum_of.startswith("resources:"):
        rtype = sum_of[len("resources:"):]
        return lambda f: f.resource_counts.get(rtype, 0)
    code = sum_of[len("observation:"):]
    return lambda f: f.observations.get(code)


def complementary_suppression(counts: Mapping[tuple[str, ...], int]) -> set[tuple[str, ...]]:
    """The cells to withhold: every cell below :data:`SMALL_CELL`, then, while cells are shown, the
    smallest shown ones until the withheld cells are not a single cell and hold at least
    :data:`SMALL_CELL` patients together (else the total, or an earlier total query, would give them
    away by subtraction)."""
    hidden = {g for g, n in counts.items() if n < SMALL_CELL}
    shown = sorted((n, g) for g, n in counts.items() if n >= SMALL_CELL)
    while hidden and shown and (len(hidden) == 1 or sum(counts[g] for g in hidden) < SMALL_CELL):
        hidden.add(shown.pop(0)[1])
    return hidden


def answer_query(query: Mapping[str, Any], query_id: str, custodian: str, facts: Iterable[PatientFacts]
                 ) -> dict[str, Any]:
    """The custodian's answer to a query spec (the canonical form ``research.query`` anchors).

    ``facts`` are the consenting patients' facts only. A sum adds, over each cell's patients that
    have the value, exact decimals (the sum's text is exact); ``contributors`` is how many patients
    the cohort kept (0 when fewer than :data:`SMALL_CELL`: the cohort's size is a cell too).
    """
    counts: dict[tuple[str, ...], int] = {}
    sums: dict[tuple[str, ...], Decimal | int] = {}
    contributors = 0
    sum_of = query.get("sum_of")
    cohort = query["cohort"]
    everyone = not (cohort["sex"] or cohort["conditions_any"] or cohort["birth_year_min"] is not None
                    or cohort["birth_year_max"] is not None)
    simple = "condition" not in query["group_by"]
    key_of = _key_getter(query["group_by"]) if simple else None
    value_of = _value_getter(sum_of) if sum_of else None
    with decimal.localcontext(_SUM_CONTEXT):  # exact: 60 digits, and any inexact step would trap
        for f in facts:
            if not everyone and not _matches(cohort, f):
                continue
            contributors += 1
            value = value_of(f) if value_of is not None else None
            for g in ((key_of(f),) if key_of is not None else _groups(query, f)):
                counts[g] = counts.get(g, 0) + 1
                if value is not None:
                    sums[g] = sums.get(g, _ZERO) + value
    hidden = complementary_suppression(counts)
    cells = []
    suppressed = 0
    for g in sorted(counts):
        n = counts[g]
        cell: dict[str, Any] = {"group": dict(zip(query["group_by"], g, strict=True))}
        if g in hidden:
            suppressed += 1
            cell.update(count=None, suppressed=True)
            if sum_of:
                cell["sum"] = None
        else:
            cell.update(count=n, suppressed=False)
            if sum_of:
                cell["sum"] = str(sums.get(g, Decimal(0)))
        cells.append(cell)
    if contributors < SMALL_CELL:  # the cohort's own size is a cell too
        contributors = 0
    return {"cells": cells, "contributors": contributors, "custodian": custodian, "query": query_id,
            "query_hash": sha256(codec.encode(dict(query))).hex(), "suppressed_cells": suppressed}


def answer_hash(answer: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical answer: what ``research.answer`` anchors."""
    return sha256(codec.encode(dict(answer))).hex()


def answer_payload(answer: Mapping[str, Any]) -> dict[str, Any]:
    """The ``research.answer`` payload for an answer."""
    return {"answer_hash": answer_hash(answer), "cells": len(answer["cells"]), "contributors": answer["contributors"],
            "custodian": answer["custodian"], "query": answer["query"], "suppressed_cells": answer["suppressed_cells"]}
