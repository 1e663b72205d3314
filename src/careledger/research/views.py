"""Read models of the research registry over committed state: studies, releases, queries and answers.

Everything here is what the ledger holds and any member may read: the study registry (data-sharing
studies and trials), the anchors of releases (never their consent snapshot's pseudonyms), aggregate
queries and the anchors of their answers. The answers themselves and the datasets stay with the
custodians (:mod:`.gateway`).
"""

from __future__ import annotations

from typing import Any

from careledger.contracts.research import (
    StudyRecord,
    answers_to,
    get_query,
    get_release,
    get_study,
    get_study_version,
    list_studies,
    releases_of_study,
    study_versions,
)
from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader


def study_summary(study: StudyRecord) -> dict[str, Any]:
    """What a listing shows of a study."""
    return {"id": study.id, "kind": study.kind, "version": study.version, "status": study.status,
            "sponsor": study.sponsor, "title": study.title, "category": study.category, "purpose": study.purpose,
            "period_start_ms": study.period_start_ms, "period_end_ms": study.period_end_ms,
            "consent_version": study.consent_version}


def study_list(view: StateReader, kind: str | None = None, status: str | None = None) -> dict[str, Any]:
    """``{"studies": [...]}``: every study of the registry (of ``kind``, with ``status``), in id order."""
    return {"studies": [study_summary(s) for s in list_studies(view)
                        if (kind is None or s.kind == kind) and (status is None or s.status == status)]}


def study_view(view: StateReader, study_id: str, version: int | None = None) -> dict[str, Any]:
    """A study as it stands (or as it was at ``version``), its versions (oldest first) and the releases
    made for it. STUDY_UNKNOWN (also for a version it never had)."""
    study = get_study(view, study_id) if version is None else get_study_version(view, study_id, version)
    if study is None:
        raise LedgerError(f"no study {study_id}" + ("" if version is None else f" version {version}"),
                          Code.STUDY_UNKNOWN)
    releases = []
    for rid in releases_of_study(view, study_id):
        r = get_release(view, rid)
        if r is not None:
            releases.append(release_summary(r.to_json()))
    releases.sort(key=lambda r: (r["height"], r["id"]))
    versions = [{"version": v.version, "updated_height": v.updated_height, "updated_ms": v.updated_ms,
                 "consent_version": v.consent_version, "status": v.status} for v in study_versions(view, study_id)]
    return {"study": study.to_json(), "versions": versions, "releases": releases}


def release_summary(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "custodian", "recipient", "study_version", "status", "subjects", "records", "k_achieved",
            "suppressed", "height", "time_ms")
    return {k: doc[k] for k in keys}


def release_view(view: StateReader, release_id: str) -> dict[str, Any]:
    """A release's anchor: rules, roots, k, l, counts, status. RELEASE_UNKNOWN."""
    release = get_release(view, release_id)
    if release is None:
        raise LedgerError(f"no release {release_id}", Code.RELEASE_UNKNOWN)
    return release.to_json()


def query_view(view: StateReader, query_id: str) -> dict[str, Any]:
    """A query, its canonical spec and hash, and every custodian's anchored answer. QUERY_UNKNOWN."""
    query = get_query(view, query_id)
    if query is None:
        raise LedgerError(f"no query {query_id}", Code.QUERY_UNKNOWN)
    return {"query": query.to_json(), "answers": [a.to_json() for a in answers_to(view, query_id)]}


__all__ = ["query_view", "release_summary", "release_view", "study_list", "study_summary", "study_view"]
