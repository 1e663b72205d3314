"""The research side of a node's gateway: releases built, anchored and sealed, linkage, answers, the patient's log.

A :class:`ResearchGateway` works beside the records :class:`~careledger.vault.gateway.Gateway` of the
same node, over the same vaults and ledger port: one :class:`~careledger.research.custodian.ResearchDesk`
and one :class:`~careledger.research.deliveries.DeliveryStore` per custodian hosted here. It writes to
the ledger only with the custodian's gateway key (an enrolled data steward), through the records
gateway's submission (one nonce sequence per key).

What it does, each step refusing with a stable code:

* **Linkage** (:meth:`link`): a patient's linkage statement, self-authenticating (signed by her
  registered key and her study key), is verified and kept by the custodian it is handed to.
Every request to it is a signed request (docs/protocol.md section 4.3) whose body is one of the
research kinds (:mod:`.requests`), checked by :func:`careledger.vault.requests.verify_request`.

* **A release** (:meth:`release`, a signed ``research-release`` request from an admin or data
  steward of the custodian): the recipient is checked first (an active researcher or admin of the
  study's sponsor: RELEASE_RECIPIENT_INVALID); the desk builds the release from the committed view
  (consenting, linked patients only; Safe Harbor, then k-anonymity; a refusal carries its report);
  the gateway anchors ``research.release`` and, for a snapshot over 1,000 patients,
  ``research.release_subjects``, and waits for each to commit. A consent revoked between the view and
  the anchor makes the contract refuse the first transaction (RESEARCH_CONSENT_NOT_COVERING): the
  release is built again from a newer view, up to :data:`ATTEMPTS` times. Then the report is signed
  and the files sealed to the recipient (:mod:`.envelope`) and kept for delivery.
* **Delivery** (:meth:`package`): the sealed package, to its recipient only (UNAUTHORISED otherwise).
* **Aggregate answers** (:meth:`answer_query`): on every committed ``research.query`` (and on a
  data steward's request), each custodian hosted here whose gateway key may anchor answers computes
  its answer over its consenting patients (cells under 11 withheld), keeps it, and anchors its hash
  (``research.answer``); :meth:`results` serves it to the study's researchers.
* **The patient's research log** (:meth:`log`): the releases that included one study pseudonym and
  its consents, to the holder of the study key (or to the patient or her delegate showing a linkage
  statement addressed to a custodian hosted here).

Per-patient facts for aggregate answers are cached per custodian, keyed by the patient's record
versions held there and the day (a new version, an erasure or a new day recomputes them).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from careledger.contracts import identity
from careledger.contracts.base import Signer
from careledger.contracts.consent import acts_for_patient
from careledger.contracts.records import is_custodian_signer, patient_index
from careledger.contracts.research import (
    StudyRecord,
    compute_study_pseudonym,
    consents_of,
    get_answer,
    get_query,
    get_release,
    get_study,
    seen_by,
    verify_linkage_statement,
)
from careledger.contracts.research.handlers import RELEASE_ROLES
from careledger.core.block import Receipt
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.state import StateReader
from careledger.research.aggregate import PatientFacts, answer_hash, extract_facts
from careledger.research.custodian import ResearchDesk
from careledger.research.deliveries import FILE_NAME, DeliveryStore
from careledger.research.envelope import pack_release
from careledger.research.release import BuiltRelease, sign_report
from careledger.research.requests import (
    AnswerRequest,
    CustodianRequest,
    LinkageStatement,
    LogRequest,
    PackageRequest,
    ReleaseRequest,
    ResultsRequest,
)
from careledger.vault.gateway import Gateway
from careledger.vault.requests import FRESHNESS_MS, ReplayGuard, SignedRequest, Verified, verify_request

C = TypeVar("C", bound=CustodianRequest)

log = logging.getLogger("careledger.research")
DAY_MS = 86_400_000
ATTEMPTS = 3
"""How many times a release is built again when a consent it relied on was revoked before it anchored."""


def day_of(ms: int) -> int:
    """Days since 1970-01-01 (UTC) of a time in ms."""
    return ms // DAY_MS


def date_text(ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of a time in ms."""
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


@dataclass
class _Custodian:
    """One hosted custodian's research state."""

    desk: ResearchDesk
    deliveries: DeliveryStore
    guard: ReplayGuard
    release_lock: threading.Lock = field(default_factory=threading.Lock)
    answer_lock: threading.Lock = field(default_factory=threading.Lock)
    facts: dict[str, tuple[tuple[Any, ...], PatientFacts | None]] = field(default_factory=dict)

    def close(self) -> None:
        self.desk.linkages.close()
        self.deliveries.close()


class ResearchGateway:
    """The research desks of every custodian hosted by one node (see the module docstring)."""

    def __init__(self, gateway: Gateway, *, auto_answer: bool = True, clock: Callable[[], float] | None = None,
                 window_ms: int = FRESHNESS_MS) -> None:
        self.gateway = gateway
        self.ledger = gateway.ledger
        self.auto_answer = auto_answer
        self.clock = clock or gateway.clock
        self.window_ms = window_ms
        self._custodians: dict[str, _Custodian] = {}
        self._lock = threading.Lock()
        self._log_guard = ReplayGuard(window_ms)
        self._queries: queue.Queue[str] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    @classmethod
    def open(cls, gateway: Gateway, **kw: Any) -> ResearchGateway:
        """A research gateway subscribed to the ledger's commits (to answer queries as they commit)."""
        research = cls(gateway, **kw)
        research.ledger.on_commit(research._on_commit)
        return research

    def close(self) -> None:
        """Stop answering and close the desks' stores (the vaults belong to the records gateway)."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
            custodians, self._custodians = list(self._custodians.values()), {}
        if worker is not None:
            self._queries.put("")
            worker.join(timeout=30)
        for c in custodians:
            c.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def custodian(self, org: str) -> _Custodian:
        """The research state of a custodian hosted here; VAULT_NOT_HOSTED otherwise."""
        vault = self.gateway.vault(org)
        with self._lock:
            c = self._custodians.get(org)
            if c is None:
                c = self._custodians[org] = _Custodian(
                    ResearchDesk(vault, self.ledger.chain_id), DeliveryStore(vault.directory / FILE_NAME),
                    ReplayGuard(self.window_ms, vault.remember_request))
            return c

    def _verify(self, request: SignedRequest, kind: str, model: type[C]) -> Verified[C]:
        """A checked signed request to a custodian whose body is a ``kind`` (``model``;
        :func:`careledger.vault.requests.verify_request`), remembered by that custodian's vault once it is
        found here, so that a replay is refused across restarts. Raises the request errors
        (MISSING_SIGNATURE, BAD_SIGNATURE, REQUEST_STALE, REQUEST_MALFORMED, REQUEST_REPLAYED) and
        VAULT_NOT_HOSTED."""
        now = self.now_ms()
        verified: Verified[C] = verify_request(request, self.ledger.chain_id, self.ledger.suite, now,
                                               kinds={kind: model}, window_ms=self.window_ms)
        self.custodian(verified.body.custodian).guard.check_and_remember(verified.hash_bytes, verified.time_ms, now)
        return verified

    def _member(self, view: StateReader, key: str) -> Signer:
        signer = identity.resolve_signer(view, key)
        if signer.kind == "unregistered":
            raise AuthError("the requester is not a member of the consortium", Code.UNKNOWN_SIGNER)
        if not signer.active:
            raise AuthError("the requester's key is revoked", Code.SIGNER_REVOKED)
        return signer

    def _require_steward(self, view: StateReader, key: str, org: str) -> None:
        """NOT_RELEASE_CUSTODIAN unless ``key`` is an active admin or data steward of ``org``."""
        if not is_custodian_signer(identity.resolve_signer(view, key), org, RELEASE_ROLES):
            raise LedgerError(f"only an admin or data steward of {org!r} does this", Code.NOT_RELEASE_CUSTODIAN)

    # -- ledger writes (the records gateway's submission: one nonce sequence per gateway key) ----------------
    def _send(self, org: str, tx_type: str, payload: dict[str, Any]) -> Any:
        """Admit ``payload`` signed by ``org``'s gateway key; the future of its receipt. Through the records
        gateway's own submission, which serialises each key's nonces (its audit entries and anchors use
        the same key)."""
        return self.gateway._submit(self.gateway.vault(org).gateway_key, tx_type, payload)[1]

    @staticmethod
    def _settle(fut: Any, tx_type: str) -> Receipt:
        """The committed receipt of ``fut``; TIMEOUT, or the contract's code when it refused the transaction."""
        receipt = Gateway._receipt(fut)
        if receipt.code:
            raise LedgerError(receipt.message or f"{tx_type} refused", Code(receipt.code))
        return receipt

    def _commit(self, org: str, tx_type: str, payload: dict[str, Any]) -> Receipt:
        return self._settle(self._send(org, tx_type, payload), tx_type)

    # -- linkage ----------------------------------------------------------------------------------------------
    def link(self, custodian: str, statement: Any) -> dict[str, Any]:
        """Keep a patient's linkage statement at ``custodian``. Raises VAULT_NOT_HOSTED, LINKAGE_INVALID,
        LINKAGE_UNKNOWN. Answers what was linked (never the patient's pseudonym)."""
        link = self.custodian(custodian).desk.accept_linkage(self.ledger.view(), statement)
        return {"custodian": custodian, "scope": link.scope, "subject": link.subject, "target": link.target}

    # -- releases ---------------------------------------------------------------------------------------------
    def release(self, request: SignedRequest) -> dict[str, Any]:
        """Build, anchor and seal a release for a signed ``research-release`` request.

        Raises the request errors, VAULT_NOT_HOSTED, UNKNOWN_SIGNER, SIGNER_REVOKED, NOT_RELEASE_CUSTODIAN
        (the requester, or the custodian's gateway key, is not an admin or data steward of it),
        STUDY_UNKNOWN, STUDY_CLOSED, RELEASE_RECIPIENT_INVALID, the kernel's refusals
        (:class:`~careledger.research.release.ReleaseRefused`: DEID_IDENTIFIER_LEFT, DEID_K_NOT_MET,
        DEID_L_NOT_MET, DEID_EMPTY_RELEASE, with a ``report``), and the contract's refusals of the anchor.
        """
        verified = self._verify(request, "research-release", ReleaseRequest)
        req, requester = verified.body, verified.requester
        c = self.custodian(req.custodian)
        view = self.ledger.view()
        self._member(view, requester)
        self._require_steward(view, requester, req.custodian)
        key = c.desk.vault.gateway_key
        if not is_custodian_signer(identity.resolve_signer(view, key.public_hex), req.custodian, RELEASE_ROLES):
            raise LedgerError(f"the gateway key of {req.custodian!r} is not enrolled as its data steward",
                              Code.NOT_RELEASE_CUSTODIAN)
        study = self._open_study(view, req.study)
        self._check_recipient(view, study, req.recipient)
        with c.release_lock:
            built, release_id, receipts = self._build_and_anchor(c, req.study, req.recipient)
        report = built.report.to_json()
        signature = sign_report(key, self.ledger.chain_id, built.report)
        package = pack_release(release_id, built.files, report, signature, req.recipient, signer=key.public_hex)
        c.deliveries.put_package(release_id, req.recipient, package.to_json())
        last = receipts[-1]
        return {"release": release_id, "custodian": req.custodian, "study": req.study, "recipient": req.recipient,
                "height": self.ledger.tx_height(bytes.fromhex(last.tx)), "txs": [r.tx for r in receipts],
                "report": report, "signature": signature, "signer": key.public_hex,
                "generalisation": built.generalisation}

    def _open_study(self, view: StateReader, study_id: str) -> StudyRecord:
        """The study, open now (active and within its period, as the contract requires at the anchor's
        block): STUDY_UNKNOWN, STUDY_CLOSED before any work."""
        study = get_study(view, study_id)
        if study is None:
            raise LedgerError(f"no study {study_id}", Code.STUDY_UNKNOWN)
        if not study.is_open_at(self.now_ms()):
            raise LedgerError(f"study {study_id} is not open (closed, or outside its period)", Code.STUDY_CLOSED)
        return study

    @staticmethod
    def _check_recipient(view: StateReader, study: StudyRecord, recipient: str) -> None:
        """The contract's recipient rule, checked before the (long) build: RELEASE_RECIPIENT_INVALID."""
        r = identity.resolve_signer(view, recipient)
        if not r.active or r.org != study.sponsor or not (r.kind == "admin" or r.has_role("researcher")):
            raise LedgerError("the recipient must be an active researcher of the study's sponsor",
                              Code.RELEASE_RECIPIENT_INVALID)

    def _build_and_anchor(self, c: _Custodian, study: str, recipient: str
                          ) -> tuple[BuiltRelease, str, list[Receipt]]:
        for attempt in range(1, ATTEMPTS + 1):
            view = self.ledger.view()
            built = c.desk.prepare_release(view, study, recipient, day_of(self.now_ms()))
            try:
                first = self._commit(c.desk.org, "research.release", c.desk.release_payload(built))
            except LedgerError as exc:
                if exc.code == Code.RESEARCH_CONSENT_NOT_COVERING and attempt < ATTEMPTS:
                    log.info("a consent changed while release of %s was built; building again", study)
                    continue
                raise
            release_id = str(first.result["release"])
            receipts = [first]
            pending = [self._send(c.desk.org, "research.release_subjects", p)
                       for p in c.desk.subject_payloads(built, release_id)]
            for fut in pending:
                receipts.append(self._settle(fut, "research.release_subjects"))
            return built, release_id, receipts
        raise AssertionError("unreachable")  # pragma: no cover

    def package(self, request: SignedRequest) -> dict[str, Any]:
        """The sealed package of a release, for a signed ``research-package`` request of its recipient.

        Raises the request errors, VAULT_NOT_HOSTED, UNKNOWN_SIGNER, SIGNER_REVOKED, RELEASE_UNKNOWN (not
        anchored, or not delivered from here) and UNAUTHORISED (the requester is not the recipient)."""
        verified = self._verify(request, "research-package", PackageRequest)
        req, requester = verified.body, verified.requester
        c = self.custodian(req.custodian)
        view = self.ledger.view()
        self._member(view, requester)
        anchor = get_release(view, req.release)
        held = c.deliveries.package(req.release)
        if anchor is None or anchor.custodian != req.custodian or held is None:
            raise LedgerError(f"release {req.release} is not delivered by {req.custodian} here", Code.RELEASE_UNKNOWN)
        recipient, package = held
        if requester != recipient or requester != anchor.recipient:
            raise LedgerError("only the release's recipient receives its package", Code.UNAUTHORISED)
        return {"release": req.release, "custodian": req.custodian, "status": anchor.status, "package": package}

    # -- aggregate queries ------------------------------------------------------------------------------------
    def answer(self, request: SignedRequest) -> dict[str, Any]:
        """Answer a query now, for a signed ``research-answer`` request of an admin or data steward of the
        custodian (the gateway answers committed queries by itself too). Raises the request errors,
        VAULT_NOT_HOSTED, UNKNOWN_SIGNER, SIGNER_REVOKED, NOT_RELEASE_CUSTODIAN, and those of
        :meth:`answer_query`."""
        verified = self._verify(request, "research-answer", AnswerRequest)
        req, requester = verified.body, verified.requester
        view = self.ledger.view()
        self._member(view, requester)
        self._require_steward(view, requester, req.custodian)
        return self.answer_query(req.custodian, req.query)

    def answer_query(self, org: str, query_id: str) -> dict[str, Any]:
        """``{answer, anchor}``: ``org``'s answer to a committed query, computed, kept and anchored once.

        Raises VAULT_NOT_HOSTED, QUERY_UNKNOWN, STUDY_UNKNOWN, QUERY_ANSWERED (anchored, but the answer is
        not held here: another node of the custodian answered it), NOT_RELEASE_CUSTODIAN (the gateway
        key may not anchor answers) and any refusal of ``research.answer``."""
        c = self.custodian(org)
        with c.answer_lock:
            view = self.ledger.view()
            anchored = get_answer(view, query_id, org)
            held = c.deliveries.answer(query_id)
            if anchored is not None:
                if held is None or answer_hash(held) != anchored.answer_hash:
                    raise LedgerError(f"{org} answered {query_id} elsewhere", Code.QUERY_ANSWERED)
                return {"answer": held, "anchor": anchored.to_json()}
            query = get_query(view, query_id)
            if query is None:
                raise LedgerError(f"no query {query_id}", Code.QUERY_UNKNOWN)
            study = get_study(view, query.study)
            if study is None:
                raise LedgerError(f"no study {query.study}", Code.STUDY_UNKNOWN)
            today = day_of(self.now_ms())
            answer, payload = c.desk.answer(view, query_id, today, facts=self._facts(c, view, study, today))
            c.deliveries.put_answer(query_id, answer)  # kept first: an anchored answer is always servable
            self._commit(org, "research.answer", payload)
            anchored = get_answer(self.ledger.view(), query_id, org)
            assert anchored is not None
            return {"answer": answer, "anchor": anchored.to_json()}

    def _facts(self, c: _Custodian, view: StateReader, study: StudyRecord, day: int) -> list[PatientFacts]:
        """The consenting patients' facts at this custodian, from the cache when their records are unchanged."""
        out = []
        for link, _ in c.desk.consenting(view, study):
            held = tuple((record, e.version) for record, e in patient_index(view, link.patient)
                         if e.custodian == c.desk.org and e.status == "active")
            stamp = (day, held)
            cached = c.facts.get(link.patient)
            if cached is None or cached[0] != stamp:
                facts = extract_facts(link.patient, c.desk.records_of(view, link.patient), c.desk.config, day)
                cached = c.facts[link.patient] = (stamp, facts)
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def results(self, request: SignedRequest) -> dict[str, Any]:
        """A custodian's anchored answer, for a signed ``research-results`` request of an admin or researcher
        of the study's sponsor. Raises the request errors, VAULT_NOT_HOSTED, UNKNOWN_SIGNER, SIGNER_REVOKED,
        QUERY_UNKNOWN, NOT_STUDY_SPONSOR and NOT_FOUND (not answered yet here)."""
        verified = self._verify(request, "research-results", ResultsRequest)
        req, requester = verified.body, verified.requester
        c = self.custodian(req.custodian)
        view = self.ledger.view()
        signer = self._member(view, requester)
        query = get_query(view, req.query)
        if query is None:
            raise LedgerError(f"no query {req.query}", Code.QUERY_UNKNOWN)
        study = get_study(view, query.study)
        if study is None or signer.org != study.sponsor or not (
                signer.kind == "admin" or signer.has_role("researcher")):
            raise LedgerError("only a researcher of the study's sponsor reads its answers", Code.NOT_STUDY_SPONSOR)
        anchored = get_answer(view, req.query, req.custodian)
        held = c.deliveries.answer(req.query)
        if anchored is None or held is None or answer_hash(held) != anchored.answer_hash:
            raise LedgerError(f"{req.custodian} has not answered {req.query} here (yet)", Code.NOT_FOUND)
        return {"answer": held, "anchor": anchored.to_json()}

    def _on_commit(self, height: int, events: list[dict[str, Any]]) -> None:
        """Hand every query committed in this block to the answering worker (never work on the commit path)."""
        if not self.auto_answer:
            return
        queries = [str(e["attrs"]["query"]) for e in events if e["type"] == "research_query"]
        if not queries:
            return
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._answerer, name="research-answers", daemon=True)
                self._worker.start()
        for q in queries:
            self._queries.put(q)

    def _answerer(self) -> None:
        while True:
            query = self._queries.get()
            if not query:
                return
            for org in sorted(self.gateway.vaults):
                try:
                    view = self.ledger.view()
                    key = self.gateway.vault(org).gateway_key.public_hex
                    if not is_custodian_signer(identity.resolve_signer(view, key), org, RELEASE_ROLES):
                        continue  # this vault's gateway key may not anchor answers
                    if get_answer(view, query, org) is None:
                        self.answer_query(org, query)
                except LedgerError as exc:
                    log.warning("custodian %s could not answer a query: %s", org, exc.code.name)
                except Exception:
                    log.exception("answering a query failed")

    # -- the patient's research log ---------------------------------------------------------------------------
    def log(self, request: SignedRequest) -> dict[str, Any]:
        """One study pseudonym's research log (releases that included it, with their study and date) and
        consents, for a signed ``research-log`` request.

        Signed by the study key alone, it names nothing else. Signed by a registered key with
        ``linkage``, the statement must be addressed to a custodian this node hosts (it is shown to that
        custodian's node, as every linkage statement is shown to its audience alone), verify on this
        chain, and the requester must be its patient or her active delegate. Raises the request errors,
        NOT_PATIENT_OR_DELEGATE (a registered key without a linkage statement: it names no study pseudonym
        it may read), UNKNOWN_SIGNER (a study key, unregistered, with one),
        VAULT_NOT_HOSTED (a statement addressed to an organisation whose vault this node does not host),
        LINKAGE_INVALID, UNKNOWN_SIGNER, SIGNER_REVOKED, NOT_PATIENT_OR_DELEGATE."""
        now = self.now_ms()
        verified: Verified[LogRequest] = verify_request(request, self.ledger.chain_id, self.ledger.suite, now,
                                                        kinds={"research-log": LogRequest}, guard=self._log_guard,
                                                        window_ms=self.window_ms)
        req, requester = verified.body, verified.requester
        view = self.ledger.view()
        signer = identity.resolve_signer(view, requester)
        if req.linkage is None:
            if signer.kind != "unregistered":
                raise LedgerError("a registered key reads a research log only as the patient or her delegate, "
                                  "showing her linkage statement; a study key signs alone",
                                  Code.NOT_PATIENT_OR_DELEGATE)
            subject = compute_study_pseudonym(requester)
        else:
            if signer.kind == "unregistered":
                raise AuthError("a linkage statement is shown by the patient's or her delegate's registered key; "
                                "a study key reads its own log without one", Code.UNKNOWN_SIGNER)
            link = verify_linkage_statement(req.linkage.to_json(), self.ledger.chain_id,
                                            self._hosted_audience(req.linkage))
            self._member(view, requester)
            if acts_for_patient(view, signer, link.patient, self.now_ms()) is None:
                raise LedgerError("only the patient or her delegate reads her research log",
                                  Code.NOT_PATIENT_OR_DELEGATE)
            subject = link.subject
        return research_log_view(view, subject)

    def _hosted_audience(self, linkage: LinkageStatement) -> str:
        """The audience a linkage statement names, when this node hosts its vault (a statement is accepted
        only by the organisation it is addressed to); VAULT_NOT_HOSTED otherwise: ask that custodian's
        node."""
        return self.gateway.vault(linkage.statement.audience).org


def research_log_view(view: StateReader, subject: str) -> dict[str, Any]:
    """The research log of one study pseudonym: its consents and the releases that included it, oldest
    first, each as a line of the patient's access log."""
    releases = []
    titles: dict[str, str] = {}
    for e in seen_by(view, subject):
        if e.study not in titles:
            study = get_study(view, e.study)
            titles[e.study] = study.title if study is not None else ""
        releases.append({"release": e.release, "study": e.study, "title": titles[e.study], "custodian": e.custodian,
                         "height": e.height, "time_ms": e.time_ms, "date": date_text(e.time_ms),
                         "text": f"de-identified data released to study {e.study} on {date_text(e.time_ms)}"})
    consents = [c.to_json() for c in consents_of(view, subject)]
    return {"subject": subject, "consents": consents, "releases": releases}


__all__ = ["ATTEMPTS", "ResearchGateway", "date_text", "day_of", "research_log_view"]
