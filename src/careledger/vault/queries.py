"""Patient-scoped ledger queries, answered from committed state by any node, only to signed requests.

* ``view``: the patient (or an active delegate) sees their records (custodian, type, version, date —
  the block time of the latest anchor — and status), consents with history, delegates, break-glass
  sessions and the full access log, granted, denied and emergency alike; with ``format: fhir`` the
  consents and the log also come as FHIR Consent and AuditEvent bundles;
* ``index``: anyone else sees only the records their consent (or an open break-glass session)
  covers for the stated purpose — and an empty list otherwise, which says nothing;
* ``anchors``: the ledger anchors (every version's commitment) of records the requester may read,
  to check a fetched record against.

Query requests are signed requests (:mod:`.requests`), checked for signature and freshness and
remembered against replay like reads;
they are not audited (they return no clinical content).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from careledger.contracts import consent, identity, records
from careledger.contracts.audit import audit_log
from careledger.contracts.consent import AccessDenied, acts_for_patient, evaluate_access
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.state import StateReader
from careledger.vault.fhir import audit_to_fhir, consent_to_fhir
from careledger.vault.ledger import LedgerPort
from careledger.vault.requests import (
    FRESHNESS_MS,
    QUERY_KINDS,
    ReplayGuard,
    SignedRequest,
    parse_exact_json,
    verify_request,
)


def _iso_date(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def patient_records(view: StateReader, pseudonym: str) -> list[dict[str, Any]]:
    """The patient's record index, ordered by custodian, type and date."""
    out = [{"record": record, **entry.to_json()} for record, entry in records.patient_index(view, pseudonym)]
    for r in out:
        r["date"] = _iso_date(r["time_ms"])
    out.sort(key=lambda r: (r["custodian"], r["type"], r["time_ms"], r["record"]))
    return out


def patient_view(view: StateReader, pseudonym: str, as_fhir: bool = False) -> dict[str, Any]:
    """Everything the ledger holds about one patient (never any clinical content)."""
    ordered = sorted(consent.consents_of(view, pseudonym), key=lambda c: (c.granted_height, c.id))
    consents = [c.to_json() for c in ordered]
    log = [{"id": entry_id, **rec.to_json()} for entry_id, rec in audit_log(view, pseudonym)]
    sessions = [entry.to_json() for _, entry in consent.break_glass_log(view, pseudonym)]
    delegates = [{"key": key, **rec.to_json()} for key, rec in consent.delegates_of(view, pseudonym)]
    doc: dict[str, Any] = {
        "patient": pseudonym, "records": patient_records(view, pseudonym), "consents": consents,
        "delegates": delegates, "break_glass": sessions, "access_log": log,
        "summary": {"records": 0, "accesses": len(log), "denied": sum(e["outcome"] == "denied" for e in log),
                    "emergency": sum(bool(e["emergency"]) for e in log)},
    }
    doc["summary"]["records"] = len(doc["records"])
    if as_fhir:
        doc["consents_fhir"] = {"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": consent_to_fhir(c)} for c in consents]}
        doc["access_log_fhir"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": audit_to_fhir(pseudonym, e["id"], e)} for e in log]}
    return doc


class LedgerQueries:
    """Answers ``view``, ``index`` and ``anchors`` requests against committed state."""

    def __init__(self, ledger: LedgerPort, clock: Callable[[], float] = time.time,
                 window_ms: int = FRESHNESS_MS) -> None:
        self.ledger = ledger
        self.clock = clock
        self.window_ms = window_ms
        self.guard = ReplayGuard(window_ms)

    def answer(self, request: SignedRequest) -> dict[str, Any]:
        """Answer a signed ``view``, ``index`` or ``anchors`` request (:mod:`.requests`).

        Raises the request errors (MISSING_SIGNATURE, BAD_SIGNATURE, REQUEST_STALE, REQUEST_MALFORMED,
        REQUEST_REPLAYED), UNKNOWN_SIGNER (an unregistered requester) and NOT_PATIENT_OR_DELEGATE (a
        view by anyone else)."""
        now = int(self.clock() * 1000)
        verified = verify_request(request, self.ledger.chain_id, self.ledger.suite, now, kinds=QUERY_KINDS,
                                  guard=self.guard, window_ms=self.window_ms, parse=parse_exact_json)
        req = verified.body
        view = self.ledger.view()
        requester = identity.resolve_signer(view, verified.requester)
        if requester.kind == "unregistered":
            raise AuthError("the requester is neither a consortium member nor a registered patient",
                            Code.UNKNOWN_SIGNER)
        acting = acts_for_patient(view, requester, req.patient, now)
        if req.kind == "view":
            if acting is None:
                raise LedgerError("only the patient or the patient's delegate sees the patient view",
                                  Code.NOT_PATIENT_OR_DELEGATE)
            return {**patient_view(view, req.patient, req.format == "fhir"), "as": acting}
        if req.kind == "index":
            listed = []
            for r in patient_records(view, req.patient):
                if acting is not None:
                    listed.append(r)
                    continue
                head = records.get_head(view, r["record"])
                if head is not None and self._allowed(view, requester, req, r["record"], head, now):
                    listed.append(r)
            return {"patient": req.patient, "records": listed}
        anchors, denied = [], []
        for record in dict.fromkeys(req.records):
            head = records.get_head(view, record)
            if head is None or not self._allowed(view, requester, req, record, head, now):
                denied.append(record)
                continue
            versions = [records.get_anchor(view, record, v) for v in range(1, head.version + 1)]
            anchors.append({"record": record, "head": head.to_json(),
                            "versions": [a.to_json() for a in versions if a is not None]})
        return {"patient": req.patient, "anchors": anchors, "withheld": denied}

    @staticmethod
    def _allowed(view: StateReader, requester: Any, req: Any, record: str, head: records.HeadRecord,
                 now: int) -> bool:
        try:
            evaluate_access(view, requester, req.patient, record, head, req.purpose, now,
                            emergency=req.emergency, study=req.study)
        except AccessDenied:
            return False
        return True
