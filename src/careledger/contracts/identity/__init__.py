"""Identity contract: organisations, their admins and members, and pseudonymous patients.

State (keys are ``identity/...``)::

    identity/org/<org>              {id, name, roles, admins, api, gs1_company_prefixes, status, since}
    identity/key/<pubkey>           {kind: admin|member|patient, org, roles, status, since, handle?, pseudonym?}
    identity/member/<org>/<pubkey>  {roles, status}   (index of an organisation's members)
    identity/patient/<pseudonym>    {key, status, since}

Rules:
* an organisation's admins enrol, re-role and revoke its members; roles a member may hold depend on
  the organisation's roles (:data:`MEMBER_ROLES_BY_ORG_ROLE`);
* a revoked member, or any key of a removed organisation, is refused from the next transaction on;
* a patient registers a key of their own; the ledger keeps only the key and a pseudonym derived
  from it (``pt-`` + first 16 bytes of SHA-256(key), hex); no demographics ever.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from pydantic import Field

from careledger.contracts.base import Handler, Payload, Signer, TxContext
from careledger.core.codec import decode_shared
from careledger.core.errors import Code, TxFailed
from careledger.core.state import Overlay, StateReader
from careledger.core.types import Handle, OrgId, PublicKeyHex, Reason, Url

MEMBER_ROLES = (
    "physician", "nurse", "pharmacist", "pharmacy_technician", "registrar", "emergency", "claims_officer",
    "researcher", "trial_coordinator", "data_steward", "auditor", "supply_operator", "quality_officer",
    "inspector",
)
MEMBER_ROLES_BY_ORG_ROLE: dict[str, frozenset[str]] = {
    "hospital": frozenset({"physician", "nurse", "pharmacist", "pharmacy_technician", "registrar", "emergency",
                           "claims_officer", "researcher", "trial_coordinator", "data_steward", "auditor",
                           "supply_operator"}),
    "clinic": frozenset({"physician", "nurse", "registrar", "emergency", "claims_officer", "data_steward",
                         "auditor", "trial_coordinator"}),
    "pharmacy": frozenset({"pharmacist", "pharmacy_technician", "supply_operator", "auditor", "claims_officer"}),
    "manufacturer": frozenset({"supply_operator", "quality_officer", "auditor"}),
    "distributor": frozenset({"supply_operator", "quality_officer", "auditor"}),
    "insurer": frozenset({"claims_officer", "auditor", "data_steward"}),
    "research": frozenset({"researcher", "trial_coordinator", "data_steward", "auditor"}),
    "regulator": frozenset({"inspector", "auditor"}),
}

MemberRoles = Annotated[list[Annotated[str, Field(pattern=r"^[a-z_]{2,40}$")]], Field(min_length=1, max_length=8)]


def org_key(org: str) -> str:
    return f"identity/org/{org}"


def key_key(pub: str) -> str:
    return f"identity/key/{pub}"


def member_index_key(org: str, pub: str) -> str:
    return f"identity/member/{org}/{pub}"


def patient_key(pseudonym: str) -> str:
    return f"identity/patient/{pseudonym}"


def compute_pseudonym(public_key_hex: str) -> str:
    """The patient's pseudonym: ``pt-`` + hex of the first 16 bytes of SHA-256(public key bytes)."""
    return "pt-" + hashlib.sha256(bytes.fromhex(public_key_hex)).digest()[:16].hex()


# --- accessors used by every contract -----------------------------------------------------------

def get_org(state: StateReader | Overlay, org: str) -> dict[str, Any] | None:
    """The organisation's record (shared: callers copy before changing it)."""
    raw = state.get_raw(org_key(org))
    return None if raw is None else decode_shared(raw)


def is_org_active(state: StateReader | Overlay, org: str) -> bool:
    rec = get_org(state, org)
    return rec is not None and rec["status"] == "active"


def require_org(state: Overlay, org: str) -> dict[str, Any]:
    rec = get_org(state, org)
    if rec is None:
        raise TxFailed(f"organisation {org!r} is not a consortium member", Code.ORG_UNKNOWN)
    if rec["status"] != "active":
        raise TxFailed(f"organisation {org!r} is no longer active", Code.ORG_INACTIVE)
    return rec


def resolve_signer(state: StateReader | Overlay, pub: str) -> Signer:
    """Who ``pub`` is now. An admin or member of a removed organisation is inactive."""
    raw = state.get_raw(key_key(pub))
    if raw is None:
        return Signer(key=pub, kind="unregistered", org=None, roles=(), active=False)
    rec = decode_shared(raw)
    active = rec["status"] == "active"
    org = rec.get("org")
    if active and org is not None:
        active = is_org_active(state, org)
    return Signer(key=pub, kind=rec["kind"], org=org, roles=tuple(rec.get("roles", ())), active=active)


def require_admin_of(ctx: TxContext, org: str) -> None:
    if ctx.signer.kind != "admin" or ctx.signer.org != org:
        raise TxFailed(f"only an admin of {org!r} may do this", Code.UNAUTHORISED)


def require_member_role(ctx: TxContext, *roles: str) -> None:
    """The signer must be an active member (or admin) holding one of ``roles``."""
    if ctx.signer.kind not in ("member", "admin") or not ctx.signer.has_role(*roles):
        raise TxFailed(f"signer lacks the role ({' or '.join(roles)})", Code.UNAUTHORISED)


def require_patient(ctx: TxContext) -> str:
    if ctx.signer.kind != "patient":
        raise TxFailed("only a registered patient may do this", Code.UNAUTHORISED)
    return compute_pseudonym(ctx.signer.key)


def allowed_member_roles(org_roles: list[str]) -> frozenset[str]:
    allowed: set[str] = set()
    for r in org_roles:
        allowed |= MEMBER_ROLES_BY_ORG_ROLE.get(r, frozenset())
    return frozenset(allowed)


def _check_roles(state: Overlay, org: str, roles: list[str]) -> None:
    rec = require_org(state, org)
    allowed = allowed_member_roles(rec["roles"])
    if len(set(roles)) != len(roles):
        raise TxFailed("roles repeat", Code.ROLE_NOT_ALLOWED)
    for role in roles:
        if role not in allowed:
            raise TxFailed(f"role {role!r} is not available to a {'/'.join(rec['roles'])} organisation",
                           Code.ROLE_NOT_ALLOWED)


def write_organisation(state: Overlay, decl: dict[str, Any], since: int) -> None:
    """Create an organisation and its admin keys (genesis and governance both use this)."""
    state.put(org_key(decl["id"]), {**decl, "status": "active", "since": since})
    for admin in decl["admins"]:
        state.put(key_key(admin), {"kind": "admin", "org": decl["id"], "roles": ["admin"], "since": since,
                                   "status": "active"})


# --- transactions ---------------------------------------------------------------------------------

class EnrolMember(Payload):
    org: OrgId
    member: PublicKeyHex
    roles: MemberRoles
    handle: Handle | None = None


def _authorize_org_admin(state: Overlay, ctx: TxContext, p: Any) -> None:
    require_admin_of(ctx, p.org)


def apply_enrol_member(state: Overlay, ctx: TxContext, p: EnrolMember) -> Any:
    _check_roles(state, p.org, p.roles)
    if state.has(key_key(p.member)):
        raise TxFailed("this key is already registered", Code.KEY_IN_USE)
    record: dict[str, Any] = {"kind": "member", "org": p.org, "roles": sorted(p.roles),
                              "since": ctx.env.height, "status": "active"}
    if p.handle is not None:
        record["handle"] = p.handle
    state.put(key_key(p.member), record)
    state.put(member_index_key(p.org, p.member), {"roles": sorted(p.roles), "status": "active"})
    ctx.emit("member_enrolled", org=p.org, member=p.member, roles=sorted(p.roles))
    return {"member": p.member, "org": p.org}


class SetMemberRoles(Payload):
    org: OrgId
    member: PublicKeyHex
    roles: MemberRoles


def _require_member_of(state: Overlay, org: str, member: str) -> dict[str, Any]:
    rec = state.get(key_key(member))
    if rec is None or rec["kind"] != "member" or rec["org"] != org:
        raise TxFailed(f"{member[:12]}… is not a member of {org!r}", Code.MEMBER_UNKNOWN)
    return rec  # type: ignore[no-any-return]


def apply_set_member_roles(state: Overlay, ctx: TxContext, p: SetMemberRoles) -> Any:
    rec = _require_member_of(state, p.org, p.member)
    if rec["status"] != "active":
        raise TxFailed("member is revoked", Code.INVALID_STATE)
    _check_roles(state, p.org, p.roles)
    state.put(key_key(p.member), {**rec, "roles": sorted(p.roles)})
    state.put(member_index_key(p.org, p.member), {"roles": sorted(p.roles), "status": "active"})
    ctx.emit("member_roles_changed", org=p.org, member=p.member, roles=sorted(p.roles))
    return {"member": p.member, "roles": sorted(p.roles)}


class RevokeMember(Payload):
    org: OrgId
    member: PublicKeyHex
    reason: Reason


def apply_revoke_member(state: Overlay, ctx: TxContext, p: RevokeMember) -> Any:
    rec = _require_member_of(state, p.org, p.member)
    if rec["status"] == "revoked":
        raise TxFailed("member is already revoked", Code.INVALID_STATE)
    state.put(key_key(p.member), {**rec, "status": "revoked", "revoked_at": ctx.env.height})
    state.put(member_index_key(p.org, p.member), {"roles": rec["roles"], "status": "revoked"})
    ctx.emit("member_revoked", org=p.org, member=p.member)
    return {"member": p.member, "revoked_at": ctx.env.height}


class RegisterPatient(Payload):
    pass


def apply_register_patient(state: Overlay, ctx: TxContext, p: RegisterPatient) -> Any:
    key = ctx.signer.key
    if ctx.signer.kind != "unregistered":
        raise TxFailed("this key is already registered", Code.PATIENT_EXISTS if ctx.signer.kind == "patient"
                       else Code.KEY_IN_USE)
    pseudonym = compute_pseudonym(key)
    state.put(key_key(key), {"kind": "patient", "pseudonym": pseudonym, "roles": [], "since": ctx.env.height,
                             "status": "active"})
    state.put(patient_key(pseudonym), {"key": key, "since": ctx.env.height, "status": "active"})
    ctx.emit("patient_registered", pseudonym=pseudonym)
    return {"pseudonym": pseudonym}


class SetOrgApi(Payload):
    org: OrgId
    api: Url | None


def apply_set_org_api(state: Overlay, ctx: TxContext, p: SetOrgApi) -> Any:
    rec = require_org(state, p.org)
    state.put(org_key(p.org), {**rec, "api": p.api})
    ctx.emit("org_api_changed", org=p.org)
    return {"org": p.org, "api": p.api}


def _authorize_unregistered(state: Overlay, ctx: TxContext, p: Any) -> None:
    if ctx.signer.kind != "unregistered":
        raise TxFailed("this key is already registered", Code.PATIENT_EXISTS if ctx.signer.kind == "patient"
                       else Code.KEY_IN_USE)


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
]

