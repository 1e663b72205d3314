"""ICH E2A deadlines: fatal or life-threatening SUSARs by Day 7 with the complete report by Day 15,
other SUSARs by Day 15, nothing expedited otherwise; UTC calendar days; overdue derived from any time."""

from __future__ import annotations

import pytest

from careledger.contracts.trials.safety import DAY_MS, classify, compute_clock, end_of_day, report_status, stage_status

# 2024-03-05T23:30:00Z: late in the day, so calendar days and 24-hour periods differ
DAY0 = 1_709_681_400_000
MIDNIGHT = DAY0 // DAY_MS * DAY_MS


def test_fatal_or_life_threatening_susar_is_due_by_day_7_and_complete_by_day_15() -> None:
    for criteria in (["death"], ["life_threatening", "hospitalisation"]):
        clock = compute_clock(DAY0, criteria, expected=False, related=True)
        assert clock.susar and clock.category == "fatal_or_life_threatening"
        assert clock.initial_due_ms == MIDNIGHT + 8 * DAY_MS  # the end of Day 7 (2024-03-12, 24:00 UTC)
        assert clock.complete_due_ms == MIDNIGHT + 16 * DAY_MS  # 8 more calendar days: the end of Day 15


def test_other_susar_is_due_by_day_15_with_no_separate_complete_report() -> None:
    clock = compute_clock(DAY0, ["hospitalisation"], expected=False, related=True)
    assert clock.susar and clock.category == "other_serious"
    assert clock.initial_due_ms == MIDNIGHT + 16 * DAY_MS
    assert clock.complete_due_ms is None


@pytest.mark.parametrize(("criteria", "expected", "related", "category"), [
    ([], False, True, "non_serious"),
    (["death"], True, True, "fatal_or_life_threatening"),
    (["hospitalisation"], False, False, "other_serious"),
])
def test_not_a_susar_has_no_expedited_deadline(criteria: list[str], expected: bool, related: bool,
                                               category: str) -> None:
    clock = compute_clock(DAY0, criteria, expected, related)
    assert not clock.susar and clock.category == category
    assert clock.initial_due_ms is None and clock.complete_due_ms is None
    assert report_status(clock, None, None, DAY0 + 100 * DAY_MS).initial == "not_required"


def test_overdue_is_derived_from_the_time_asked() -> None:
    clock = compute_clock(DAY0, ["death"], expected=False, related=True)
    due = clock.initial_due_ms
    assert due is not None
    assert report_status(clock, None, None, due - 1).initial == "pending"
    status = report_status(clock, None, None, due)
    assert status.initial == "overdue" and status.overdue
    assert report_status(clock, due - 1, None, due + DAY_MS).initial == "on_time"
    late = report_status(clock, due, None, due)
    assert late.initial == "late" and late.late and late.complete == "pending"
    assert stage_status(None, None, 0) == "not_required"


def test_day_boundaries_are_utc_calendar_days() -> None:
    assert end_of_day(MIDNIGHT, 0) == MIDNIGHT + DAY_MS
    assert end_of_day(MIDNIGHT + DAY_MS - 1, 0) == MIDNIGHT + DAY_MS
    assert end_of_day(MIDNIGHT + DAY_MS, 0) == MIDNIGHT + 2 * DAY_MS


def test_unknown_seriousness_criterion_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown seriousness criterion"):
        classify(["serious-ish"])
