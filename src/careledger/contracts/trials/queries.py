"""Pure queries over committed trial state, for the API, the CLI and alerts (no block is produced).

* :func:`safety_overview` / :func:`overdue_susars`: every SUSAR's report states at ``now_ms``, the
  latest committed block's time: *overdue* is derived here, never stored, so a deadline passes
  without any transaction;
* :func:`outcome_flags`: the outcome-switching flags recorded with the results;
* :func:`subjects_awaiting_reconsent`: enrolled subjects whose consent predates the last
  re-consent-required amendment (their visits are refused until they re-consent);
* :func:`registration_baseline`: the registration version COMPare compares against;
* :func:`anchor_leaves` / :func:`anchor_root`: every anchored visit version's leaf, in tree order, for
  an off-ledger :class:`careledger.trials.anchor_tree.AnchorTree` to answer inclusion proofs.
"""

from __future__ import annotations

from typing import Any, cast

from careledger.contracts.trials.anchors import frontier_root
from careledger.contracts.trials.handlers_reporting import baseline_registration
from careledger.contracts.trials.layout import (
    Reader,
    RegistrationVersion,
    get_consent,
    get_results,
    get_status,
    get_tree,
    iter_adverse_events,
    iter_registrations,
    iter_subjects,
    iter_visits,
    visit_leaf_data,
)
from careledger.contracts.trials.outcomes import Flag
from careledger.contracts.trials.safety import Category, SafetyClock, report_status


def _known_at(submission_ms: int | None, now_ms: int) -> int | None:
    return submission_ms if submission_ms is not None and submission_ms <= now_ms else None


def safety_overview(state: Reader, now_ms: int, trial: str | None = None) -> list[dict[str, Any]]:
    """Every SUSAR (of one trial, or all) with its deadlines and each report's state at ``now_ms``:
    ``pending``, ``overdue``, ``on_time``, ``late`` or ``not_required``. Ordered by trial and event.

    ``now_ms`` is normally the latest committed block's time. Any other time answers "as of" it from
    what the state holds: an event recorded later is left out and a report committed later counts as
    not yet made (so a time ahead of the latest block asks what will be overdue if no report comes)."""
    out = []
    for trial_id, ae in iter_adverse_events(state, trial):
        if not ae.susar or ae.day0_ms > now_ms:
            continue
        clock = SafetyClock(cast(Category, ae.category), True, ae.day0_ms, ae.initial_due_ms, ae.complete_due_ms)
        st = report_status(clock, _known_at(None if ae.initial is None else ae.initial.time_ms, now_ms),
                           _known_at(None if ae.complete is None else ae.complete.time_ms, now_ms), now_ms)
        out.append({"trial": trial_id, "event": ae.id, "site": ae.site, "category": ae.category,
                    "day0_ms": ae.day0_ms, "initial_due_ms": ae.initial_due_ms,
                    "complete_due_ms": ae.complete_due_ms, "initial": st.initial, "complete": st.complete,
                    "overdue": st.overdue, "late": st.late})
    return out


def overdue_susars(state: Reader, now_ms: int, trial: str | None = None) -> list[dict[str, Any]]:
    """The SUSARs with a report overdue at ``now_ms`` (for the sponsor's and the regulator's alerts)."""
    return [s for s in safety_overview(state, now_ms, trial) if s["overdue"]]


def outcome_flags(state: Reader, trial: str) -> list[Flag]:
    """The outcome-switching flags recorded with the trial's results (empty before results)."""
    results = get_results(state, trial)
    return [] if results is None else [Flag.from_json(f) for f in results.flags]


def subjects_awaiting_reconsent(state: Reader, trial: str) -> list[str]:
    """Enrolled subjects whose active consent predates the last re-consent-required protocol version."""
    status = get_status(state, trial)
    if status is None:
        return []
    out = []
    for subject in iter_subjects(state, trial):
        consent = get_consent(state, trial, subject.subject)
        if consent is not None and consent.status == "active" and consent.version < status.reconsent_version:
            out.append(subject.subject)
    return out


def registration_baseline(state: Reader, trial: str) -> RegistrationVersion | None:
    """The last registration version committed before the first enrolment's block (the latest while
    no one is enrolled); None for an unknown trial."""
    status = get_status(state, trial)
    versions = list(iter_registrations(state, trial))
    if status is None or not versions:
        return None
    return baseline_registration(versions, status.first_enrolment_height)[0]


def anchor_leaves(state: Reader, trial: str) -> list[bytes]:
    """Every anchored visit version's leaf data, in leaf order (index i is leaf i of the tree)."""
    leaves: dict[int, bytes] = {}
    for subject, visit, rec in iter_visits(state, trial):
        for v in rec.versions:
            leaves[v.leaf] = visit_leaf_data(trial, subject, visit, v)
    if sorted(leaves) != list(range(len(leaves))):
        raise ValueError("the anchored leaves are not contiguous")
    return [leaves[i] for i in range(len(leaves))]


def anchor_root(state: Reader, trial: str) -> tuple[int, bytes]:
    """The anchor tree's size and root as the ledger holds them now (O(log n))."""
    tree = get_tree(state, trial)
    return tree.size, frontier_root(tree.frontier)


__all__ = ["anchor_leaves", "anchor_root", "outcome_flags", "overdue_susars", "registration_baseline",
           "safety_overview", "subjects_awaiting_reconsent"]
