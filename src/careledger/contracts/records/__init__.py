"""Records contract: ledger anchors of health records held in custodians' vaults, and their erasure.

The clinical content never reaches the ledger. A custodian's vault stores each FHIR resource
encrypted and anchors each version here with a salted commitment computed off-ledger::

    commitment = SHA-256(salt ‖ canonical resource bytes)          (salt: 32 random bytes, vault-only)

:mod:`.layout` holds the state keys, typed records and accessors; :mod:`.rules` who may act on a
record; :mod:`.handlers` the transactions. Other contracts and layers use the names re-exported here.
"""

from __future__ import annotations

from careledger.contracts.identity import require_patient_active
from careledger.contracts.records.handlers import (
    ERASURE_REASONS,
    HANDLERS,
    MAX_ANCHORS_PER_TX,
    Anchor,
    AnchorEntry,
    Erase,
)
from careledger.contracts.records.layout import (
    AnchorRecord,
    ErasureRecord,
    HeadRecord,
    PatientIndexEntry,
    Pseudonym,
    RecordId,
    ResourceType,
    Version,
    anchor_key,
    erasure_key,
    get_anchor,
    get_erasure,
    get_head,
    get_index_entry,
    head_key,
    patient_index,
    patient_index_key,
    patient_index_prefix,
)
from careledger.contracts.records.rules import CUSTODIAN_ROLES, WRITER_ROLES, erasure_role, is_custodian_signer

__all__ = [
    "CUSTODIAN_ROLES",
    "ERASURE_REASONS",
    "HANDLERS",
    "MAX_ANCHORS_PER_TX",
    "WRITER_ROLES",
    "Anchor",
    "AnchorEntry",
    "AnchorRecord",
    "Erase",
    "ErasureRecord",
    "HeadRecord",
    "PatientIndexEntry",
    "Pseudonym",
    "RecordId",
    "ResourceType",
    "Version",
    "anchor_key",
    "erasure_key",
    "erasure_role",
    "get_anchor",
    "get_erasure",
    "get_head",
    "get_index_entry",
    "head_key",
    "is_custodian_signer",
    "patient_index",
    "patient_index_key",
    "patient_index_prefix",
    "require_patient_active",
]
