"""Audit contract: every read of clinical data, granted or denied, as an entry the patient can see.

:mod:`.layout` holds the access log's keys, typed record and accessors; :mod:`.handlers` the
``audit.record`` transaction a custodian's gateway signs.
"""

from __future__ import annotations

from careledger.contracts.audit.handlers import HANDLERS, MAX_ENTRIES_PER_TX, AuditEntry, Record
from careledger.contracts.audit.layout import AuditRecord, audit_key, audit_log, audit_prefix, get_audit_entry

__all__ = ["HANDLERS", "MAX_ENTRIES_PER_TX", "AuditEntry", "AuditRecord", "Record", "audit_key", "audit_log",
           "audit_prefix", "get_audit_entry"]
