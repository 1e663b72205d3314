"""Who may act: signer resolution, the member roles each kind of organisation may grant, and the checks
every contract uses (pure).

* a revoked member, or any key of a removed organisation, is inactive from the next transaction on
  (:func:`resolve_signer`);
* an organisation's admins enrol and re-role its members; roles a member may hold depend on the
  organisation's roles (:data:`MEMBER_ROLES_BY_ORG_ROLE`).
"""

from __future__ import annotations

from collections.abc import Iterable

from careledger.contracts.base import Reader, Signer, TxContext
from careledger.contracts.identity.layout import (
    KeyRecord,
    OrgRecord,
    compute_pseudonym,
    decode_key_record,
    get_org,
    get_patient,
    is_org_active,
    key_key,
    organisations,
    put_key_record,
    put_org,
)
from careledger.core.errors import Code, TxFailed
from careledger.core.genesis import OrganisationDecl
from careledger.core.state import Overlay

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

UNREGISTERED = "unregistered"


def resolve_signer(state: Reader, pub: str) -> Signer:
    """Who ``pub`` is now. An admin or member of a removed organisation is inactive."""
    raw = state.get_raw(key_key(pub))
    if raw is None:
        return Signer(key=pub, kind=UNREGISTERED, org=None, roles=(), active=False)
    rec = decode_key_record(raw)
    active = rec.status == "active"
    org = rec.org
    if active and org is not None:
        active = is_org_active(state, org)
    return Signer(key=pub, kind=rec.kind, org=org, roles=rec.roles, active=active)


def is_org_signer(signer: Signer, org: str, roles: tuple[str, ...]) -> bool:
    """Is ``signer`` an active admin of ``org``, or an active member of it holding one of ``roles``?"""
    if not signer.active or signer.org != org:
        return False
    return signer.kind == "admin" or (signer.kind == "member" and signer.has_role(*roles))


def is_patient_key(signer: Signer, pseudonym: str) -> bool:
    """Is ``signer`` the active patient whose pseudonym is ``pseudonym``?"""
    return signer.kind == "patient" and signer.active and compute_pseudonym(signer.key) == pseudonym


def require_org(state: Reader, org: str) -> OrgRecord:
    """The organisation's record; raises ORG_UNKNOWN (never admitted) or ORG_INACTIVE (removed)."""
    rec = get_org(state, org)
    if rec is None:
        raise TxFailed(f"organisation {org!r} is not a consortium member", Code.ORG_UNKNOWN)
    if not rec.is_active:
        raise TxFailed(f"organisation {org!r} is no longer active", Code.ORG_INACTIVE)
    return rec


def require_patient_active(state: Reader, pseudonym: str) -> None:
    """The pseudonym must be a registered, active patient's; raises PATIENT_UNKNOWN."""
    rec = get_patient(state, pseudonym)
    if rec is None:
        raise TxFailed(f"no registered patient {pseudonym}", Code.PATIENT_UNKNOWN)
    if not rec.is_active:
        raise TxFailed(f"patient {pseudonym} is not active", Code.PATIENT_UNKNOWN)


def require_admin_of(ctx: TxContext, org: str) -> None:
    """The signer must be an admin of ``org``; raises UNAUTHORISED."""
    if ctx.signer.kind != "admin" or ctx.signer.org != org:
        raise TxFailed(f"only an admin of {org!r} may do this", Code.UNAUTHORISED)


def require_member_role(ctx: TxContext, *roles: str) -> None:
    """The signer must be an active member (or admin) holding one of ``roles``; raises UNAUTHORISED."""
    if ctx.signer.kind not in ("member", "admin") or not ctx.signer.has_role(*roles):
        raise TxFailed(f"signer lacks the role ({' or '.join(roles)})", Code.UNAUTHORISED)


def require_patient(ctx: TxContext) -> str:
    """The signer's pseudonym, if the signer is a registered patient; raises UNAUTHORISED."""
    if ctx.signer.kind != "patient":
        raise TxFailed("only a registered patient may do this", Code.UNAUTHORISED)
    return compute_pseudonym(ctx.signer.key)


def allowed_member_roles(org_roles: Iterable[str]) -> frozenset[str]:
    allowed: set[str] = set()
    for r in org_roles:
        allowed |= MEMBER_ROLES_BY_ORG_ROLE.get(r, frozenset())
    return frozenset(allowed)


def check_member_roles(state: Reader, org: str, roles: list[str]) -> None:
    """``roles`` must be distinct and each available to the (active) organisation's kind.

    Raises ORG_UNKNOWN, ORG_INACTIVE or ROLE_NOT_ALLOWED.
    """
    rec = require_org(state, org)
    allowed = allowed_member_roles(rec.roles)
    if len(set(roles)) != len(roles):
        raise TxFailed("roles repeat", Code.ROLE_NOT_ALLOWED)
    for role in roles:
        if role not in allowed:
            raise TxFailed(f"role {role!r} is not available to a {'/'.join(rec.roles)} organisation",
                           Code.ROLE_NOT_ALLOWED)


def write_organisation(state: Overlay, decl: OrganisationDecl, since: int) -> None:
    """Create an organisation and its admin keys (genesis and governance both use this)."""
    put_org(state, OrgRecord.declared(decl, since))
    for admin in decl.admins:
        put_key_record(state, admin, KeyRecord(kind="admin", roles=("admin",), status="active", since=since,
                                               org=decl.id))


def overlapping_prefix(prefixes: Iterable[str], others: Iterable[str]) -> tuple[str, str] | None:
    """A pair (one of ``prefixes``, one of ``others``) of GS1 Company Prefixes where one starts with the other,
    or None. Overlapping prefixes would let two organisations claim the same GTINs and GLNs."""
    mine = sorted(set(prefixes))
    theirs = sorted(set(others))
    for a in mine:
        for b in theirs:
            if a.startswith(b) or b.startswith(a):
                return a, b
    return None


def check_prefixes_free(state: Reader, org: str, prefixes: list[str]) -> None:
    """Refuse GS1 Company Prefixes that repeat or overlap each other, or overlap a prefix another
    organisation (active or removed: its GTINs stay on the ledger) holds. Raises PREFIX_OVERLAP."""
    for i, a in enumerate(prefixes):
        for b in prefixes[i + 1:]:
            if a.startswith(b) or b.startswith(a):
                raise TxFailed(f"GS1 Company Prefixes {a} and {b} overlap", Code.PREFIX_OVERLAP)
    for rec in organisations(state):
        if rec.id == org:
            continue
        pair = overlapping_prefix(prefixes, rec.gs1_company_prefixes)
        if pair is not None:
            raise TxFailed(f"GS1 Company Prefix {pair[0]} overlaps {pair[1]} of {rec.id!r}", Code.PREFIX_OVERLAP)
