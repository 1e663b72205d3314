"""The FHIR resources the ledger itself holds about a patient: Consent, AuditEvent and Provenance.

Each is a :class:`~careledger.vault.fhir_search.LedgerResources` provider over committed state:

=============  =======================================  ============================  =====================
type           rows                                     id                            who sees them
=============  =======================================  ============================  =====================
Consent        ``consent/patient/<pt>/…`` (with          the consent id (``cns-…``)    the patient or an
               history: revoked ones are ``inactive``)                                active delegate
AuditEvent     ``audit/patient/<pt>/…``: every read,     ``<pt>-<height>-<tx>-<n>``    the patient or an
               granted, denied or emergency                                           active delegate
Provenance     one per anchored record version           ``<record>-<version>``;       the patient or a
               (CREATE/UPDATE) and one per erasure       ``<record>-erasure``          delegate; anyone
               (DELETE)                                                               whose access to the
                                                                                      record passes
=============  =======================================  ============================  =====================

The Consent and AuditEvent content is :func:`careledger.vault.fhir.consent_to_fhir` and
:func:`~careledger.vault.fhir.audit_to_fhir` (an AuditEvent's id here also names its patient, so
that it can be read by id). A Provenance names the record version it is about
(``<Type>/<record>/_history/<version>``), the author key and the custodian organisation, the
previous version it revises, the block time, and the salted commitment (extension
:data:`COMMITMENT_EXTENSION`); never any clinical content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from careledger.contracts import consent, records
from careledger.contracts.audit import AuditRecord, audit_log, get_audit_entry
from careledger.contracts.consent import ConsentRecord, evaluate_access
from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader
from careledger.vault.fhir import audit_to_fhir, consent_to_fhir
from careledger.vault.fhir_access import Access
from careledger.vault.fhir_search import PATIENT, LedgerResources, SearchParam
from careledger.vault.queries import patient_records

SP = "http://hl7.org/fhir/SearchParameter/"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
COMMITMENT_EXTENSION = "urn:careledger:commitment"
"""Extension URL of a Provenance's salted commitment, SHA-256(salt ‖ canonical resource), hex."""


def instant(ms: int) -> str:
    """A FHIR instant (UTC, milliseconds) of ``ms`` since the epoch."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- Consent ------------------------------------------------------------------------------------------------

class ConsentResources(LedgerResources[ConsentRecord]):
    """FHIR Consent: the patient's consents, revoked ones included (status ``inactive``)."""

    resource_type = "Consent"
    id_pattern = re.compile(r"^cns-[0-9a-f]{24}(-[0-9]{1,4})?$")
    not_found = Code.CONSENT_UNKNOWN
    search_params = (
        PATIENT,
        SearchParam[ConsentRecord]("date", "date", SP + "clinical-date", "When the consent was granted (block time)",
                                   lambda c: c.granted_ms),
        SearchParam[ConsentRecord]("status", "token", SP + "Consent-status", "active | inactive (revoked)",
                                   lambda c: (("http://hl7.org/fhir/consent-state-codes",
                                               "active" if c.is_active else "inactive"),)),
        SearchParam[ConsentRecord]("purpose", "token", SP + "Consent-purpose", "A purpose of use it covers",
                                   lambda c: tuple((PURPOSE_SYSTEM, p) for p in c.purposes)),
    )

    def find(self, view: StateReader, resource_id: str) -> ConsentRecord | None:
        pointer = consent.get_consent_pointer(view, resource_id)
        return None if pointer is None else consent.get_consent(view, pointer.patient, resource_id)

    def patient_of(self, row: ConsentRecord) -> str:
        return row.patient

    def rows(self, access: Access, patient: str) -> Iterable[ConsentRecord]:
        return sorted(consent.consents_of(access.view, patient), key=lambda c: (c.granted_height, c.id))

    def to_fhir(self, row: ConsentRecord) -> dict[str, Any]:
        return consent_to_fhir(row.to_json())


# --- AuditEvent ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AuditRow:
    """One access-log entry: its patient, its key's last segment and the entry."""

    pseudonym: str
    suffix: str
    entry: AuditRecord


class AuditEventResources(LedgerResources[AuditRow]):
    """FHIR AuditEvent: the patient's access log, in commit order."""

    resource_type = "AuditEvent"
    id_pattern = re.compile(r"^(pt-[0-9a-f]{32})-([0-9]{12}-[0-9]{5}-[0-9]{4})$")
    search_params = (
        SearchParam[AuditRow]("patient", "reference", SP + "AuditEvent-patient", PATIENT.documentation,
                              lambda r: ()),
        SearchParam[AuditRow]("date", "date", SP + "AuditEvent-date", "When the access was recorded (block time)",
                              lambda r: r.entry.time_ms),
        SearchParam[AuditRow]("outcome", "token", SP + "AuditEvent-outcome", "0 granted, 4 denied",
                              lambda r: (("http://hl7.org/fhir/audit-event-outcome",
                                          "0" if r.entry.outcome == "granted" else "4"),)),
    )

    def find(self, view: StateReader, resource_id: str) -> AuditRow | None:
        match = self.id_pattern.match(resource_id)
        assert match is not None
        entry = get_audit_entry(view, match[1], match[2])
        return None if entry is None else AuditRow(match[1], match[2], entry)

    def patient_of(self, row: AuditRow) -> str:
        return row.pseudonym

    def rows(self, access: Access, patient: str) -> Iterable[AuditRow]:
        return [AuditRow(patient, entry_id, entry)  # keys sort by height, tx, entry
                for entry_id, entry in audit_log(access.view, patient)]

    def to_fhir(self, row: AuditRow) -> dict[str, Any]:
        event = audit_to_fhir(row.pseudonym, row.suffix, row.entry.to_json())
        event["id"] = f"{row.pseudonym}-{row.suffix}"
        return event


# --- Provenance ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProvenanceRow:
    """An anchored record version (``version`` ≥ 1), or the record's erasure (``erasure`` set)."""

    head: records.HeadRecord
    record: str
    version: int
    anchor: records.AnchorRecord | None
    erasure: records.ErasureRecord | None

    @property
    def time_ms(self) -> int:
        source = self.erasure if self.erasure is not None else self.anchor
        assert source is not None
        return source.time_ms


def _agent(code: str, who: dict[str, Any]) -> dict[str, Any]:
    return {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": code}]}, "who": who}


def provenance_to_fhir(row: ProvenanceRow) -> dict[str, Any]:
    """A record version's anchor, or its erasure, as a FHIR R4 Provenance (no clinical content)."""
    rtype, custodian = row.head.type, row.head.custodian
    custodian_ref = {"reference": f"Organization/{custodian}"}
    operation = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
    prov: dict[str, Any] = {"resourceType": "Provenance", "recorded": instant(row.time_ms)}
    if row.erasure is not None:
        by = row.erasure.by
        who = ({"identifier": {"system": "urn:careledger:pseudonym", "value": row.head.pseudonym}}
               if row.erasure.by_kind == "patient" else
               {"identifier": {"system": "urn:careledger:member-key", "value": by}})
        prov.update(id=f"{row.record}-erasure", target=[{"reference": f"{rtype}/{row.record}"}],
                    activity={"coding": [{"system": operation, "code": "DELETE"}]},
                    reason=[{"coding": [{"system": "urn:careledger:erasure-reason", "code": row.erasure.reason}]}],
                    agent=[_agent("author", who), _agent("custodian", custodian_ref)],
                    entity=[{"role": "removal", "what": {"reference": f"{rtype}/{row.record}"}}])
        return prov
    anchor = row.anchor
    assert anchor is not None
    agents = [_agent("custodian", custodian_ref)]
    if anchor.author:
        agents.insert(0, {**_agent("author", {"identifier": {"system": "urn:careledger:member-key",
                                                             "value": anchor.author}}),
                          "onBehalfOf": custodian_ref})
    prov.update(id=f"{row.record}-{row.version}",
                target=[{"reference": f"{rtype}/{row.record}/_history/{row.version}"}],
                activity={"coding": [{"system": operation, "code": "CREATE" if anchor.prev is None else "UPDATE"}]},
                agent=agents,
                extension=[{"url": COMMITMENT_EXTENSION, "valueString": anchor.commitment}])
    if anchor.prev is not None:
        prov["entity"] = [{"role": "revision",
                           "what": {"reference": f"{rtype}/{row.record}/_history/{anchor.prev}"}}]
    return prov


def _targets(row: ProvenanceRow) -> tuple[str, ...]:
    base = f"{row.head.type}/{row.record}"
    return (base,) if row.erasure is not None else (base, f"{base}/_history/{row.version}")


class ProvenanceResources(LedgerResources[ProvenanceRow]):
    """FHIR Provenance of the patient's records: every anchored version and every erasure.

    The patient and active delegates see all of them; anyone else sees the Provenance of the records
    their access passes for (consent, custodian staff, open break-glass session with an emergency
    token), as the ``anchors`` query does.
    """

    resource_type = "Provenance"
    id_pattern = re.compile(r"^(r-[0-9a-f]{32})-([1-9][0-9]{0,5}|erasure)$")
    search_params = (
        SearchParam[ProvenanceRow]("patient", "reference", SP + "Provenance-patient", PATIENT.documentation,
                                   lambda r: ()),
        SearchParam[ProvenanceRow]("recorded", "date", SP + "Provenance-recorded",
                                   "When the version was anchored, or the record erased (block time)",
                                   lambda r: r.time_ms),
        SearchParam[ProvenanceRow]("target", "reference", SP + "Provenance-target",
                                   "The record (Type/r-…, or r-…) or one of its versions", _targets),
    )

    def find(self, view: StateReader, resource_id: str) -> ProvenanceRow | None:
        match = self.id_pattern.match(resource_id)
        assert match is not None
        record = match[1]
        head = records.get_head(view, record)
        if head is None:
            return None
        if match[2] == "erasure":
            erasure = records.get_erasure(view, record)
            return None if erasure is None else ProvenanceRow(head, record, head.version, None, erasure)
        anchor = records.get_anchor(view, record, int(match[2]))
        return None if anchor is None else ProvenanceRow(head, record, int(match[2]), anchor, None)

    def patient_of(self, row: ProvenanceRow) -> str:
        return row.head.pseudonym

    def rows(self, access: Access, patient: str) -> Iterable[ProvenanceRow]:
        view = access.view
        out: list[ProvenanceRow] = []
        for listed in patient_records(view, patient):
            record = listed["record"]
            head = records.get_head(view, record)
            if head is None:
                continue
            for version in range(1, head.version + 1):
                anchor = records.get_anchor(view, record, version)
                if anchor is not None:
                    out.append(ProvenanceRow(head, record, version, anchor, None))
            if head.is_erased:
                erasure = records.get_erasure(view, record)
                if erasure is not None:
                    out.append(ProvenanceRow(head, record, head.version, None, erasure))
        out.sort(key=lambda r: (r.time_ms, r.record, r.version, r.erasure is not None))
        return out

    def to_fhir(self, row: ProvenanceRow) -> dict[str, Any]:
        return provenance_to_fhir(row)

    def authorise(self, access: Access, patient: str) -> None:
        """Anyone may search; each row is then held to :meth:`check_row`."""

    def check_row(self, access: Access, row: ProvenanceRow) -> None:
        """The patient or a delegate, or whoever's access to the record passes now; raises the
        refusal of :func:`careledger.contracts.consent.evaluate_access` otherwise."""
        patient = self.patient_of(row)
        if access.acts_for(patient) is not None:
            return
        evaluate_access(access.view, access.signer, patient, row.record, row.head, access.purpose, access.now_ms,
                        emergency=access.emergency, study=access.study)

    def visible(self, access: Access, row: ProvenanceRow) -> bool:
        try:
            self.check_row(access, row)
        except LedgerError:
            return False
        return True


__all__ = ["COMMITMENT_EXTENSION", "AuditEventResources", "AuditRow", "ConsentResources", "ProvenanceResources",
           "ProvenanceRow", "instant", "provenance_to_fhir"]
