"""The records contract's state layout: keys, typed records and accessors (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below)::

    records/anchor/<record>/<version:06d>  AnchorRecord        {record, version, prev, pseudonym, custodian, type,
                                                                commitment, author, height, time_ms, status}
    records/head/<record>                  HeadRecord          {pseudonym, custodian, type, version, created_ms,
                                                                time_ms, status, erased_ms?}
    records/patient/<pseudonym>/<record>   PatientIndexEntry   {custodian, type, version, time_ms, status}
    records/erasure/<record>               ErasureRecord       {by, by_kind, reason, height, time_ms}

``prev`` (the previous version; null for version 1) and ``author`` (null when not given) are always
present; ``erased_ms`` is absent until the record is erased. ``status`` is ``active`` or ``erased``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from careledger.contracts.base import Reader, get_record, scan_records
from careledger.core.state import Overlay

RecordId = Annotated[str, StringConstraints(pattern=r"^r-[0-9a-f]{32}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^pt-[0-9a-f]{32}$")]
ResourceType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}$")]
Version = Annotated[int, Field(ge=1, le=999_999)]

ACTIVE, ERASED = "active", "erased"


def anchor_key(record: str, version: int) -> str:
    return f"records/anchor/{record}/{version:06d}"


def head_key(record: str) -> str:
    return f"records/head/{record}"


def patient_index_prefix(pseudonym: str) -> str:
    return f"records/patient/{pseudonym}/"


def patient_index_key(pseudonym: str, record: str) -> str:
    return f"records/patient/{pseudonym}/{record}"


def erasure_key(record: str) -> str:
    return f"records/erasure/{record}"


# --- records --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """One anchored version of a record: who holds it, whose it is, and the salted commitment."""

    record: str
    version: int
    prev: int | None
    pseudonym: str
    custodian: str
    type: str
    commitment: str
    author: str | None
    height: int
    time_ms: int
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"author": self.author, "commitment": self.commitment, "custodian": self.custodian,
                "height": self.height, "prev": self.prev, "pseudonym": self.pseudonym, "record": self.record,
                "status": self.status, "time_ms": self.time_ms, "type": self.type, "version": self.version}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AnchorRecord:
        return cls(doc["record"], doc["version"], doc["prev"], doc["pseudonym"], doc["custodian"], doc["type"],
                   doc["commitment"], doc["author"], doc["height"], doc["time_ms"], doc["status"])


@dataclass(frozen=True, slots=True)
class HeadRecord:
    """A record's latest version summary: every check about a record reads this one entry."""

    pseudonym: str
    custodian: str
    type: str
    version: int
    created_ms: int
    time_ms: int
    status: str
    erased_ms: int | None = None

    @property
    def is_erased(self) -> bool:
        return self.status == ERASED

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"created_ms": self.created_ms, "custodian": self.custodian,
                               "pseudonym": self.pseudonym, "status": self.status, "time_ms": self.time_ms,
                               "type": self.type, "version": self.version}
        if self.erased_ms is not None:
            doc["erased_ms"] = self.erased_ms
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HeadRecord:
        return cls(doc["pseudonym"], doc["custodian"], doc["type"], doc["version"], doc["created_ms"],
                   doc["time_ms"], doc["status"], doc.get("erased_ms"))


@dataclass(frozen=True, slots=True)
class PatientIndexEntry:
    """A record in its patient's index: custodian, type, latest version and its time, status."""

    custodian: str
    type: str
    version: int
    time_ms: int
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"custodian": self.custodian, "status": self.status, "time_ms": self.time_ms, "type": self.type,
                "version": self.version}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PatientIndexEntry:
        return cls(doc["custodian"], doc["type"], doc["version"], doc["time_ms"], doc["status"])


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    """Who recorded a record's erasure (their key, and as patient, delegate or custodian), why and when."""

    by: str
    by_kind: str
    reason: str
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"by": self.by, "by_kind": self.by_kind, "height": self.height, "reason": self.reason,
                "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ErasureRecord:
        return cls(doc["by"], doc["by_kind"], doc["reason"], doc["height"], doc["time_ms"])


# --- accessors --------------------------------------------------------------------------------------------

def get_head(state: Reader, record: str) -> HeadRecord | None:
    """The record's latest version summary, or None."""
    return get_record(state, head_key(record), HeadRecord.from_json)


def put_head(state: Overlay, record: str, head: HeadRecord) -> None:
    state.put(head_key(record), head.to_json())


def get_anchor(state: Reader, record: str, version: int) -> AnchorRecord | None:
    return get_record(state, anchor_key(record, version), AnchorRecord.from_json)


def put_anchor(state: Overlay, anchor: AnchorRecord) -> None:
    state.put(anchor_key(anchor.record, anchor.version), anchor.to_json())


def get_index_entry(state: Reader, pseudonym: str, record: str) -> PatientIndexEntry | None:
    return get_record(state, patient_index_key(pseudonym, record), PatientIndexEntry.from_json)


def put_index_entry(state: Overlay, pseudonym: str, record: str, entry: PatientIndexEntry) -> None:
    state.put(patient_index_key(pseudonym, record), entry.to_json())


def patient_index(state: Reader, pseudonym: str) -> Iterator[tuple[str, PatientIndexEntry]]:
    """``(record id, entry)`` of every record of the patient, in record id order."""
    prefix = patient_index_prefix(pseudonym)
    for key, entry in scan_records(state, prefix, PatientIndexEntry.from_json):
        yield key[len(prefix):], entry


def get_erasure(state: Reader, record: str) -> ErasureRecord | None:
    return get_record(state, erasure_key(record), ErasureRecord.from_json)


def put_erasure(state: Overlay, record: str, erasure: ErasureRecord) -> None:
    state.put(erasure_key(record), erasure.to_json())
