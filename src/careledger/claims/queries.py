"""Claim queries about a patient, answered from committed state by any node, only to signed requests.

The ledger holds no claim content, but a claim names a patient's pseudonym, so no route answers about
one to an unauthenticated caller (as for records, :mod:`careledger.vault.queries`). Who sees what:

* ``claims.status``: one claim, its adjudications (outcome, line codes, rule versions, commitments,
  and the record ids of the package, ClaimResponse and ExplanationOfBenefit), payments, appeals,
  flags and whether its encounter was erased — to the patient (or a delegate), to the claim's
  provider and insurer (their admins and claims officers), and to an insurer whose claim names it as
  its prior payer's (coordination of benefits); anyone else: CLAIM_NOT_PARTY;
* ``claims.list``: the patient's claims — all of them to the patient or a delegate, to a provider or
  insurer officer those of its organisation, nothing to anyone else (an empty list says nothing);
* ``claims.flags``: an insurer's flag feed, to its admins and claims officers (CLAIM_NOT_INSURER);
* ``claims.coverages``: the patient's coverages — to the patient or a delegate; an insurer's officers
  see the insurer's own;
* ``claims.eligibility``: FHIR R4 ``CoverageEligibilityResponse`` (one per insurer, primary first) —
  to the patient or a delegate, to members of providers (hospital, clinic, pharmacy) and to insurers'
  officers (their own coverages): is the patient covered on that day, by whom first, with the plan's
  benefits per category (excluded, authorization required, co-pay, co-insurance, deductible).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from careledger.contracts import identity, records
from careledger.contracts.base import Signer
from careledger.contracts.claims import (
    adjudications_of,
    claims_of_patient,
    coverages_of,
    eligibility,
    encounter_state,
    flags_of,
    get_claim,
    payments_of,
    plan_in_force,
)
from careledger.contracts.claims.handlers import PROVIDER_ORG_ROLES, is_claims_officer
from careledger.contracts.claims.layout import ClaimRecord, CoverageRecord, appeal_key, day_of_ms
from careledger.contracts.consent import acts_for_patient
from careledger.core.codec import decode_trusted
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.state import StateReader
from careledger.vault.canonical import DECIMAL_TAG
from careledger.vault.fhir import validate_resource
from careledger.vault.ledger import LedgerPort
from careledger.vault.requests import FRESHNESS_MS, ReplayGuard, SignedRequest, Verified, verify_request

from . import requests as claims_requests
from .content import date_of, from_minor
from .fhir_out import COVERAGE_SYSTEM, ORG_SYSTEM, PSEUDONYM_SYSTEM
from .package import adjudication_records, claim_record_id

BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
CATEGORY_SYSTEM = "urn:careledger:benefit-category"
REQUEST_SYSTEM = "urn:careledger:request"


def _ident(system: str, value: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": value}}


def _money(minor: int, currency: str) -> dict[str, Any]:
    return {"currency": currency, "value": {DECIMAL_TAG: str(from_minor(minor, currency))}}


def _document(view: StateReader, record: str) -> dict[str, Any]:
    """Where a document behind a commitment stands on the ledger: its custodian, status and anchor."""
    head = records.get_head(view, record)
    if head is None:
        return {"record": record, "custodian": None, "status": "unknown", "commitment": None}
    anchor = records.get_anchor(view, record, head.version)
    return {"record": record, "custodian": head.custodian, "status": head.status,
            "commitment": None if anchor is None else anchor.commitment}


def claim_view(view: StateReader, claim: ClaimRecord) -> dict[str, Any]:
    """A claim as the ledger holds it, with its adjudications, payments and appeals, and the record ids
    of the documents behind its commitments."""
    adjudications = []
    for a in adjudications_of(view, claim.id):
        doc = a.to_json()
        doc["records"] = None if a.result_commitment is None else adjudication_records(a.result_commitment)
        doc["documents"] = None if doc["records"] is None else {
            kind: _document(view, record) for kind, record in doc["records"].items()}
        adjudications.append(doc)
    appeals = []
    for n in range(1, claim.appeals + 1):
        raw = view.get_raw(appeal_key(claim.id, n))
        if raw is not None:
            appeals.append(decode_trusted(raw))
    return {"claim": claim.to_json(), "record": claim_record_id(claim.content_commitment),
            "document": _document(view, claim_record_id(claim.content_commitment)),
            "encounter_state": encounter_state(view, claim.encounter), "adjudications": adjudications,
            "payments": [p.to_json() for p in payments_of(view, claim.id)], "appeals": appeals}


class ClaimQueries:
    """Answers the ``claims.*`` query requests against committed state."""

    def __init__(self, ledger: LedgerPort, clock: Callable[[], float] = time.time,
                 window_ms: int = FRESHNESS_MS) -> None:
        self.ledger = ledger
        self.clock = clock
        self.window_ms = window_ms
        self.guard = ReplayGuard(window_ms)

    def answer(self, request: SignedRequest, kind: str) -> dict[str, Any]:
        """Answer a signed request (docs/protocol.md section 4.3) whose body is a ``kind``. Raises the
        request errors (MISSING_SIGNATURE, BAD_SIGNATURE, REQUEST_STALE, REQUEST_MALFORMED,
        REQUEST_REPLAYED), UNKNOWN_SIGNER and the kind's own refusals (see the module docstring)."""
        now = int(self.clock() * 1000)
        verified: Verified[Any] = verify_request(request, self.ledger.chain_id, self.ledger.suite, now,
                                                 kinds={kind: claims_requests.QUERY_KINDS[kind]}, guard=self.guard,
                                                 window_ms=self.window_ms)
        req = verified.body
        view = self.ledger.view()
        signer = identity.resolve_signer(view, verified.requester)
        if signer.kind == "unregistered":
            raise AuthError("the requester is neither a consortium member nor a registered patient",
                            Code.UNKNOWN_SIGNER)
        if kind == "claims.status":
            return self._status(view, signer, req.claim, now)
        if kind == "claims.list":
            return self._list(view, signer, req.patient, now)
        if kind == "claims.flags":
            if not is_claims_officer(signer, req.insurer, admin=True):
                raise LedgerError(f"only an admin or a claims officer of {req.insurer!r} reads its flags",
                                  Code.CLAIM_NOT_INSURER)
            flags = [f.to_json() for f in flags_of(view, req.insurer) if f.height >= req.since_height]
            return {"insurer": req.insurer, "flags": flags}
        if kind == "claims.coverages":
            return {"patient": req.patient, "coverages": [c.to_json() for c in
                                                          self._coverages(view, signer, req.patient, now)]}
        assert kind == "claims.eligibility"
        day = req.day if req.day is not None else day_of_ms(now)
        return self._eligibility(view, signer, req.patient, day, req.insurer, verified.hash, now)

    @staticmethod
    def _party(view: StateReader, signer: Signer, claim: ClaimRecord, now: int) -> str | None:
        who = acts_for_patient(view, signer, claim.patient, now)
        if who is not None:
            return who
        if is_claims_officer(signer, claim.provider, admin=True):
            return "provider"
        if is_claims_officer(signer, claim.insurer, admin=True):
            return "insurer"
        if signer.org is not None and is_claims_officer(signer, signer.org, admin=True) and any(
                c.prior_payer_claim == claim.id and c.insurer == signer.org
                for c in claims_of_patient(view, claim.patient)):
            return "secondary-payer"
        return None

    def _status(self, view: StateReader, signer: Signer, claim_id: str, now: int) -> dict[str, Any]:
        claim = get_claim(view, claim_id)
        if claim is None:
            raise LedgerError(f"no claim {claim_id}", Code.CLAIM_UNKNOWN)
        party = self._party(view, signer, claim, now)
        if party is None:
            raise LedgerError("only the patient, a delegate, the provider or the insurer sees a claim",
                              Code.CLAIM_NOT_PARTY)
        return {**claim_view(view, claim), "as": party}

    def _list(self, view: StateReader, signer: Signer, patient: str, now: int) -> dict[str, Any]:
        everything = acts_for_patient(view, signer, patient, now) is not None
        shown = [c.to_json() for c in claims_of_patient(view, patient)
                 if everything or self._party(view, signer, c, now) is not None]
        return {"patient": patient, "claims": shown}

    @staticmethod
    def _coverages(view: StateReader, signer: Signer, patient: str, now: int) -> list[CoverageRecord]:
        if acts_for_patient(view, signer, patient, now) is not None:
            return coverages_of(view, patient)
        return [c for c in coverages_of(view, patient) if is_claims_officer(signer, c.insurer, admin=True)]

    def _eligibility(self, view: StateReader, signer: Signer, patient: str, day: int, insurer: str | None,
                     request_hash: str, now: int) -> dict[str, Any]:
        everything = acts_for_patient(view, signer, patient, now) is not None
        org = identity.get_org(view, signer.org) if signer.org is not None and signer.active else None
        roles = set(org.roles) if org is not None else set()
        if everything or roles & set(PROVIDER_ORG_ROLES):
            coverages = coverages_of(view, patient)
        elif "insurer" in roles and signer.org is not None and is_claims_officer(signer, signer.org, admin=True):
            coverages = [c for c in coverages_of(view, patient) if c.insurer == signer.org]
        else:
            raise LedgerError("eligibility is answered to the patient, providers and insurers", Code.CLAIM_NOT_PARTY)
        in_force = {c.id for c in eligibility(view, patient, day)}
        by_insurer: dict[str, list[CoverageRecord]] = {}
        for c in sorted(coverages, key=lambda c: (c.id not in in_force, c.order, c.id)):
            if insurer is None or c.insurer == insurer:
                by_insurer.setdefault(c.insurer, []).append(c)
        created = date_of(day_of_ms(now))
        responses = [self._response(view, patient, day, org, covs, in_force, request_hash, created, n)
                     for n, (org, covs) in enumerate(by_insurer.items(), start=1)]
        primary = next((c.insurer for c in sorted(coverages, key=lambda c: (c.order, c.id)) if c.id in in_force),
                       None)
        return {"patient": patient, "day": day, "date": date_of(day), "covered": bool(in_force & {
            c.id for covs in by_insurer.values() for c in covs}), "primary": primary, "responses": responses}

    @staticmethod
    def _response(view: StateReader, patient: str, day: int, insurer: str, coverages: list[CoverageRecord],
                  in_force: set[str], request_hash: str, created: str, n: int) -> dict[str, Any]:
        insurance = []
        for c in coverages:
            period = {"start": date_of(c.start_day)}
            if c.end_day is not None:
                period["end"] = date_of(c.end_day)
            entry: dict[str, Any] = {"coverage": _ident(COVERAGE_SYSTEM, c.id), "inforce": c.id in in_force,
                                     "benefitPeriod": period}
            plan = plan_in_force(view, c.insurer, c.plan, day) if c.id in in_force else None
            if plan is not None:
                rules = plan.rules
                currency = rules["currency"]
                items = []
                for cat in rules["categories"]:
                    benefits: list[dict[str, Any]] = [{"type": {"coding": [{"code": "copay", "system": BENEFIT_TYPE}]},
                                 "allowedMoney": _money(cat["copay"], currency)}]
                    if cat["deductible_applies"]:
                        benefits.append({"type": {"coding": [{"code": "deductible", "system": BENEFIT_TYPE}]},
                                         "allowedMoney": _money(rules["deductible"], currency)})
                    if cat["coinsurance_bps"]:
                        bps = int(cat["coinsurance_bps"])
                        percent = f"{bps // 100}" + (f".{bps % 100:02d}".rstrip("0") if bps % 100 else "") + "%"
                        benefits.append({"type": {"coding": [{"code": "copay-percent", "system": BENEFIT_TYPE}]},
                                         "allowedString": percent})
                    items.append({"category": {"coding": [{"code": cat["category"], "system": CATEGORY_SYSTEM}]},
                                  "excluded": not cat["covered"],
                                  "authorizationRequired": cat["requires_authorization"], "benefit": benefits})
                entry["item"] = items
            insurance.append(entry)
        resource = {
            "resourceType": "CoverageEligibilityResponse", "id": f"eligibility-{request_hash[:16]}-{n}",
            "status": "active", "purpose": ["validation", "benefits"], "patient": _ident(PSEUDONYM_SYSTEM, patient),
            "servicedDate": date_of(day), "created": created,
            "request": _ident(REQUEST_SYSTEM, request_hash), "outcome": "complete",
            "insurer": _ident(ORG_SYSTEM, insurer), "insurance": insurance}
        validate_resource(resource)
        return resource
