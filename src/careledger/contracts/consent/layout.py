"""The consent contract's state layout: keys, typed records and accessors (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below). Everything about
one patient lives under that patient's prefix, so a consent check reads one patient's consents and
nothing else::

    consent/patient/<pseudonym>/<consent id>     ConsentRecord     {id, patient, grantee: {kind, id}, provision,
                                                                    purposes, resource_types, records, period,
                                                                    data_period, status, granted_by,
                                                                    granted_by_kind, granted_height, granted_ms,
                                                                    revoked_by?, revoked_height?, revoked_ms?}
    consent/id/<consent id>                      ConsentPointer    {patient}     (lookup for revocation)
    consent/delegate/<pseudonym>/<key>           DelegateRecord    {status, since, until_ms, removed?}
    consent/breakglass/<pseudonym>/<requester>   BreakGlassSession {org, reason, opened_ms, expires_ms, height}
    consent/breakglass-log/<pseudonym>/<height:012d>-<index:05d>
                                                 BreakGlassLogEntry  the session plus ``requester`` (history)

A consent's ``purposes``, ``resource_types`` and ``records`` are stored sorted and without repeats;
``period`` and ``data_period`` are ``{start_ms, end_ms}`` (either may be null: open-ended; ``end_ms``
is exclusive) or null. Optional fields marked ``?`` are absent, not null, when unset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from careledger.contracts.base import Reader, get_record, scan_records
from careledger.core.state import Overlay

# --- keys -----------------------------------------------------------------------------------------------


def consent_prefix(pseudonym: str) -> str:
    return f"consent/patient/{pseudonym}/"


def consent_key(pseudonym: str, consent_id: str) -> str:
    return f"consent/patient/{pseudonym}/{consent_id}"


def consent_id_key(consent_id: str) -> str:
    return f"consent/id/{consent_id}"


def delegate_prefix(pseudonym: str) -> str:
    return f"consent/delegate/{pseudonym}/"


def delegate_key(pseudonym: str, key: str) -> str:
    return f"consent/delegate/{pseudonym}/{key}"


def breakglass_key(pseudonym: str, requester: str) -> str:
    return f"consent/breakglass/{pseudonym}/{requester}"


def breakglass_log_prefix(pseudonym: str) -> str:
    return f"consent/breakglass-log/{pseudonym}/"


def breakglass_log_key(pseudonym: str, height: int, index: int) -> str:
    return f"consent/breakglass-log/{pseudonym}/{height:012d}-{index:05d}"


# --- records --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConsentPeriod:
    """A time window in UTC milliseconds; either end may be open (None); ``end_ms`` is exclusive."""

    start_ms: int | None = None
    end_ms: int | None = None

    def contains(self, t: int) -> bool:
        return (self.start_ms is None or t >= self.start_ms) and (self.end_ms is None or t < self.end_ms)

    def to_json(self) -> dict[str, Any]:
        return {"end_ms": self.end_ms, "start_ms": self.start_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ConsentPeriod:
        return cls(doc.get("start_ms"), doc.get("end_ms"))


def _period_json(period: ConsentPeriod | None) -> dict[str, Any] | None:
    return None if period is None else period.to_json()


def _period(doc: dict[str, Any] | None) -> ConsentPeriod | None:
    return None if doc is None else ConsentPeriod.from_json(doc)


@dataclass(frozen=True, slots=True)
class ConsentGrantee:
    """Whom a consent names: an organisation, a member key or a research study."""

    kind: str  # "org" | "member" | "study"
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ConsentGrantee:
        return cls(doc["kind"], doc["id"])


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One consent (FHIR Consent in spirit): a permit or deny provision for one grantee."""

    id: str
    patient: str
    grantee: ConsentGrantee
    provision: str  # "permit" | "deny"
    purposes: tuple[str, ...]
    resource_types: tuple[str, ...]  # empty: every type
    records: tuple[str, ...]  # empty: every record
    period: ConsentPeriod | None  # when access is allowed (None: always)
    data_period: ConsentPeriod | None  # which records, by creation time (None: all)
    status: str  # "active" | "revoked"
    granted_by: str
    granted_by_kind: str  # "patient" | "delegate"
    granted_height: int
    granted_ms: int
    revoked_by: str | None = None
    revoked_height: int | None = None
    revoked_ms: int | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "data_period": _period_json(self.data_period), "grantee": self.grantee.to_json(),
            "granted_by": self.granted_by, "granted_by_kind": self.granted_by_kind,
            "granted_height": self.granted_height, "granted_ms": self.granted_ms, "id": self.id,
            "patient": self.patient, "period": _period_json(self.period), "provision": self.provision,
            "purposes": list(self.purposes), "records": list(self.records),
            "resource_types": list(self.resource_types), "status": self.status,
        }
        if self.revoked_by is not None:
            doc["revoked_by"] = self.revoked_by
        if self.revoked_height is not None:
            doc["revoked_height"] = self.revoked_height
        if self.revoked_ms is not None:
            doc["revoked_ms"] = self.revoked_ms
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ConsentRecord:
        return cls(doc["id"], doc["patient"], ConsentGrantee.from_json(doc["grantee"]), doc["provision"],
                   tuple(doc["purposes"]), tuple(doc["resource_types"]), tuple(doc["records"]),
                   _period(doc["period"]), _period(doc["data_period"]), doc["status"], doc["granted_by"],
                   doc["granted_by_kind"], doc["granted_height"], doc["granted_ms"], doc.get("revoked_by"),
                   doc.get("revoked_height"), doc.get("revoked_ms"))


@dataclass(frozen=True, slots=True)
class ConsentPointer:
    """Which patient a consent id belongs to (so a revocation finds the consent)."""

    patient: str

    def to_json(self) -> dict[str, Any]:
        return {"patient": self.patient}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ConsentPointer:
        return cls(doc["patient"])


@dataclass(frozen=True, slots=True)
class DelegateRecord:
    """A delegate the patient appointed (a guardian, say): active until ``until_ms`` (None: no end)."""

    status: str  # "active" | "removed"
    since: int
    until_ms: int | None
    removed: int | None = None  # the height of the removal

    def is_active_at(self, now_ms: int) -> bool:
        return self.status == "active" and (self.until_ms is None or now_ms < self.until_ms)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"since": self.since, "status": self.status, "until_ms": self.until_ms}
        if self.removed is not None:
            doc["removed"] = self.removed
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DelegateRecord:
        return cls(doc["status"], doc["since"], doc.get("until_ms"), doc.get("removed"))


@dataclass(frozen=True, slots=True)
class BreakGlassSession:
    """An emergency member's open (or expired) break-glass session for one patient."""

    org: str | None
    reason: str
    opened_ms: int
    expires_ms: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return {"expires_ms": self.expires_ms, "height": self.height, "org": self.org, "opened_ms": self.opened_ms,
                "reason": self.reason}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BreakGlassSession:
        return cls(doc["org"], doc["reason"], doc["opened_ms"], doc["expires_ms"], doc["height"])


@dataclass(frozen=True, slots=True)
class BreakGlassLogEntry:
    """A break-glass session as kept in the patient's history, with who opened it."""

    session: BreakGlassSession
    requester: str

    def to_json(self) -> dict[str, Any]:
        return {**self.session.to_json(), "requester": self.requester}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BreakGlassLogEntry:
        return cls(BreakGlassSession.from_json(doc), doc["requester"])


# --- accessors --------------------------------------------------------------------------------------------
# A consent check scans the patient's consents: decoded consents are immutable, so they are shared,
# memoised by their stored bytes.

@lru_cache(maxsize=8192)
def decode_consent(raw: bytes) -> ConsentRecord:
    """The consent stored as ``raw`` (memoised: the record is immutable and shared)."""
    return ConsentRecord.from_json(orjson.loads(raw))


def get_consent(state: Reader, pseudonym: str, consent_id: str) -> ConsentRecord | None:
    raw = state.get_raw(consent_key(pseudonym, consent_id))
    return None if raw is None else decode_consent(raw)


def put_consent(state: Overlay, record: ConsentRecord) -> None:
    state.put(consent_key(record.patient, record.id), record.to_json())


def consents_of(state: Reader, pseudonym: str) -> Iterator[ConsentRecord]:
    """The patient's consents, active and revoked, in key (consent id) order."""
    for _, raw in state.scan_raw(consent_prefix(pseudonym)):
        yield decode_consent(raw)


def get_consent_pointer(state: Reader, consent_id: str) -> ConsentPointer | None:
    return get_record(state, consent_id_key(consent_id), ConsentPointer.from_json)


def put_consent_pointer(state: Overlay, consent_id: str, pointer: ConsentPointer) -> None:
    state.put(consent_id_key(consent_id), pointer.to_json())


def get_delegate(state: Reader, pseudonym: str, key: str) -> DelegateRecord | None:
    return get_record(state, delegate_key(pseudonym, key), DelegateRecord.from_json)


def put_delegate(state: Overlay, pseudonym: str, key: str, record: DelegateRecord) -> None:
    state.put(delegate_key(pseudonym, key), record.to_json())


def delegates_of(state: Reader, pseudonym: str) -> Iterator[tuple[str, DelegateRecord]]:
    """``(delegate key, record)`` of everyone the patient ever appointed, ordered by key."""
    prefix = delegate_prefix(pseudonym)
    for key, rec in scan_records(state, prefix, DelegateRecord.from_json):
        yield key[len(prefix):], rec


def is_active_delegate(state: Reader, pseudonym: str, key: str, now_ms: int) -> bool:
    """Has the patient appointed ``key`` as a delegate that is active at ``now_ms``?"""
    rec = get_delegate(state, pseudonym, key)
    return rec is not None and rec.is_active_at(now_ms)


def get_break_glass(state: Reader, pseudonym: str, requester: str) -> BreakGlassSession | None:
    return get_record(state, breakglass_key(pseudonym, requester), BreakGlassSession.from_json)


def put_break_glass(state: Overlay, pseudonym: str, requester: str, session: BreakGlassSession, height: int,
                    index: int) -> None:
    """Open (or replace) the requester's session and append it to the patient's break-glass history."""
    state.put(breakglass_key(pseudonym, requester), session.to_json())
    state.put(breakglass_log_key(pseudonym, height, index), BreakGlassLogEntry(session, requester).to_json())


def break_glass_log(state: Reader, pseudonym: str) -> Iterator[tuple[str, BreakGlassLogEntry]]:
    """``(entry id, entry)`` of the patient's break-glass history, in commit order."""
    prefix = breakglass_log_prefix(pseudonym)
    for key, rec in scan_records(state, prefix, BreakGlassLogEntry.from_json):
        yield key[len(prefix):], rec
