"""Identity contract: organisations, their admins and members, and pseudonymous patients.

:mod:`.layout` holds the state keys, typed records and accessors; :mod:`.rules` who may act (signer
resolution, roles); :mod:`.handlers` the transactions. Other contracts and layers use the names
re-exported here.
"""

from __future__ import annotations

from careledger.contracts.identity.handlers import (
    HANDLERS,
    EnrolMember,
    RegisterPatient,
    RevokeMember,
    SetMemberRoles,
    SetOrgApi,
)
from careledger.contracts.identity.layout import (
    KeyRecord,
    MemberEntry,
    OrgRecord,
    PatientRecord,
    active_org_ids,
    compute_pseudonym,
    decode_key_record,
    get_key_record,
    get_member_entry,
    get_org,
    get_patient,
    is_org_active,
    key_key,
    member_index_key,
    member_index_prefix,
    members_of,
    org_key,
    org_prefix,
    organisations,
    patient_key,
    put_org,
)
from careledger.contracts.identity.rules import (
    MEMBER_ROLES,
    MEMBER_ROLES_BY_ORG_ROLE,
    allowed_member_roles,
    require_admin_of,
    require_member_role,
    require_org,
    require_patient,
    resolve_signer,
    write_organisation,
)

__all__ = [
    "HANDLERS",
    "MEMBER_ROLES",
    "MEMBER_ROLES_BY_ORG_ROLE",
    "EnrolMember",
    "KeyRecord",
    "MemberEntry",
    "OrgRecord",
    "PatientRecord",
    "RegisterPatient",
    "RevokeMember",
    "SetMemberRoles",
    "SetOrgApi",
    "active_org_ids",
    "allowed_member_roles",
    "compute_pseudonym",
    "decode_key_record",
    "get_key_record",
    "get_member_entry",
    "get_org",
    "get_patient",
    "is_org_active",
    "key_key",
    "member_index_key",
    "member_index_prefix",
    "members_of",
    "org_key",
    "org_prefix",
    "organisations",
    "patient_key",
    "put_org",
    "require_admin_of",
    "require_member_role",
    "require_org",
    "require_patient",
    "resolve_signer",
    "write_organisation",
]
