"""The identity contract's state layout: keys, typed records and accessors (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below)::

    identity/org/<org>              OrgRecord        {id, name, roles, admins, api, gs1_company_prefixes,
                                                      status, since, removed_at?}
    identity/key/<pubkey>           KeyRecord        {kind: admin|member|patient, org?, roles, status, since,
                                                      handle?, pseudonym?, revoked_at?}
    identity/member/<org>/<pubkey>  MemberEntry      {roles, status}   (index of an organisation's members)
    identity/patient/<pseudonym>    PatientRecord    {key, status, since}
    identity/tls/<org>              OrgTlsRecord     {fingerprints, since}   (TLS client certificates)

An organisation's ``roles``, ``admins`` and ``gs1_company_prefixes`` keep the order they were declared
in; a member's roles are stored sorted. Optional fields marked ``?`` are absent, not null, when unset.

A patient's pseudonym is ``pt-`` + hex of the first 16 bytes of SHA-256(public key bytes)
(:func:`compute_pseudonym`); the ledger keeps no demographics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from careledger.contracts.base import Reader, get_record, scan_records
from careledger.core.genesis import OrganisationDecl
from careledger.core.state import Overlay

ORG_PREFIX = "identity/org/"
KEY_PREFIX = "identity/key/"


def org_key(org: str) -> str:
    return f"{ORG_PREFIX}{org}"


def org_prefix() -> str:
    """The prefix under which every organisation's record lies."""
    return ORG_PREFIX


def key_key(pub: str) -> str:
    return f"{KEY_PREFIX}{pub}"


def member_index_prefix(org: str) -> str:
    return f"identity/member/{org}/"


def member_index_key(org: str, pub: str) -> str:
    return f"identity/member/{org}/{pub}"


def patient_key(pseudonym: str) -> str:
    return f"identity/patient/{pseudonym}"


def org_tls_key(org: str) -> str:
    return f"identity/tls/{org}"


def compute_pseudonym(public_key_hex: str) -> str:
    """The patient's pseudonym: ``pt-`` + hex of the first 16 bytes of SHA-256(public key bytes)."""
    return "pt-" + hashlib.sha256(bytes.fromhex(public_key_hex)).digest()[:16].hex()


# --- records --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OrgRecord:
    """A consortium organisation: its declaration (as in the genesis file) plus status and admission height."""

    id: str
    name: str
    roles: tuple[str, ...]
    admins: tuple[str, ...]
    api: str | None
    gs1_company_prefixes: tuple[str, ...]
    status: str  # "active" | "removed"
    since: int
    removed_at: int | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"admins": list(self.admins), "api": self.api,
                               "gs1_company_prefixes": list(self.gs1_company_prefixes), "id": self.id,
                               "name": self.name, "roles": list(self.roles), "since": self.since,
                               "status": self.status}
        if self.removed_at is not None:
            doc["removed_at"] = self.removed_at
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OrgRecord:
        return cls(doc["id"], doc["name"], tuple(doc["roles"]), tuple(doc["admins"]), doc["api"],
                   tuple(doc["gs1_company_prefixes"]), doc["status"], doc["since"], doc.get("removed_at"))

    @classmethod
    def declared(cls, decl: OrganisationDecl, since: int) -> OrgRecord:
        """A new, active organisation from its declaration (in the genesis file or a governance proposal)."""
        return cls(decl.id, decl.name, tuple(decl.roles), tuple(decl.admins), decl.api,
                   tuple(decl.gs1_company_prefixes), "active", since)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Who a public key is: an organisation's admin or member, or a registered patient."""

    kind: str  # "admin" | "member" | "patient"
    roles: tuple[str, ...]
    status: str  # "active" | "revoked"
    since: int
    org: str | None = None  # admins and members
    handle: str | None = None  # members, optional
    pseudonym: str | None = None  # patients
    revoked_at: int | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "roles": list(self.roles), "since": self.since,
                               "status": self.status}
        if self.org is not None:
            doc["org"] = self.org
        if self.handle is not None:
            doc["handle"] = self.handle
        if self.pseudonym is not None:
            doc["pseudonym"] = self.pseudonym
        if self.revoked_at is not None:
            doc["revoked_at"] = self.revoked_at
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KeyRecord:
        return cls(doc["kind"], tuple(doc["roles"]), doc["status"], doc["since"], doc.get("org"), doc.get("handle"),
                   doc.get("pseudonym"), doc.get("revoked_at"))


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """An organisation's index entry for one member key."""

    roles: tuple[str, ...]
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"roles": list(self.roles), "status": self.status}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MemberEntry:
        return cls(tuple(doc["roles"]), doc["status"])


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """A registered patient pseudonym: the key behind it, status and registration height."""

    key: str
    status: str
    since: int

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "since": self.since, "status": self.status}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PatientRecord:
        return cls(doc["key"], doc["status"], doc["since"])


@dataclass(frozen=True, slots=True)
class OrgTlsRecord:
    """The SHA-256 fingerprints (lower-case hex of each DER certificate's digest, sorted) of an
    organisation's TLS client certificates, and the height they were set at."""

    fingerprints: tuple[str, ...]
    since: int

    def to_json(self) -> dict[str, Any]:
        return {"fingerprints": sorted(self.fingerprints), "since": self.since}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OrgTlsRecord:
        return cls(tuple(doc["fingerprints"]), doc["since"])


# --- accessors --------------------------------------------------------------------------------------------
# Organisation and key records are read for every transaction's signer: decoded records are shared
# (they are immutable), memoised by their stored bytes.

@lru_cache(maxsize=16384)
def decode_key_record(raw: bytes) -> KeyRecord:
    """The key record stored as ``raw`` (memoised: the record is immutable and shared)."""
    return KeyRecord.from_json(orjson.loads(raw))


@lru_cache(maxsize=4096)
def decode_org_record(raw: bytes) -> OrgRecord:
    """The organisation record stored as ``raw`` (memoised: the record is immutable and shared)."""
    return OrgRecord.from_json(orjson.loads(raw))


def get_org(state: Reader, org: str) -> OrgRecord | None:
    raw = state.get_raw(org_key(org))
    return None if raw is None else decode_org_record(raw)


def put_org(state: Overlay, record: OrgRecord) -> None:
    state.put(org_key(record.id), record.to_json())


def organisations(state: Reader) -> Iterator[OrgRecord]:
    """Every organisation ever admitted, active or removed, ordered by id."""
    for _, raw in state.scan_raw(ORG_PREFIX):
        yield decode_org_record(raw)


def active_org_ids(state: Reader) -> list[str]:
    """The ids of the active organisations, in order."""
    return [o.id for o in organisations(state) if o.is_active]


def is_org_active(state: Reader, org: str) -> bool:
    rec = get_org(state, org)
    return rec is not None and rec.is_active


def get_key_record(state: Reader, pub: str) -> KeyRecord | None:
    raw = state.get_raw(key_key(pub))
    return None if raw is None else decode_key_record(raw)


def put_key_record(state: Overlay, pub: str, record: KeyRecord) -> None:
    state.put(key_key(pub), record.to_json())


def get_member_entry(state: Reader, org: str, pub: str) -> MemberEntry | None:
    return get_record(state, member_index_key(org, pub), MemberEntry.from_json)


def put_member_entry(state: Overlay, org: str, pub: str, entry: MemberEntry) -> None:
    state.put(member_index_key(org, pub), entry.to_json())


def members_of(state: Reader, org: str) -> Iterator[tuple[str, MemberEntry]]:
    """``(member key, entry)`` for every member the organisation ever enrolled, ordered by key."""
    prefix = member_index_prefix(org)
    for key, entry in scan_records(state, prefix, MemberEntry.from_json):
        yield key[len(prefix):], entry


def get_patient(state: Reader, pseudonym: str) -> PatientRecord | None:
    return get_record(state, patient_key(pseudonym), PatientRecord.from_json)


def put_patient(state: Overlay, pseudonym: str, record: PatientRecord) -> None:
    state.put(patient_key(pseudonym), record.to_json())


def get_org_tls(state: Reader, org: str) -> OrgTlsRecord | None:
    return get_record(state, org_tls_key(org), OrgTlsRecord.from_json)


def put_org_tls(state: Overlay, org: str, record: OrgTlsRecord | None) -> None:
    """Store the organisation's TLS record; None (no certificates) deletes it."""
    if record is None or not record.fingerprints:
        state.delete(org_tls_key(org))
    else:
        state.put(org_tls_key(org), record.to_json())


def org_tls_fingerprints(state: Reader, org: str) -> list[str]:
    """The fingerprints the organisation registered for its TLS client certificates (sorted; empty if none)."""
    record = get_org_tls(state, org)
    return [] if record is None else sorted(record.fingerprints)

