"""Custodian vaults and the access gateway: encrypted FHIR at rest, signed reads, consent, audit, erasure.

Modules: :mod:`.canonical` (exact FHIR JSON and commitments), :mod:`.fhir` (validation with
OperationOutcome errors, FHIR Consent and AuditEvent exports), :mod:`.store` (the encrypted SQLite
vault and the organisation key), :mod:`.requests` (signed read requests: freshness and replay),
:mod:`.gateway` (the custodian's gateway), :mod:`.queries` (patient-scoped ledger queries) and
:mod:`.client` (the Python client for all of it).
"""
