"""The identity contract's transactions: enrol, re-role and revoke members; register patients; set an
organisation's API endpoint and register its TLS client certificates.

Rules:
* an organisation's admins enrol, re-role and revoke its members (roles: see
  :mod:`careledger.contracts.identity.rules`); a key is registered once;
* a revoked member is refused from the next transaction on;
* a patient registers a key of their own; the ledger keeps only the key and its pseudonym;
* an organisation's admins register the SHA-256 fingerprints of its TLS client certificates (at most
  :data:`MAX_TLS_FINGERPRINTS`, so a new one can be added before the old one is retired); custodians'
  gateways may require them of the organisation's members (mutual TLS, ``careledger.api.client_tls``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Protocol, TypedDict

from pydantic import Field, field_validator

from careledger.contracts.base import Handler, Payload, TxContext
from careledger.contracts.identity.layout import (
    KeyRecord,
    MemberEntry,
    OrgTlsRecord,
    PatientRecord,
    compute_pseudonym,
    get_key_record,
    key_key,
    org_key,
    org_tls_key,
    put_key_record,
    put_member_entry,
    put_org,
    put_org_tls,
    put_patient,
)
from careledger.contracts.identity.rules import UNREGISTERED, check_member_roles, require_admin_of, require_org
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay
from careledger.core.types import Handle, OrgId, PublicKeyHex, Reason, Url

MemberRoles = Annotated[list[Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]], Field(min_length=1, max_length=8)]


class _OrgScoped(Protocol):
    @property
    def org(self) -> str: ...


def _authorize_org_admin(state: Overlay, ctx: TxContext, p: _OrgScoped) -> None:
    require_admin_of(ctx, p.org)


def _require_member_of(state: Overlay, org: str, member: str) -> KeyRecord:
    rec = get_key_record(state, member)
    if rec is None or rec.kind != "member" or rec.org != org:
        raise TxFailed(f"{member[:12]}… is not a member of {org!r}", Code.MEMBER_UNKNOWN)
    return rec


def _refuse_registered(kind: str) -> TxFailed:
    return TxFailed("this key is already registered", Code.PATIENT_EXISTS if kind == "patient" else Code.KEY_IN_USE)


# --- identity.enrol_member ----------------------------------------------------------------------------

class EnrolMember(Payload):
    org: OrgId
    member: PublicKeyHex
    roles: MemberRoles
    handle: Handle | None = None


class EnrolResult(TypedDict):
    member: str
    org: str


def apply_enrol_member(state: Overlay, ctx: TxContext, p: EnrolMember) -> EnrolResult:
    """Enrol ``p.member`` with ``p.roles`` (stored sorted). Raises ORG_UNKNOWN, ORG_INACTIVE,
    ROLE_NOT_ALLOWED or KEY_IN_USE."""
    check_member_roles(state, p.org, p.roles)
    if state.has(key_key(p.member)):
        raise TxFailed("this key is already registered", Code.KEY_IN_USE)
    roles = tuple(sorted(p.roles))
    put_key_record(state, p.member, KeyRecord(kind="member", roles=roles, status="active", since=ctx.env.height,
                                              org=p.org, handle=p.handle))
    put_member_entry(state, p.org, p.member, MemberEntry(roles, "active"))
    ctx.emit("member_enrolled", org=p.org, member=p.member, roles=list(roles))
    return {"member": p.member, "org": p.org}


# --- identity.set_member_roles ------------------------------------------------------------------------

class SetMemberRoles(Payload):
    org: OrgId
    member: PublicKeyHex
    roles: MemberRoles


class SetRolesResult(TypedDict):
    member: str
    roles: list[str]


def apply_set_member_roles(state: Overlay, ctx: TxContext, p: SetMemberRoles) -> SetRolesResult:
    """Replace an active member's roles. Raises MEMBER_UNKNOWN, INVALID_STATE (revoked), ORG_UNKNOWN,
    ORG_INACTIVE or ROLE_NOT_ALLOWED."""
    rec = _require_member_of(state, p.org, p.member)
    if not rec.is_active:
        raise TxFailed("member is revoked", Code.INVALID_STATE)
    check_member_roles(state, p.org, p.roles)
    roles = tuple(sorted(p.roles))
    put_key_record(state, p.member, replace(rec, roles=roles))
    put_member_entry(state, p.org, p.member, MemberEntry(roles, "active"))
    ctx.emit("member_roles_changed", org=p.org, member=p.member, roles=list(roles))
    return {"member": p.member, "roles": list(roles)}


# --- identity.revoke_member ---------------------------------------------------------------------------

class RevokeMember(Payload):
    org: OrgId
    member: PublicKeyHex
    reason: Reason


class RevokeResult(TypedDict):
    member: str
    revoked_at: int


def apply_revoke_member(state: Overlay, ctx: TxContext, p: RevokeMember) -> RevokeResult:
    """Revoke a member from this block on. Raises MEMBER_UNKNOWN or INVALID_STATE (already revoked)."""
    rec = _require_member_of(state, p.org, p.member)
    if rec.status == "revoked":
        raise TxFailed("member is already revoked", Code.INVALID_STATE)
    put_key_record(state, p.member, replace(rec, status="revoked", revoked_at=ctx.env.height))
    put_member_entry(state, p.org, p.member, MemberEntry(rec.roles, "revoked"))
    ctx.emit("member_revoked", org=p.org, member=p.member)
    return {"member": p.member, "revoked_at": ctx.env.height}


# --- identity.register_patient ------------------------------------------------------------------------

class RegisterPatient(Payload):
    pass


class RegisterPatientResult(TypedDict):
    pseudonym: str


def _authorize_unregistered(state: Overlay, ctx: TxContext, p: object) -> None:
    if ctx.signer.kind != UNREGISTERED:
        raise _refuse_registered(ctx.signer.kind)


def apply_register_patient(state: Overlay, ctx: TxContext, p: RegisterPatient) -> RegisterPatientResult:
    """Register the signer's key as a patient. Raises PATIENT_EXISTS or KEY_IN_USE."""
    key = ctx.signer.key
    if ctx.signer.kind != UNREGISTERED:
        raise _refuse_registered(ctx.signer.kind)
    pseudonym = compute_pseudonym(key)
    put_key_record(state, key, KeyRecord(kind="patient", roles=(), status="active", since=ctx.env.height,
                                         pseudonym=pseudonym))
    put_patient(state, pseudonym, PatientRecord(key, "active", ctx.env.height))
    ctx.emit("patient_registered", pseudonym=pseudonym)
    return {"pseudonym": pseudonym}


# --- identity.set_org_api -----------------------------------------------------------------------------

class SetOrgApi(Payload):
    org: OrgId
    api: Url | None


class SetOrgApiResult(TypedDict):
    org: str
    api: str | None


def apply_set_org_api(state: Overlay, ctx: TxContext, p: SetOrgApi) -> SetOrgApiResult:
    """Set (or clear) the organisation's API endpoint. Raises ORG_UNKNOWN or ORG_INACTIVE."""
    rec = require_org(state, p.org)
    put_org(state, replace(rec, api=p.api))
    ctx.emit("org_api_changed", org=p.org)
    return {"org": p.org, "api": p.api}


# --- identity.set_org_tls -----------------------------------------------------------------------------

MAX_TLS_FINGERPRINTS = 4
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SetOrgTls(Payload):
    """The fingerprints are SHA-256 of each certificate's DER encoding, lower-case hex, without repeats;
    an empty list clears them."""

    org: OrgId
    fingerprints: Annotated[list[Fingerprint], Field(max_length=MAX_TLS_FINGERPRINTS)]

    @field_validator("fingerprints")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("fingerprints repeat")
        return value


class SetOrgTlsResult(TypedDict):
    org: str
    fingerprints: list[str]


def apply_set_org_tls(state: Overlay, ctx: TxContext, p: SetOrgTls) -> SetOrgTlsResult:
    """Replace the organisation's registered TLS client certificate fingerprints (stored sorted; an empty
    list deletes the entry). Raises ORG_UNKNOWN or ORG_INACTIVE."""
    require_org(state, p.org)
    fingerprints = sorted(p.fingerprints)
    put_org_tls(state, p.org, OrgTlsRecord(tuple(fingerprints), ctx.env.height) if fingerprints else None)
    ctx.emit("org_tls_changed", org=p.org, count=len(fingerprints))
    return {"org": p.org, "fingerprints": fingerprints}


HANDLERS: list[Handler[Any]] = [
    Handler("identity.enrol_member", 1, EnrolMember, apply_enrol_member, _authorize_org_admin,
            summary="An organisation admin enrols a member key with roles.",
            read_hints=lambda p: [key_key(p.member), org_key(p.org)]),
    Handler("identity.set_member_roles", 1, SetMemberRoles, apply_set_member_roles, _authorize_org_admin,
            summary="An organisation admin changes a member's roles.", read_hints=lambda p: [key_key(p.member)]),
    Handler("identity.revoke_member", 1, RevokeMember, apply_revoke_member, _authorize_org_admin,
            summary="An organisation admin revokes a member; their transactions fail from the next block.",
            read_hints=lambda p: [key_key(p.member)]),
    Handler("identity.register_patient", 1, RegisterPatient, apply_register_patient, _authorize_unregistered,
            open_to_unregistered=True, summary="A patient registers a pseudonymous key."),
    Handler("identity.set_org_api", 1, SetOrgApi, apply_set_org_api, _authorize_org_admin,
            summary="An organisation admin sets the organisation's API endpoint."),
    Handler("identity.set_org_tls", 1, SetOrgTls, apply_set_org_tls, _authorize_org_admin,
            summary="An organisation admin registers the fingerprints of its TLS client certificates.",
            read_hints=lambda p: [org_key(p.org), org_tls_key(p.org)]),
]
