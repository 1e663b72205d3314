"""ICH E2A expedited-reporting deadlines for adverse events, as pure functions of times in ms.

A *SUSAR* is a suspected unexpected serious adverse reaction: an adverse event that is **serious**
(any seriousness criterion), **unexpected** (not in the reference safety information) and
**suspected** to be related to the investigational product. ICH E2A (and 21 CFR 312.32, EU CTR
Art. 42) require the sponsor to report it:

* fatal or life-threatening: as soon as possible and no later than **7 calendar days** after Day 0,
  followed by as complete a report as possible within **8 additional calendar days** (Day 15);
* any other SUSAR: no later than **15 calendar days** after Day 0 (that report is the complete one).

Day 0 is the sponsor's first knowledge that the case meets the minimum criteria. On CareLedger the
site records the event on the ledger the sponsor shares, so Day 0 is the time of the block that
recorded it. Days are UTC calendar days: Day 0 is the UTC date of that block and "within N days"
means before the end (24:00 UTC) of Day N, so a report is on time iff it is committed at a block
time strictly before ``due_ms``. An event that is not a SUSAR has no expedited deadline.

"Overdue" is never stored: :func:`report_status` derives it from any ``now_ms`` (the API passes the
latest committed block's time), so no block has to be produced for a deadline to pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DAY_MS = 86_400_000
FATAL_INITIAL_DAYS = 7
FATAL_COMPLETE_DAYS = 7 + 8
OTHER_DAYS = 15

SERIOUSNESS_CRITERIA = ("death", "life_threatening", "hospitalisation", "disability", "congenital_anomaly",
                        "medically_important")
"""ICH E2A seriousness criteria: results in death, is life-threatening, requires or prolongs
in-patient hospitalisation, results in persistent or significant disability/incapacity, is a
congenital anomaly/birth defect, or is another medically important condition."""

Category = Literal["fatal_or_life_threatening", "other_serious", "non_serious"]
StageStatus = Literal["not_required", "pending", "overdue", "on_time", "late"]


@dataclass(frozen=True, slots=True)
class SafetyClock:
    """An event's classification and its reporting deadlines (exclusive ms bounds, None when not due)."""

    category: Category
    susar: bool
    day0_ms: int
    initial_due_ms: int | None
    complete_due_ms: int | None


def end_of_day(day0_ms: int, days: int) -> int:
    """The first ms after Day ``days`` counted from the UTC date of ``day0_ms`` (Day 0)."""
    return (day0_ms // DAY_MS + days + 1) * DAY_MS


def classify(criteria: tuple[str, ...] | list[str]) -> Category:
    """Fatal or life-threatening, other serious, or non-serious, from the seriousness criteria met.

    Raises ValueError for an unknown criterion.
    """
    unknown = [c for c in criteria if c not in SERIOUSNESS_CRITERIA]
    if unknown:
        raise ValueError(f"unknown seriousness criterion {unknown[0]!r}")
    if "death" in criteria or "life_threatening" in criteria:
        return "fatal_or_life_threatening"
    return "other_serious" if criteria else "non_serious"


def compute_clock(day0_ms: int, criteria: tuple[str, ...] | list[str], expected: bool, related: bool) -> SafetyClock:
    """The E2A clock of an event recorded at ``day0_ms``.

    A SUSAR (serious, unexpected, suspected related) that is fatal or life-threatening is due by the
    end of Day 7 with its complete report by the end of Day 15; any other SUSAR by the end of Day 15
    (no separate complete report). Anything else has no expedited deadline.
    """
    category = classify(criteria)
    susar = category != "non_serious" and not expected and related
    if not susar:
        return SafetyClock(category, False, day0_ms, None, None)
    if category == "fatal_or_life_threatening":
        return SafetyClock(category, True, day0_ms, end_of_day(day0_ms, FATAL_INITIAL_DAYS),
                           end_of_day(day0_ms, FATAL_COMPLETE_DAYS))
    return SafetyClock(category, True, day0_ms, end_of_day(day0_ms, OTHER_DAYS), None)


def stage_status(due_ms: int | None, submitted_ms: int | None, now_ms: int) -> StageStatus:
    """One report's state at ``now_ms``: not required, pending, overdue, submitted on time, or late."""
    if due_ms is None:
        return "not_required"
    if submitted_ms is not None:
        return "on_time" if submitted_ms < due_ms else "late"
    return "overdue" if now_ms >= due_ms else "pending"


@dataclass(frozen=True, slots=True)
class ReportStatus:
    initial: StageStatus
    complete: StageStatus

    @property
    def overdue(self) -> bool:
        return "overdue" in (self.initial, self.complete)

    @property
    def late(self) -> bool:
        return "late" in (self.initial, self.complete)


def report_status(clock: SafetyClock, initial_ms: int | None, complete_ms: int | None, now_ms: int) -> ReportStatus:
    """Both reports' states at ``now_ms`` (the latest committed block's time, for queries)."""
    return ReportStatus(stage_status(clock.initial_due_ms, initial_ms, now_ms),
                        stage_status(clock.complete_due_ms, complete_ms, now_ms))


__all__ = ["DAY_MS", "SERIOUSNESS_CRITERIA", "ReportStatus", "SafetyClock", "classify", "compute_clock",
           "end_of_day", "report_status", "stage_status"]
