"""COMPare's outcome-switching check: each kind flagged, declared changes told apart from silent ones, and
results more than 12 months after primary completion flagged late."""

from __future__ import annotations

import pytest

from careledger.contracts.trials.dataset import day_number
from careledger.contracts.trials.outcomes import (
    FLAG_KINDS,
    Flag,
    Omission,
    OutcomeState,
    RegistrationSnapshot,
    ReportedOutcome,
    check_outcome_switching,
    results_late_flag,
)

PAIN = OutcomeState("primary", "Knee pain", "NRS 0-10", "12 weeks")
ROM = OutcomeState("secondary", "Range of motion", "Goniometer", "12 weeks")
BASE = RegistrationSnapshot(1, None, {"P1": PAIN, "S1": ROM})


def _reported(**changes: OutcomeState) -> list[ReportedOutcome]:
    outcomes = {"P1": PAIN, "S1": ROM} | changes
    return [ReportedOutcome(k, v) for k, v in outcomes.items()]


def _kinds(flags: list[Flag]) -> list[tuple[str, str | None, bool]]:
    return [(f.kind, f.outcome, f.declared) for f in flags]


def test_results_as_registered_raise_no_flag() -> None:
    assert check_outcome_switching(BASE, [], _reported(), []) == []


def test_whitespace_and_case_do_not_count_as_a_change() -> None:
    same = OutcomeState("primary", "  knee   PAIN ", "nrs 0-10", "12  Weeks")
    assert check_outcome_switching(BASE, [], _reported(P1=same), []) == []


@pytest.mark.parametrize(("reported", "omitted", "expected"), [
    (_reported(P2=OutcomeState("primary", "Opioid use", "Diary", "12 weeks")), [],
     [("primary_added", "P2", False)]),
    ([ReportedOutcome("S1", ROM)], [], [("primary_dropped", "P1", False)]),
    (_reported(P1=OutcomeState("secondary", "Knee pain", "NRS 0-10", "12 weeks")), [],
     [("primary_demoted", "P1", False)]),
    (_reported(P1=OutcomeState("primary", "Knee stiffness", "NRS 0-10", "12 weeks")), [],
     [("primary_changed", "P1", False)]),
    (_reported(P1=OutcomeState("primary", "Knee pain", "VAS 0-100 mm", "12 weeks")), [],
     [("primary_changed", "P1", False)]),
    (_reported(P1=OutcomeState("primary", "Knee pain", "NRS 0-10", "24 weeks")), [],
     [("time_frame_changed", "P1", False)]),
    (_reported(S1=OutcomeState("primary", "Range of motion", "Goniometer", "12 weeks")), [],
     [("primary_added", "S1", False)]),
    (_reported(S2=OutcomeState("secondary", "Sleep quality", "PSQI", "12 weeks")), [],
     [("secondary_added", "S2", False)]),
    ([ReportedOutcome("P1", PAIN)], [], [("secondary_dropped", "S1", False)]),
    (_reported(S1=OutcomeState("secondary", "Walking speed", "10 m walk test", "12 weeks")), [],
     [("secondary_changed", "S1", False)]),
    ([ReportedOutcome("S1", ROM)], [Omission("P1", "assessor unavailable")],
     [("primary_dropped", "P1", True)]),
])
def test_each_kind_is_flagged(reported: list[ReportedOutcome], omitted: list[Omission],
                              expected: list[tuple[str, str | None, bool]]) -> None:
    assert _kinds(check_outcome_switching(BASE, [], reported, omitted)) == expected


def test_a_change_with_its_reason_in_the_results_is_declared() -> None:
    changed = ReportedOutcome("P1", OutcomeState("primary", "Knee pain", "NRS 0-10", "24 weeks"),
                              change_reason="12-week visits were suspended during a site closure")
    flags = check_outcome_switching(BASE, [], [changed, ReportedOutcome("S1", ROM)], [])
    assert _kinds(flags) == [("time_frame_changed", "P1", True)]
    assert flags[0].declared_in == "results" and flags[0].reason is not None


def test_a_change_registered_after_the_start_with_a_reason_is_declared() -> None:
    amended = RegistrationSnapshot(2, "outcome assessor workload",
                                   {"P1": OutcomeState("secondary", "Knee pain", "NRS 0-10", "12 weeks"), "S1": ROM})
    reported = _reported(P1=OutcomeState("secondary", "Knee pain", "NRS 0-10", "12 weeks"))
    flags = check_outcome_switching(BASE, [amended], reported, [])
    assert _kinds(flags) == [("primary_demoted", "P1", True)]
    assert flags[0].declared_in == "registration v2" and flags[0].reason == "outcome assessor workload"


def test_an_amendment_later_reverted_does_not_declare() -> None:
    amended = RegistrationSnapshot(2, "reason", {"P1": OutcomeState("primary", "Knee pain", "NRS 0-10", "24 weeks"),
                                                 "S1": ROM})
    reverted = RegistrationSnapshot(3, "revert", {"P1": PAIN, "S1": ROM})
    reported = _reported(P1=OutcomeState("primary", "Knee pain", "NRS 0-10", "24 weeks"))
    assert _kinds(check_outcome_switching(BASE, [amended, reverted], reported, [])) == [
        ("time_frame_changed", "P1", False)]


def test_flags_are_ordered_and_round_trip() -> None:
    reported = [ReportedOutcome("P1", OutcomeState("secondary", "Knee stiffness", "NRS 0-10", "6 weeks")),
                ReportedOutcome("X9", OutcomeState("primary", "Opioid use", "Diary", "12 weeks"))]
    flags = check_outcome_switching(BASE, [], reported, [])
    assert [f.kind for f in flags] == ["primary_added", "primary_demoted", "primary_changed", "time_frame_changed",
                                       "secondary_dropped"]
    assert [FLAG_KINDS.index(f.kind) for f in flags] == sorted(FLAG_KINDS.index(f.kind) for f in flags)
    assert [Flag.from_json(f.to_json()) for f in flags] == flags


def test_results_more_than_12_months_after_primary_completion_are_late() -> None:
    assert results_late_flag("2024-06-30", day_number("2025-06-30")) is None
    late = results_late_flag("2024-06-30", day_number("2025-07-01"))
    assert late is not None and late.kind == "results_late" and "1 day(s) late" in late.detail
    assert results_late_flag("2024-02-29", day_number("2025-02-28")) is None
    assert results_late_flag("2024-02-29", day_number("2025-03-01")) is not None
