"""Outcome switching, checked by COMPare's rules: the results against the pre-specified outcomes.

The **baseline** is the last registration before the trial started, that is the last registration
version committed in a block *before* the block of the first enrolment (COMPare's "last registry
entry before the trial start date"; CareLedger's registration history gives it exactly). Every
outcome keeps its ``id`` across registration versions and in the results, so the check compares
item by item on (role, measure and method, time frame):

==================== ===================================================================
kind                 when
==================== ===================================================================
primary_added        a reported primary is not a baseline primary (new, or promoted from secondary)
primary_dropped      a baseline primary is not reported at all
primary_demoted      a baseline primary is reported as a secondary outcome
primary_changed      a baseline primary is reported with another measure or method
time_frame_changed   any baseline outcome is reported with another time frame
secondary_added      a reported secondary outcome was not pre-specified
secondary_dropped    a baseline secondary outcome is not reported
secondary_changed    a baseline secondary is reported with another measure or method
results_late         results submitted more than 12 months after primary completion (FDAAA 801)
==================== ===================================================================

Each outcome flag is **declared** when the change was made openly, with its reason: in the results
themselves (a reported outcome's ``change_reason``, an omission's ``reason``; CONSORT 2025 item 10),
or by a registration amendment after the start that carried a reason and that still stands at the
latest version (COMPare accepts a change made after commencement only if declared and explained).
Otherwise it is **silent**. Texts compare with whitespace collapsed and case folded.

Pure: dataclasses in, dataclasses out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from careledger.contracts.trials.dataset import day_number, normalise_text, one_year_after

Role = Literal["primary", "secondary"]
FLAG_KINDS = ("primary_added", "primary_dropped", "primary_demoted", "primary_changed", "time_frame_changed",
              "secondary_added", "secondary_dropped", "secondary_changed", "results_late")
_DETAIL_TEXT = 120


@dataclass(frozen=True, slots=True)
class OutcomeState:
    """An outcome as registered or reported."""

    role: str
    measure: str
    method: str
    time_frame: str

    def same_measure(self, other: OutcomeState) -> bool:
        return (normalise_text(self.measure) == normalise_text(other.measure)
                and normalise_text(self.method) == normalise_text(other.method))

    def same_time_frame(self, other: OutcomeState) -> bool:
        return normalise_text(self.time_frame) == normalise_text(other.time_frame)


@dataclass(frozen=True, slots=True)
class RegistrationSnapshot:
    """One registration version's outcomes by id, with the version's stated reason (None at first)."""

    version: int
    reason: str | None
    outcomes: dict[str, OutcomeState]

    @classmethod
    def from_dataset(cls, version: int, reason: str | None, dataset: dict[str, Any]) -> RegistrationSnapshot:
        """From a stored data set (:meth:`TrialRegistrationDataSet.to_json`)."""
        outcomes = {}
        for role, key in (("primary", "primary_outcomes"), ("secondary", "secondary_outcomes")):
            for o in dataset.get(key, []):
                outcomes[o["id"]] = OutcomeState(role, o["measure"], o["method"], o["time_frame"])
        return cls(version, reason, outcomes)


@dataclass(frozen=True, slots=True)
class ReportedOutcome:
    id: str
    state: OutcomeState
    change_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Omission:
    """A pre-specified outcome the results leave out, with the reason given."""

    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Flag:
    kind: str
    outcome: str | None
    declared: bool
    reason: str | None
    declared_in: str | None  # "results" | "registration v<n>" | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"declared": self.declared, "declared_in": self.declared_in, "detail": self.detail,
                "kind": self.kind, "outcome": self.outcome, "reason": self.reason}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Flag:
        return cls(doc["kind"], doc["outcome"], doc["declared"], doc["reason"], doc["declared_in"], doc["detail"])


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_TEXT else text[: _DETAIL_TEXT - 1] + "…"


def _declared_in_registry(later: Sequence[RegistrationSnapshot], outcome: str,
                          holds: Callable[[OutcomeState | None], bool]) -> RegistrationSnapshot | None:
    """The amendment (after the start) from which the registry has said what the results say, if it still does."""
    found = None
    for snap in reversed(later):
        if not holds(snap.outcomes.get(outcome)):
            break
        found = snap
    return found if found is not None and found.reason is not None else None


Predicate = Callable[[OutcomeState | None], bool]


def _same_measure_as(got: OutcomeState) -> Predicate:
    return lambda s: s is not None and s.same_measure(got)


def _same_time_frame_as(got: OutcomeState) -> Predicate:
    return lambda s: s is not None and s.same_time_frame(got)


def _has_role(role: str) -> Predicate:
    return lambda s: s is not None and s.role == role


def _flag(kind: str, outcome: str, detail: str, explicit: str | None, later: Sequence[RegistrationSnapshot],
          holds: Callable[[OutcomeState | None], bool]) -> Flag:
    if explicit is not None:
        return Flag(kind, outcome, True, explicit, "results", detail)
    snap = _declared_in_registry(later, outcome, holds)
    if snap is not None:
        return Flag(kind, outcome, True, snap.reason, f"registration v{snap.version}", detail)
    return Flag(kind, outcome, False, None, None, detail)


def check_outcome_switching(baseline: RegistrationSnapshot, later: Sequence[RegistrationSnapshot],
                            reported: Sequence[ReportedOutcome], omitted: Sequence[Omission]) -> list[Flag]:
    """Every outcome-switching flag of the results against the baseline registration.

    ``later`` are the registration versions committed from the start on, oldest first. Reported ids
    and omitted ids must each be unique and disjoint (the caller checks). Returns flags sorted by
    kind (in :data:`FLAG_KINDS` order) and outcome id.
    """
    by_id = {r.id: r for r in reported}
    reasons = {o.id: o.reason for o in omitted}
    flags: list[Flag] = []
    for oid, base in baseline.outcomes.items():
        rep = by_id.get(oid)
        if rep is None:
            kind = "primary_dropped" if base.role == "primary" else "secondary_dropped"
            flags.append(_flag(kind, oid, f"pre-specified {base.role} {_short(base.measure)!r} is not reported",
                               reasons.get(oid), later, lambda s: s is None))
            continue
        got = rep.state
        if base.role == "primary" and got.role == "secondary":
            flags.append(_flag("primary_demoted", oid, f"primary {_short(base.measure)!r} is reported as secondary",
                               rep.change_reason, later, _has_role("secondary")))
        if base.role == "secondary" and got.role == "primary":
            flags.append(_flag("primary_added", oid, f"secondary {_short(base.measure)!r} is reported as primary",
                               rep.change_reason, later, _has_role("primary")))
        if not base.same_measure(got):
            kind = "primary_changed" if base.role == "primary" else "secondary_changed"
            flags.append(_flag(kind, oid, f"registered {_short(base.measure)!r}, reported {_short(got.measure)!r}",
                               rep.change_reason, later, _same_measure_as(got)))
        if not base.same_time_frame(got):
            flags.append(_flag("time_frame_changed", oid,
                               f"registered {_short(base.time_frame)!r}, reported {_short(got.time_frame)!r}",
                               rep.change_reason, later, _same_time_frame_as(got)))
    for rep in reported:
        if rep.id in baseline.outcomes:
            continue
        kind = "primary_added" if rep.state.role == "primary" else "secondary_added"
        flags.append(_flag(kind, rep.id, f"{rep.state.role} {_short(rep.state.measure)!r} was not pre-specified",
                           rep.change_reason, later, _has_role(rep.state.role)))
    order = {k: i for i, k in enumerate(FLAG_KINDS)}
    return sorted(flags, key=lambda f: (order[f.kind], f.outcome or ""))


def results_late_flag(primary_completion: str, submitted_day: int) -> Flag | None:
    """The ``results_late`` flag when results come more than 12 months after primary completion.

    ``primary_completion`` is the ISO date registered (at submission) as primary completion;
    ``submitted_day`` the UTC day number of the submitting block. Due by the same date a year on.
    """
    due = one_year_after(primary_completion)
    late_by = submitted_day - day_number(due)
    if late_by <= 0:
        return None
    return Flag("results_late", None, False, None, None,
                f"primary completion {primary_completion}; results were due by {due}, submitted {late_by} day(s) late")


__all__ = ["FLAG_KINDS", "Flag", "Omission", "OutcomeState", "RegistrationSnapshot", "ReportedOutcome",
           "check_outcome_switching", "results_late_flag"]
