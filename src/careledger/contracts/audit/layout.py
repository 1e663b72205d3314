"""The audit contract's state layout: the patient's access log (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below)::

    audit/patient/<pseudonym>/<height:012d>-<index:05d>-<n:04d>
        AuditRecord  {custodian, requester, requester_org, record, purpose, outcome, code, mode, consent,
                      emergency, request, request_ms, height, time_ms}

Keys sort by block, then transaction, then entry: the patient's access log in commit order. Every
field is always present (``requester_org``, ``record`` and ``consent`` may be null).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from careledger.contracts.base import Reader, get_record, scan_records
from careledger.core.state import Overlay


def audit_prefix(pseudonym: str) -> str:
    return f"audit/patient/{pseudonym}/"


def audit_key(pseudonym: str, height: int, index: int, n: int) -> str:
    """The key of the ``n``-th entry of the ``index``-th transaction of block ``height``."""
    return f"audit/patient/{pseudonym}/{height:012d}-{index:05d}-{n:04d}"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access attempt on a patient's data, as the custodian's gateway recorded it."""

    custodian: str
    requester: str
    requester_org: str | None
    record: str | None
    purpose: str
    outcome: str  # "granted" | "denied"
    code: int
    mode: str  # "patient" | "delegate" | "custodian" | "consent" | "emergency" | "none"
    consent: str | None
    emergency: bool
    request: str  # hash of the signed request
    request_ms: int
    height: int
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "consent": self.consent, "custodian": self.custodian, "emergency": self.emergency,
                "height": self.height, "mode": self.mode, "outcome": self.outcome, "purpose": self.purpose,
                "record": self.record, "request": self.request, "request_ms": self.request_ms,
                "requester": self.requester, "requester_org": self.requester_org, "time_ms": self.time_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditRecord:
        return cls(doc["custodian"], doc["requester"], doc["requester_org"], doc["record"], doc["purpose"],
                   doc["outcome"], doc["code"], doc["mode"], doc["consent"], doc["emergency"], doc["request"],
                   doc["request_ms"], doc["height"], doc["time_ms"])


def put_audit(state: Overlay, pseudonym: str, index: int, n: int, record: AuditRecord) -> None:
    state.put(audit_key(pseudonym, record.height, index, n), record.to_json())


def get_audit_entry(state: Reader, pseudonym: str, entry_id: str) -> AuditRecord | None:
    """One entry of the patient's access log by its id (``<height:012d>-<index:05d>-<n:04d>``)."""
    return get_record(state, audit_prefix(pseudonym) + entry_id, AuditRecord.from_json)


def audit_log(state: Reader, pseudonym: str) -> Iterator[tuple[str, AuditRecord]]:
    """``(entry id, record)`` of the patient's access log in commit order (the id is the key's last part)."""
    prefix = audit_prefix(pseudonym)
    for key, rec in scan_records(state, prefix, AuditRecord.from_json):
        yield key[len(prefix):], rec
