"""Who may act on a record: the custodian's writers and stewards, the patient, the patient's delegates."""

from __future__ import annotations

from careledger.contracts.base import Reader, Signer
from careledger.contracts.consent.layout import is_active_delegate
from careledger.contracts.identity import is_org_signer, is_patient_key
from careledger.contracts.records.layout import HeadRecord

WRITER_ROLES = ("data_steward", "registrar", "physician", "nurse")
"""Member roles that may anchor the custodian's records (an admin always may)."""
CUSTODIAN_ROLES = ("data_steward",)
"""Member roles that may erase under the custodian's policy and sign audit entries (an admin always may)."""


def is_custodian_signer(signer: Signer, org: str, roles: tuple[str, ...] = CUSTODIAN_ROLES) -> bool:
    """Is ``signer`` an active admin of ``org``, or an active member of it with one of ``roles``?"""
    return is_org_signer(signer, org, roles)


def erasure_role(state: Reader, signer: Signer, head: HeadRecord, now_ms: int) -> str | None:
    """Who ``signer`` is for erasing the record: ``patient``, ``delegate``, ``custodian`` or None."""
    if is_patient_key(signer, head.pseudonym):
        return "patient"
    if signer.active and is_active_delegate(state, head.pseudonym, signer.key, now_ms):
        return "delegate"
    if is_custodian_signer(signer, head.custodian):
        return "custodian"
    return None
