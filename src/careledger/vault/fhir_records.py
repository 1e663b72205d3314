"""Clinical records through the FHIR facade: read and search the records this node's vaults hold.

``GET /fhir/<Type>/<record>`` reads a record (``r-`` + 32 hex digits) of that type, and
``GET /fhir/<Type>?patient=pt-…`` lists the patient's records of that type held by the custodians
whose vaults this node hosts and that the requester may read, then reads the page asked for. Each
read follows the gateway's read (:meth:`careledger.vault.gateway.Gateway.read`) step for step, with
the facade's authenticated requester in place of a signed read request:

1. the record must exist with that type (RECORD_UNKNOWN) at a custodian this node hosts
   (VAULT_NOT_HOSTED); neither refusal concerns a patient of this vault, and neither is audited;
2. :func:`careledger.contracts.consent.evaluate_access` decides over committed state, with the
   purpose of use, emergency flag and study the credentials carry, then the version is decrypted and
   checked against its ledger anchor (VAULT_INTEGRITY);
3. one ``audit.record`` transaction per custodian, signed by its gateway key, records every granted
   and denied outcome under the requester's key and organisation, the request hash
   (:attr:`careledger.vault.fhir_access.Access.request_hash`) and the patient who owns the record,
   and is committed (or admitted, per the node's ``audit_wait``) before any content is released.

A search lists only what the access rule passes (like the ``index`` query, the listing itself is not
audited: it carries no clinical content); each record of the page is then read as above. The
resource is the stored one, decimals exactly as stored, with ``id`` set to the record id and
``meta.versionId`` / ``meta.lastUpdated`` to the version and its anchor's block time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from careledger.contracts.consent import AccessDenied, evaluate_access
from careledger.contracts.records import AnchorRecord, HeadRecord, get_anchor, get_head
from careledger.core.codec import decode_trusted
from careledger.core.errors import Code, LedgerError
from careledger.vault.canonical import compute_commitment
from careledger.vault.fhir import operation_outcome
from careledger.vault.fhir_access import Access
from careledger.vault.fhir_ledger import SP, instant
from careledger.vault.fhir_search import PATIENT, Page, Query, SearchParam, search_patient
from careledger.vault.gateway import Gateway
from careledger.vault.queries import patient_records
from careledger.vault.store import VaultIntegrityError

RECORD_ID = re.compile(r"^r-[0-9a-f]{32}$")


@dataclass(frozen=True)
class Released:
    """A record version that passed the access rule and its anchor check, and was audited."""

    record: str
    head: HeadRecord
    anchor: AnchorRecord
    canonical: bytes

    def resource(self) -> dict[str, Any]:
        """The stored resource (decimals tagged, see :mod:`.canonical`) with its facade id and meta."""
        value = dict(decode_trusted(self.canonical))
        meta = dict(value.get("meta") or {})
        meta.update(versionId=str(self.head.version), lastUpdated=instant(self.anchor.time_ms))
        value.update(id=self.record, meta=meta)
        return value


@dataclass(frozen=True)
class Withheld:
    """A record the read refused, with the refusal."""

    record: str
    code: Code
    message: str


def read_records(gateway: Gateway, access: Access, items: Sequence[tuple[str, HeadRecord]]
                 ) -> tuple[list[Released], list[Withheld]]:
    """Read ``(record, head)`` pairs as the gateway reads them (module docstring, steps 2 and 3).

    Returns the released versions and the withheld ones, in the order given. Raises VAULT_NOT_HOSTED
    for a custodian this node does not host, and INTERNAL_ERROR when the audit entries cannot be
    written (then nothing is released).
    """
    by_custodian: dict[str, list[tuple[str, HeadRecord]]] = {}
    for record, head in items:
        by_custodian.setdefault(head.custodian, []).append((record, head))
    released: dict[str, Released] = {}
    withheld: dict[str, Withheld] = {}
    view, signer = access.view, access.signer
    base = {"emergency": access.emergency, "purpose": access.purpose, "request": access.request_hash,
            "request_ms": access.now_ms, "requester": access.key, "requester_org": signer.org}
    for org, group in sorted(by_custodian.items()):
        vault = gateway.vault(org)
        entries: list[dict[str, Any]] = []
        for record, head in group:
            owner = head.pseudonym
            try:
                decision = evaluate_access(view, signer, owner, record, head, access.purpose, access.now_ms,
                                           emergency=access.emergency, study=access.study)
                anchor = get_anchor(view, record, head.version)
                assert anchor is not None
                salt, canonical = vault.open(record, head.version)
                if compute_commitment(salt, canonical) != anchor.commitment:
                    raise VaultIntegrityError(f"record {record} does not match its ledger anchor")
            except (AccessDenied, VaultIntegrityError, LedgerError) as exc:
                entries.append({**base, "code": int(exc.code), "consent": None, "mode": "none",
                                "outcome": "denied", "pseudonym": owner, "record": record})
                withheld[record] = Withheld(record, exc.code, exc.message)
                continue
            entries.append({**base, "code": 0, "consent": decision.consent, "emergency": decision.emergency,
                            "mode": decision.mode, "outcome": "granted", "pseudonym": owner, "record": record})
            released[record] = Released(record, head, anchor, canonical)
        if entries:
            gateway._audit(vault, entries)  # the gateway's own audit writer: same key, batching and wait
    order = [record for record, _ in items]
    return ([released[r] for r in order if r in released], [withheld[r] for r in order if r in withheld])


RECORD_PARAMS: tuple[SearchParam[Any], ...] = (
    PATIENT,
    SearchParam[dict[str, Any]]("_lastUpdated", "date", SP + "Resource-lastUpdated",
                                "When the record's latest version was anchored (block time)", lambda r: r["time_ms"]),
)
"""The search parameters of clinical records: the patient, and the anchor time (the ledger knows no
clinical date)."""


class RecordResources:
    """The provider of one clinical resource type held in vaults (any type without a provider of its own)."""

    search_params = RECORD_PARAMS

    def __init__(self, gateway: Gateway, resource_type: str) -> None:
        self.gateway = gateway
        self.resource_type = resource_type

    def read(self, access: Access, resource_id: str) -> dict[str, Any]:
        """Raises RECORD_UNKNOWN, VAULT_NOT_HOSTED, the access refusal (audited) and INTERNAL_ERROR."""
        head = get_head(access.view, resource_id) if RECORD_ID.match(resource_id) else None
        if head is None or head.type != self.resource_type:
            raise LedgerError(f"no {self.resource_type} record {resource_id[:80]}", Code.RECORD_UNKNOWN)
        released, withheld = read_records(self.gateway, access, [(resource_id, head)])
        if not released:
            raise LedgerError(f"access to {resource_id} refused ({withheld[0].code.name})", withheld[0].code)
        return released[0].resource()

    def search(self, access: Access, query: Query) -> Page:
        """The patient's records of this type at custodians hosted here that the requester may read."""
        patient = search_patient(access, query.patient)
        view = access.view
        acting = access.acts_for(patient)
        listed: list[tuple[str, HeadRecord]] = []
        for row in patient_records(view, patient):
            if (row["type"] != self.resource_type or row["status"] != "active"
                    or row["custodian"] not in self.gateway.vaults or not query.matches(row)):
                continue
            head = get_head(view, row["record"])
            if head is None:
                continue
            if acting is None:
                try:
                    evaluate_access(view, access.signer, patient, row["record"], head, access.purpose,
                                    access.now_ms, emergency=access.emergency, study=access.study)
                except AccessDenied:
                    continue
            listed.append((row["record"], head))
        page = listed[query.offset:query.offset + query.count]
        released, withheld = read_records(self.gateway, access, page) if page else ([], [])
        outcomes = [operation_outcome([("forbidden", f"{w.record}: {w.code.name} ({int(w.code)})", "")])
                    for w in withheld]
        return Page(len(listed), [r.resource() for r in released], outcomes)


__all__ = ["RECORD_ID", "RECORD_PARAMS", "RecordResources", "Released", "Withheld", "read_records"]
