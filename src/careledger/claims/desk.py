"""A node's claims desk: the provider's and the insurer's off-ledger side of a claim, beside the gateway.

The desk holds the secrets a claims transaction commits to — the salts of the claim, of the
encounter it is for, of an adjudication — and never hands them to the officer who signs. The
ledger's rules make a claims officer (not a gateway key) sign ``claims.submit`` and
``claims.adjudicate``: a claim is the provider's attestation and an adjudication the insurer's
decision, each attributable to the person who made it. So each goes in two steps:

1. **prepare** — the officer sends the document (signed request): the desk validates it, computes
   what the transaction must carry (commitments, line fingerprints, the adjudication and its
   commitments) and keeps the document and its salt *in memory* (``PENDING_TTL_MS``), answering the
   transaction's payload;
2. **commit** (``POST /v1/claims/txs``) — the officer signs that payload and sends the transaction:
   the desk checks it is the one prepared, runs it against committed state (a refusal answers its
   contract code and writes nothing), stores and anchors its documents as records of the patient
   (``records.anchor`` by the vault's gateway key), then submits the transaction and waits for its
   receipt. A document is anchored before the transaction that makes its commitment public, under a
   record id derived from that commitment (:mod:`careledger.claims.package`).

Provider (:meth:`ClaimsDesk.prepare_claim`): a FHIR ``Claim`` for an encounter this provider's vault
holds; the content commitment uses a fresh salt ``S`` (which also salts the Claim record), the line
fingerprints are keyed by the encounter record's salt (:mod:`careledger.claims.fingerprint`). The
desk refuses a claim for an encounter it does not hold, another patient's, or an erased one: a
provider that bypasses its desk and signs such a claim itself is denied by the ledger (phantom).

Insurer (:meth:`ClaimsDesk.prepare_coverage`, :meth:`ClaimsDesk.intake`): a FHIR ``Coverage``; and
the intake of a claim. The insurer's claims officer signs a ``read`` request for the claim's record
and its encounter at the provider, purpose ``HPAYMT``; the desk hands it to the provider's gateway
(in process when the provider's vault is hosted here, else over HTTP at the organisation's ``api``),
which checks the patient's consent and commits the audit entry before releasing anything. The desk
then checks what came back against the ledger (:mod:`careledger.claims.intake`): content that does
not open the claim's commitment, fingerprints that are not this content's, an encounter that does
not open its anchor are refused with their code and the flag the officer records (``claims.flag``).
Otherwise it gathers the facts (accumulators from the coverage's last adjudication, paid lines of
the patient's earlier claims with this provider, the prior payer's ClaimResponse read the same way
for a secondary claim), adjudicates, and prepares the package, the ``ClaimResponse`` and the
patient's ``ExplanationOfBenefit`` for the insurer's vault.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from careledger.chain.executor import Chain, check_nonce, check_signer, check_stateless
from careledger.contracts import identity, records
from careledger.contracts.base import TxContext
from careledger.contracts.claims import (
    claims_of_patient,
    get_accumulator_head,
    get_adjudication,
    get_claim,
    get_coverage,
    latest_adjudication,
    plan_in_force,
    table_in_force,
)
from careledger.contracts.claims.handlers import is_claims_officer
from careledger.contracts.claims.layout import (
    FLAG_CONTENT_MISMATCH,
    FLAG_ENCOUNTER_MISMATCH,
    ClaimRecord,
    day_of_ms,
)
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.errors import Code, LedgerError, TxFailed
from careledger.core.state import Overlay, StateReader
from careledger.core.tx import decode_tx
from careledger.node.engine import Engine
from careledger.vault.canonical import canonical_bytes, compute_commitment, from_python, parse_exact
from careledger.vault.fhir import FhirInvalid, operation_outcome
from careledger.vault.gateway import Gateway
from careledger.vault.requests import (
    FRESHNESS_MS,
    ReadRequest,
    ReplayGuard,
    SignedRequest,
    Verified,
    parse_exact_json,
    verify_request,
)
from careledger.vault.store import Vault

from . import requests as claims_requests
from .adjudication import Accumulators, LedgerFacts, PriorLine, adjudicate, adjudication_input, paid_lines
from .content import ClaimContent, date_of, parse_claim
from .coverage import CoverageTerms, PlanRules, coverage_commitment, parse_coverage
from .edits import EditTableInvalid, EditTables, load_edit_tables, synthetic_tables
from .fhir_out import claim_response, explanation_of_benefit
from .fingerprint import claim_fingerprints
from .intake import FLAG_OF, ReceivedClaim, check_received_claim, encounter_facts
from .package import (
    AdjudicationPackage,
    PackageUnavailable,
    RetainedEncounter,
    adjudication_record_id,
    adjudication_records,
    claim_record_id,
    coverage_record_id,
    new_salt,
    prior_payer_from_response,
    seal_with_salt,
)
from .requests import ForwardedRead

log = logging.getLogger("careledger.claims")
PENDING_TTL_MS = 10 * 60 * 1000
MAX_PENDING = 100_000
PAYMENT_PURPOSE = "HPAYMT"
COMMIT_TYPES = {"claims.submit": "content_commitment", "claims.register_coverage": "commitment",
                "claims.update_coverage": "commitment", "claims.adjudicate": "result_commitment"}
CLAIM_TYPES = ("professional", "institutional")
REMOTE_TIMEOUT = 30.0


class IntakeRefused(LedgerError):
    """The insurer's node refuses a claim whose content, fingerprints or encounter do not match the
    ledger: ``flag`` is the ``claims.flag`` kind the insurer's officer records."""

    def __init__(self, message: str, code: Code, flag: str, claim: str) -> None:
        super().__init__(message, code)
        self.flag = {"claim": claim, "kind": flag}


@dataclass(frozen=True)
class Document:
    """A document to store and anchor when its transaction is committed."""

    record: str
    type: str
    canonical: bytes
    salt: bytes


@dataclass
class Pending:
    """A prepared transaction: the payload it must carry, who prepared it, the documents behind it."""

    tx_type: str
    org: str
    author: str
    pseudonym: str
    payload: dict[str, Any]
    documents: list[Document]
    expires_ms: int


@dataclass(frozen=True)
class Committed:
    """A committed claims transaction and the records anchored for it."""

    tx_hash: str
    height: int
    receipt: Receipt
    records: list[dict[str, Any]] = field(default_factory=list)


class TableShelf:
    """The edit tables this node holds, by digest: the synthetic set shipped with CareLedger and every
    table file under ``directory`` (an operator's own licensed copy, converted to CareLedger's form)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._by_digest: dict[str, EditTables] = {}
        self._lock = threading.Lock()
        self._loaded = False

    def _load(self) -> None:
        found = [synthetic_tables()]
        if self.directory is not None and self.directory.is_dir():
            for path in sorted(self.directory.glob("*.json")):
                try:
                    found.append(load_edit_tables(path))
                except EditTableInvalid:
                    try:
                        found.append(EditTables.from_json(codec.decode(path.read_bytes())))
                    except (LedgerError, OSError):
                        log.warning("edit table file %s could not be read", path.name)
        self._by_digest = {t.digest: t for t in found}
        self._loaded = True

    def get(self, name: str, version: str, digest: str) -> EditTables:
        """The table set the ledger approved (name, version, digest). Raises EDIT_TABLE_INVALID when
        this node does not hold it."""
        with self._lock:
            if not self._loaded or digest not in self._by_digest:
                self._load()
            found = self._by_digest.get(digest)
        if found is None or (found.name, found.version) != (name, version):
            raise EditTableInvalid(f"this node does not hold edit table {name} {version}; add its file to "
                                   "HOME/claims/tables on this node")
        return found


P = TypeVar("P", claims_requests.ClaimPrepare, claims_requests.CoveragePrepare)


def _remote_read(url: str, read: SignedRequest) -> dict[str, Any]:
    """A signed read handed unchanged to another node's gateway (``POST {url}/v1/gateway/read``: its body
    and Authorization header as signed); its refusal as LedgerError."""
    headers = {"content-type": "application/json", "authorization": read.authorization or ""}
    try:
        response = httpx.post(url.rstrip("/") + claims_requests.READ_TARGET, content=read.body, headers=headers,
                              timeout=REMOTE_TIMEOUT)
    except httpx.HTTPError as exc:
        raise LedgerError(f"the custodian's gateway could not be reached ({type(exc).__name__})",
                          Code.NODE_UNAVAILABLE) from None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if response.is_success and isinstance(doc, dict):
        return doc
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        try:
            code = Code(error["code"])
        except ValueError:
            code = Code.INTERNAL_ERROR
        raise LedgerError(f"the custodian's gateway refused the read: {error.get('name')}", code)
    raise LedgerError(f"the custodian's gateway answered HTTP {response.status_code}", Code.INTERNAL_ERROR)


class ClaimsDesk:
    """The claims desk of one node: every vault its gateway hosts, for providers and insurers alike."""

    def __init__(self, gateway: Gateway, engine: Engine, *, tables_dir: Path | None = None,
                 clock: Callable[[], float] = time.time, window_ms: int = FRESHNESS_MS,
                 remote_read: Callable[[str, SignedRequest], dict[str, Any]] = _remote_read) -> None:
        self.gateway = gateway
        self.ledger = gateway.ledger
        self.engine = engine
        self.chain: Chain = engine.chain
        self.clock = clock
        self.window_ms = window_ms
        self.guard = ReplayGuard(window_ms)
        self.tables = TableShelf(tables_dir)
        self.remote_read = remote_read
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._packages: OrderedDict[str, AdjudicationPackage] = OrderedDict()
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- pending transactions ------------------------------------------------------------------------------
    def _hold(self, key: str, pending: Pending) -> None:
        with self._lock:
            now = self.now_ms()
            while self._pending and (len(self._pending) >= MAX_PENDING
                                     or next(iter(self._pending.values())).expires_ms < now):
                self._pending.popitem(last=False)
            self._pending[key] = pending

    def _take(self, key: str) -> Pending | None:
        with self._lock:
            pending = self._pending.pop(key, None)
        if pending is None or pending.expires_ms < self.now_ms():
            return None
        return pending

    def _answer(self, pending: Pending) -> dict[str, Any]:
        return {"type": pending.tx_type, "version": 1, "payload": pending.payload,
                "records": [{"record": d.record, "type": d.type} for d in pending.documents],
                "expires_ms": pending.expires_ms}

    def _officer(self, view: StateReader, requester: str, org: str, *, admin: bool, code: Code) -> None:
        signer = identity.resolve_signer(view, requester)
        if signer.kind == "unregistered":
            raise LedgerError("the requester is not a member of the consortium", Code.UNKNOWN_SIGNER)
        if not is_claims_officer(signer, org, admin=admin):
            who = "an admin or a claims officer" if admin else "a claims officer"
            raise LedgerError(f"only {who} of {org!r} may do this", code)

    @staticmethod
    def _patient(view: StateReader, pseudonym: str) -> None:
        try:
            records.require_patient_active(view, pseudonym)
        except TxFailed as exc:
            raise LedgerError(exc.message, exc.code) from None

    # -- provider: a claim ---------------------------------------------------------------------------------
    def _verify_prepare(self, request: SignedRequest, kind: str, model: type[P]) -> Verified[P]:
        """A signed request to prepare a document (``kind``; its resource parsed with every decimal's exact
        text): signature, freshness, shape, novelty. Raises the request errors."""
        verified: Verified[P] = verify_request(request, self.ledger.chain_id, self.ledger.suite, self.now_ms(),
                                               kinds={kind: model}, guard=self.guard, window_ms=self.window_ms,
                                               parse=parse_exact_json)
        return verified

    def prepare_claim(self, request: SignedRequest) -> dict[str, Any]:
        """Validate a FHIR Claim for an encounter this provider holds; answer the ``claims.submit`` payload.

        Raises the request errors; UNKNOWN_SIGNER; CLAIM_NOT_PROVIDER (not an admin or claims officer of
        the custodian); VAULT_NOT_HOSTED; PATIENT_UNKNOWN; REQUEST_MALFORMED (the record is not an
        Encounter); FHIR_INVALID / CLAIM_CONTENT_INVALID with an
        OperationOutcome (also for a claim type other than professional or institutional);
        RECORD_UNKNOWN / NOT_CUSTODIAN / RECORD_PATIENT_MISMATCH / RECORD_ERASED for an encounter this
        vault does not hold for this patient; VAULT_INTEGRITY.
        """
        verified = self._verify_prepare(request, "claim.prepare", claims_requests.ClaimPrepare)
        req, requester = verified.body, verified.requester
        view = self.ledger.view()
        self._officer(view, requester, req.custodian, admin=True, code=Code.CLAIM_NOT_PROVIDER)
        vault = self.gateway.vault(req.custodian)
        self._patient(view, req.patient)
        value = from_python(req.resource)
        content = parse_claim(value)
        if content.claim_type not in CLAIM_TYPES:
            raise FhirInvalid("only professional and institutional claims are submitted", operation_outcome(
                [("not-supported", "type must be professional or institutional", "Claim.type")]),
                Code.CLAIM_CONTENT_INVALID)
        encounter_salt = self._encounter_salt(view, vault, req.encounter, req.patient)
        salt = new_salt()
        commitment = content.commitment(salt)
        payload = {
            "content_commitment": commitment, "coverage": req.coverage, "encounter": req.encounter,
            "end_day": content.billable_end_day,
            "fingerprints": claim_fingerprints(encounter_salt, req.patient, req.custodian, content),
            "insurer": req.insurer, "lines": len(content.lines), "patient": req.patient,
            "prior_payer_claim": req.prior_payer_claim, "provider": req.custodian, "replaces": req.replaces,
            "start_day": content.billable_start_day, "type": content.claim_type}
        pending = Pending("claims.submit", req.custodian, requester, req.patient, payload,
                          [Document(claim_record_id(commitment), "Claim", canonical_bytes(value), salt)],
                          self.now_ms() + PENDING_TTL_MS)
        self._hold(commitment, pending)
        return self._answer(pending)

    def _encounter_salt(self, view: StateReader, vault: Vault, record: str, patient: str) -> bytes:
        head = records.get_head(view, record)
        if head is None:
            raise LedgerError(f"no record {record} is anchored", Code.RECORD_UNKNOWN)
        if head.custodian != vault.org:
            raise LedgerError(f"record {record} is held by another custodian", Code.NOT_CUSTODIAN)
        if head.pseudonym != patient:
            raise LedgerError(f"record {record} belongs to another patient", Code.RECORD_PATIENT_MISMATCH)
        if head.status == "erased":
            raise LedgerError(f"record {record} was erased", Code.RECORD_ERASED)
        if head.type != "Encounter":
            raise LedgerError(f"record {record} is not an Encounter", Code.REQUEST_MALFORMED)
        salt, canonical = vault.open(record, head.version)
        anchor = records.get_anchor(view, record, head.version)
        if anchor is None or compute_commitment(salt, canonical) != anchor.commitment:
            from careledger.vault.store import VaultIntegrityError

            raise VaultIntegrityError(f"record {record} does not match its ledger anchor")
        return salt

    # -- insurer: a coverage ---------------------------------------------------------------------------------
    def prepare_coverage(self, request: SignedRequest) -> dict[str, Any]:
        """Validate a FHIR Coverage; answer the ``claims.register_coverage`` (or, naming ``coverage``,
        ``claims.update_coverage``) payload. Raises the request errors; UNKNOWN_SIGNER;
        CLAIM_NOT_INSURER; VAULT_NOT_HOSTED; PATIENT_UNKNOWN; REQUEST_MALFORMED; FHIR_INVALID /
        COVERAGE_INVALID; CLAIM_COVERAGE_UNKNOWN / CLAIM_COVERAGE_MISMATCH for an update of a coverage
        that is not this insurer's cover of this patient; COVERAGE_INVALID for an update that changes
        the plan or the start."""
        verified = self._verify_prepare(request, "coverage.prepare", claims_requests.CoveragePrepare)
        req, requester = verified.body, verified.requester
        view = self.ledger.view()
        self._officer(view, requester, req.custodian, admin=True, code=Code.CLAIM_NOT_INSURER)
        self.gateway.vault(req.custodian)
        self._patient(view, req.patient)
        value = from_python(req.resource)
        terms = parse_coverage(value, coverage=req.coverage or "", insurer=req.custodian, beneficiary=req.patient)
        salt = new_salt()
        commitment = coverage_commitment(value, salt)
        payload: dict[str, Any]
        if req.coverage is None:
            tx_type = "claims.register_coverage"
            payload = {"beneficiary": req.patient, "commitment": commitment, "end_day": terms.end_day,
                       "insurer": req.custodian, "order": terms.order, "plan": terms.plan,
                       "start_day": terms.start_day}
        else:
            tx_type = "claims.update_coverage"
            current = get_coverage(view, req.coverage)
            if current is None:
                raise LedgerError(f"no coverage {req.coverage}", Code.CLAIM_COVERAGE_UNKNOWN)
            if current.insurer != req.custodian or current.beneficiary != req.patient:
                raise LedgerError("the coverage is not this insurer's cover of this patient",
                                  Code.CLAIM_COVERAGE_MISMATCH)
            if (current.plan, current.start_day) != (terms.plan, terms.start_day):
                raise FhirInvalid("an update keeps the coverage's plan and start", operation_outcome(
                    [("business-rule", "plan and period.start must not change", "Coverage")]), Code.COVERAGE_INVALID)
            payload = {"commitment": commitment, "coverage": req.coverage, "end_day": terms.end_day,
                       "order": terms.order, "status": terms.status}
        pending = Pending(tx_type, req.custodian, requester, req.patient, payload,
                          [Document(coverage_record_id(commitment), "Coverage", canonical_bytes(value), salt)],
                          self.now_ms() + PENDING_TTL_MS)
        self._hold(commitment, pending)
        return self._answer(pending)

    # -- insurer: intake and adjudication ----------------------------------------------------------------------
    def _verify_read(self, read: ForwardedRead) -> tuple[SignedRequest, Verified[ReadRequest]]:
        """A forwarded read, checked here as the custodian's gateway will check it (signature for ``POST
        /v1/gateway/read``, freshness, a ``read``); its replay is the gateway's to refuse. Raises the
        request errors."""
        signed = read.signed()
        verified: Verified[ReadRequest] = verify_request(signed, self.ledger.chain_id, self.ledger.suite,
                                                         self.now_ms(), kinds={"read": ReadRequest},
                                                         window_ms=self.window_ms, parse=parse_exact_json)
        return signed, verified

    def intake(self, claim_id: str, reads: Sequence[ForwardedRead]) -> dict[str, Any]:
        """Fetch the claim and its encounter through the provider's gateway (the officer's signed ``read``,
        ``reads[0]``), check them, adjudicate, and answer the ``claims.adjudicate`` payload.

        ``reads[1]`` (optional, a secondary claim) reads the prior payer's ClaimResponse at its insurer.
        Raises CLAIM_UNKNOWN; the request errors; UNKNOWN_SIGNER; CLAIM_NOT_INSURER (not a claims officer
        of the claim's insurer); VAULT_NOT_HOSTED (this node hosts no vault of the insurer);
        CLAIM_BAD_TRANSITION (not awaiting adjudication); REQUEST_MALFORMED (a read that does not name
        the claim's record and encounter at the provider for HPAYMT); the gateway's refusals (consent,
        erasure, ...); :class:`IntakeRefused` (CLAIM_CONTENT_MISMATCH, FINGERPRINT_MISMATCH,
        COMMITMENT_MISMATCH) with its flag; CLAIM_PLAN_UNKNOWN; EDIT_TABLE_INVALID (a table this node
        does not hold); RECORD_UNKNOWN (an earlier adjudication's package is missing here)."""
        if not reads:
            raise LedgerError("the intake needs the officer's signed read of the claim", Code.REQUEST_MALFORMED)
        view = self.ledger.view()
        claim = get_claim(view, claim_id)
        if claim is None:
            raise LedgerError(f"no claim {claim_id}", Code.CLAIM_UNKNOWN)
        signed, verified = self._verify_read(reads[0])
        req = verified.body
        self._officer(view, verified.requester, claim.insurer, admin=False, code=Code.CLAIM_NOT_INSURER)
        insurer_vault = self.gateway.vault(claim.insurer)
        if claim.status not in ("submitted", "pended", "appealed"):
            raise LedgerError(f"claim {claim.id} is {claim.status}: not awaiting adjudication",
                              Code.CLAIM_BAD_TRANSITION)
        record = claim_record_id(claim.content_commitment)
        if (req.custodian, req.patient, req.purpose, req.emergency) != (claim.provider, claim.patient,
                                                                         PAYMENT_PURPOSE, False) \
                or sorted(set(req.records)) != sorted({record, claim.encounter}):
            raise LedgerError("the read must name the claim's record and its encounter at the provider, for "
                              "purpose HPAYMT", Code.REQUEST_MALFORMED)
        fetched = self._read(view, claim.provider, signed)
        claim_doc = self._checked(view, fetched, record, claim, FLAG_CONTENT_MISMATCH)
        encounter_doc = self._retained_encounter(view, claim, fetched)
        if encounter_doc is None:
            encounter_doc = self._checked(view, fetched, claim.encounter, claim, FLAG_ENCOUNTER_MISMATCH)
        content = self._received(claim, claim_doc, encounter_doc)
        retained = RetainedEncounter(claim.encounter, int(encounter_doc["version"]),
                                     bytes.fromhex(encounter_doc["salt"]), encounter_doc["canonical"].encode("utf-8"))
        enc = encounter_facts(claim.encounter, parse_exact(retained.canonical), retained.salt,
                              encounter_doc["commitment"])
        return self._adjudicate(view, claim, content, enc, retained, verified.requester, reads[1:], insurer_vault)

    def _retained_encounter(self, view: StateReader, claim: ClaimRecord,
                            fetched: dict[str, Any]) -> dict[str, Any] | None:
        """After the provider erased the encounter, a re-adjudication (an appeal) uses the copy the insurer
        retained with the claim's previous adjudication, if it still opens the (erased) anchor."""
        head = records.get_head(view, claim.encounter)
        released = any(r.get("record") == claim.encounter for r in fetched.get("records", ()))
        previous = latest_adjudication(view, claim)
        if released or head is None or head.status != "erased" or previous is None \
                or previous.result_commitment is None:
            return None
        kept = self.package(view, claim.insurer, previous.result_commitment).encounter
        anchor = records.get_anchor(view, claim.encounter, kept.version)
        if anchor is None or compute_commitment(kept.salt, kept.canonical) != anchor.commitment:
            return None
        return {"record": kept.record, "version": kept.version, "salt": kept.salt.hex(),
                "canonical": kept.canonical.decode("utf-8"), "commitment": anchor.commitment}

    def _read(self, view: StateReader, custodian: str, read: SignedRequest) -> dict[str, Any]:
        """The custodian's gateway's answer to a signed read: this node's own, or its node's over HTTP."""
        if self.gateway._hosts(custodian):
            return self.gateway.read(read)
        org = identity.get_org(view, custodian)
        url = None if org is None else org.api
        if not url:
            raise LedgerError(f"no node of {custodian!r} is known (its organisation names no api)",
                              Code.VAULT_NOT_HOSTED)
        return self.remote_read(str(url), read)

    @staticmethod
    def _checked(view: StateReader, fetched: dict[str, Any], record: str, claim: ClaimRecord,
                 flag: str) -> dict[str, Any]:
        """The fetched record, which must open its anchor on the ledger (else COMMITMENT_MISMATCH, flagged)."""
        found = next((r for r in fetched.get("records", ()) if r.get("record") == record), None)
        if found is None:
            raise LedgerError(f"the gateway did not release record {record}", Code.RECORD_UNKNOWN)
        anchor = records.get_anchor(view, record, int(found["version"]))
        try:
            opened = compute_commitment(bytes.fromhex(found["salt"]), found["canonical"].encode("utf-8"))
        except (ValueError, TypeError, AttributeError):
            opened = None
        if anchor is None or opened != anchor.commitment:
            raise IntakeRefused(f"record {record} does not match its ledger anchor", Code.COMMITMENT_MISMATCH,
                                flag, claim.id)
        return {**found, "commitment": anchor.commitment}

    @staticmethod
    def _received(claim: ClaimRecord, claim_doc: dict[str, Any], encounter_doc: dict[str, Any]) -> ClaimContent:
        """The claim content, checked against the ledger (the checks of :mod:`careledger.claims.intake`)."""
        try:
            content = parse_claim(parse_exact(claim_doc["canonical"]))
            check_received_claim(claim, ReceivedClaim(content, bytes.fromhex(claim_doc["salt"])),
                                 bytes.fromhex(encounter_doc["salt"]))
        except FhirInvalid:
            raise IntakeRefused("the claim record is not an adjudicable claim", Code.CLAIM_CONTENT_MISMATCH,
                                FLAG_CONTENT_MISMATCH, claim.id) from None
        except LedgerError as exc:
            kind = FLAG_OF.get(type(exc))
            if kind is None:
                raise
            raise IntakeRefused(exc.message, exc.code, kind, claim.id) from None
        return content

    def _adjudicate(self, view: StateReader, claim: ClaimRecord, content: ClaimContent, enc: Any,
                    retained: RetainedEncounter, officer: str, prior_reads: Sequence[ForwardedRead],
                    vault: Vault) -> dict[str, Any]:
        cov = get_coverage(view, claim.coverage)
        assert cov is not None
        terms = CoverageTerms(cov.id, cov.insurer, cov.beneficiary, cov.plan, cov.start_day, cov.end_day, cov.order,
                              "active" if cov.status == "active" else "cancelled")
        plan_rec = plan_in_force(view, claim.insurer, cov.plan, claim.start_day)
        if plan_rec is None:
            raise LedgerError(f"plan {cov.plan} has no version in force for the service", Code.CLAIM_PLAN_UNKNOWN)
        plan = PlanRules.from_document(plan_rec.insurer, plan_rec.plan, plan_rec.version, plan_rec.effective_day,
                                       plan_rec.rules)
        table = None if plan.edit_set is None else table_in_force(view, plan.edit_set, claim.start_day)
        tables = None if table is None else self.tables.get(table.name, table.version, table.digest)
        accumulators, accumulators_from = self._accumulators(view, claim, vault)
        facts = LedgerFacts(claim.id, claim.provider, day_of_ms(claim.submitted_ms), enc, accumulators,
                            self._prior_lines(view, claim, vault), self._prior_payer(view, claim, prior_reads,
                                                                                     content.currency))
        result = adjudicate(content, terms, plan, tables, facts)
        salt = new_salt()
        input_doc = adjudication_input(content, terms, plan, tables, facts)
        result_commitment = result.commitment(salt)
        package = AdjudicationPackage(claim.id, salt, input_doc, result, retained)
        today = date_of(day_of_ms(self.now_ms()))
        # built from validated inputs by code whose every path the tests validate with fhir.resources: not
        # validated again here (it would be two thirds of the desk's time per claim)
        response = claim_response(result, content, patient=claim.patient, provider=claim.provider, created=today,
                                  validate=False)
        eob = explanation_of_benefit(result, content, patient=claim.patient, provider=claim.provider, created=today,
                                     received_day=facts.received_day, validate=False)
        payload = {"accumulators_from": accumulators_from, "claim": claim.id,
                   "content_commitment": claim.content_commitment,
                   "edit_set": None if tables is None else {"name": tables.name, "version": tables.version},
                   "input_commitment": compute_commitment(salt, codec.encode(input_doc)),
                   "lines": result.ledger_lines(), "outcome": result.outcome, "plan_version": plan.version,
                   "result_commitment": result_commitment}
        ids = adjudication_records(result_commitment)
        documents = [Document(ids["package"], "Binary", canonical_bytes(from_python(package.binary())), new_salt()),
                     Document(ids["response"], "ClaimResponse", canonical_bytes(response), new_salt()),
                     Document(ids["eob"], "ExplanationOfBenefit", canonical_bytes(eob), new_salt())]
        pending = Pending("claims.adjudicate", claim.insurer, officer, claim.patient, payload, documents,
                          self.now_ms() + PENDING_TTL_MS)
        self._hold(result_commitment, pending)
        return {**self._answer(pending), "outcome": result.outcome, "totals": result.totals(),
                "currency": result.currency, "flags": list(result.flags), "balanced": result.balances(),
                "lines": [{"sequence": x.sequence, "outcome": x.outcome, "codes": x.codes(),
                           "submitted": x.submitted, "benefit": x.benefit} for x in result.lines]}

    def package(self, view: StateReader, insurer: str, result_commitment: str) -> AdjudicationPackage:
        """An adjudication package this node's vault of ``insurer`` holds (RECORD_UNKNOWN otherwise)."""
        record = adjudication_record_id(result_commitment, "package")
        with self._lock:
            cached = self._packages.get(record)
        if cached is not None:
            return cached
        head = records.get_head(view, record)
        if head is None or head.custodian != insurer or head.status != "active":
            raise PackageUnavailable(f"the adjudication package {record} is not held by {insurer}")
        _salt, canonical = self.gateway.vault(insurer).open(record, head.version)
        package = AdjudicationPackage.from_binary(parse_exact(canonical))
        with self._lock:
            self._packages[record] = package
            while len(self._packages) > 4096:
                self._packages.popitem(last=False)
        return package

    def _accumulators(self, view: StateReader, claim: ClaimRecord,
                      vault: Vault) -> tuple[Accumulators, dict[str, Any] | None]:
        """The coverage's accumulators (from its last counted adjudication), less this claim's previous
        counted result on a re-adjudication; and the ``accumulators_from`` the payload names."""
        head = get_accumulator_head(view, claim.coverage)
        if head is None:
            return Accumulators(claim.coverage), None
        last = get_adjudication(view, head.claim, head.n)
        assert last is not None and last.result_commitment is not None
        acc = self.package(view, claim.insurer, last.result_commitment).result.accumulators
        previous = latest_adjudication(view, claim)
        if previous is not None and previous.by != "ledger" and previous.outcome != "pended" \
                and previous.result_commitment is not None:
            acc = acc.without(self.package(view, claim.insurer, previous.result_commitment).result)
        return acc, {"claim": head.claim, "n": head.n}

    def _prior_lines(self, view: StateReader, claim: ClaimRecord, vault: Vault) -> tuple[PriorLine, ...]:
        """Approved lines of this patient's other live claims from this provider to this insurer."""
        out: list[PriorLine] = []
        for other in claims_of_patient(view, claim.patient):
            if other.id in (claim.id, claim.replaces) or (other.insurer, other.provider) != (claim.insurer,
                                                                                             claim.provider):
                continue
            if other.status not in ("adjudicated", "paid", "readjudicated", "appealed"):
                continue
            latest = latest_adjudication(view, other)
            if latest is None or latest.by == "ledger" or latest.outcome not in ("approved", "partial") \
                    or latest.result_commitment is None:
                continue
            package = self.package(view, claim.insurer, latest.result_commitment)
            out.extend(paid_lines(package.content(), package.result, other.id))
        return tuple(sorted(out, key=lambda p: (p.service_day, p.system, p.code, p.claim, p.modifiers, p.units)))

    def _prior_payer(self, view: StateReader, claim: ClaimRecord, reads: Sequence[ForwardedRead],
                     currency: str) -> Any:
        """The prior payer's per-line payments, from its ClaimResponse read through its gateway (None
        without such a read: the claim is then denied OA-22, bill the primary first)."""
        if claim.prior_payer_claim is None or not reads:
            return None
        primary = get_claim(view, claim.prior_payer_claim)
        latest = None if primary is None else latest_adjudication(view, primary)
        if primary is None or latest is None or latest.result_commitment is None or latest.outcome == "pended":
            return None
        record = adjudication_record_id(latest.result_commitment, "response")
        signed, verified = self._verify_read(reads[0])
        if verified.body.custodian != primary.insurer or list(verified.body.records) != [record]:
            raise LedgerError("the second read must name the prior payer's ClaimResponse at its insurer",
                              Code.REQUEST_MALFORMED)
        fetched = self._read(view, primary.insurer, signed)
        doc = self._checked(view, fetched, record, claim, FLAG_CONTENT_MISMATCH)
        return prior_payer_from_response(parse_exact(doc["canonical"]), primary.id, primary.insurer, currency)

    # -- commit: anchor the documents, then the transaction ----------------------------------------------------
    def commit(self, raw: bytes) -> Committed:
        """Submit a claims transaction prepared here: anchor its documents, then the transaction.

        Raises the transaction's decoding errors; REQUEST_MALFORMED (not a claims transaction this desk
        prepares, its payload is not the one prepared, or another key signed it); NOT_FOUND (nothing
        prepared for it here, or it expired: prepare again); NONCE_REPLAYED / NONCE_OUT_OF_ORDER (the
        prepared documents are kept: sign it again with the signer's next nonce); every admission check
        and contract refusal of the transaction, run against committed state before anything is written;
        the anchoring's errors (then nothing is anchored); TIMEOUT. Should the node refuse the
        transaction after its documents were anchored (another transaction of the same signer got in
        first), the refusal is answered and the documents stay anchored, unreferenced."""
        tx = decode_tx(raw, self.ledger.chain_id, self.ledger.suite)
        field_name = COMMIT_TYPES.get(tx.type)
        key = tx.payload.get(field_name) if field_name else None
        if not isinstance(key, str):
            raise LedgerError(f"this endpoint takes {', '.join(COMMIT_TYPES)} transactions", Code.REQUEST_MALFORMED)
        pending = self._take(key)
        if pending is None or pending.tx_type != tx.type:
            raise LedgerError("nothing was prepared for this transaction on this node, or it expired: prepare "
                              "again", Code.NOT_FOUND)
        if tx.payload != pending.payload or tx.signer_hex != pending.author:
            self._hold(key, pending)
            raise LedgerError("the transaction must carry the prepared payload, signed by the key that prepared it",
                              Code.REQUEST_MALFORMED)
        try:
            check_nonce(self.ledger.next_nonce(tx.signer_hex), tx.nonce)
        except LedgerError:
            self._hold(key, pending)  # sign it again with the right nonce
            raise
        self.dry_run(raw)
        vault = self.gateway.vault(pending.org)
        sealed = [seal_with_salt(vault, d.record, 1, pending.pseudonym, d.type, d.canonical, d.salt)
                  for d in pending.documents]
        keys = [(s.record, s.version) for s in sealed]
        vault.put_pending(sealed)
        try:
            anchored = self.gateway._anchor(vault, pending.author, sealed)
        except BaseException:
            vault.discard(keys)
            self._hold(key, pending)
            raise
        vault.mark_anchored(keys)
        anchor_tx = anchored[0][1]  # at most 3 documents: one records.anchor transaction
        receipt = self.gateway._receipt(self.ledger.submit(raw))
        return Committed(receipt.tx, self.ledger.tx_height(bytes.fromhex(receipt.tx)), receipt,
                         [{"record": s.record, "type": s.type, "commitment": s.commitment, "anchor_tx": anchor_tx}
                          for s in sealed])

    def dry_run(self, raw: bytes) -> None:
        """Run a transaction against committed state without writing anything: the stateless checks, the
        signer, the contract's authorisation and rules. Raises what the node or the contract would."""
        checked = check_stateless(self.chain, raw)
        view = self.ledger.view()
        signer = check_signer(view, checked)
        env = BlockEnv(self.chain.chain_id, self.engine.head.height + 1, self.now_ms(), "")
        ctx = TxContext(env=env, tx_hash=checked.tx.hash_hex, index=0, signer=signer, params=self.chain.params)
        state = Overlay(view)
        checked.handler.authorize(state, ctx, checked.payload)
        checked.handler.apply(state, ctx, checked.payload)
