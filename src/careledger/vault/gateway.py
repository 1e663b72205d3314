"""The custodian's access gateway: store and anchor, consent-checked reads with audit, erasure.

One gateway serves every vault its node hosts (one per custodian organisation). It talks to the
ledger only through a :class:`~careledger.vault.ledger.LedgerPort`, so it runs unchanged over the
embedded node or a CometBFT-backed one.

Reads (``read`` requests, see :mod:`.requests`):

1. the signed request is checked: signature (domain ``request``, this chain, method, path and
   body), freshness (±5 min) and novelty (the vault remembers request hashes): BAD_SIGNATURE,
   REQUEST_STALE, REQUEST_REPLAYED are refused without an audit entry (nobody trustworthy to
   attribute them to);
2. an unregistered requester is refused (UNKNOWN_SIGNER), a record this custodian does not hold is
   refused (RECORD_UNKNOWN / NOT_CUSTODIAN) — neither concerns a patient of this vault;
3. every other outcome is decided per record by :func:`careledger.contracts.consent.evaluate_access`
   over *committed* ledger state, then the version is decrypted and its commitment re-checked
   against the anchor (VAULT_INTEGRITY on any mismatch, nothing returned);
4. one ``audit.record`` transaction, signed by the vault's gateway key, records every granted,
   denied and emergency outcome — under the pseudonym of the patient who owns the record — and is
   *committed* to the ledger before any content leaves the gateway (``audit_wait="committed"``, the
   default; ``"admitted"`` releases once the node's mempool has admitted it, a block interval sooner,
   at the risk of losing the entry if the node crashes in between);
5. granted records are returned with their salt, so the requester can recompute the commitment;
   if nothing was granted, the first denial's code is the answer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.contracts import identity
from careledger.contracts.audit import MAX_ENTRIES_PER_TX
from careledger.contracts.consent import AccessDenied, evaluate_access
from careledger.contracts.records import (
    MAX_ANCHORS_PER_TX,
    WRITER_ROLES,
    get_anchor,
    get_head,
    is_custodian_signer,
    require_patient_active,
)
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import AuthError, Code, LedgerError, TxFailed
from careledger.core.tx import decode_tx, sign_tx
from careledger.vault.canonical import compute_commitment
from careledger.vault.fhir import split_resources
from careledger.vault.ledger import LedgerPort
from careledger.vault.requests import (
    FRESHNESS_MS,
    ReadRequest,
    ReplayGuard,
    RequestBody,
    SignedRequest,
    StoreRequest,
    Verified,
    parse_exact_json,
    verify_request,
)
from careledger.vault.store import Vault, VaultError, VaultIntegrityError, new_record_id

log = logging.getLogger("careledger.gateway")
SUBMIT_TIMEOUT = 8.0  # below the Python client's 10 s, so a stuck admission answers TIMEOUT
AUDIT_WAIT_MODES = ("committed", "admitted")


def load_vaults(root: Path) -> dict[str, Vault]:
    """Every vault under ``root`` (``root/<org>/org_key.json``), by organisation."""
    vaults: dict[str, Vault] = {}
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "org_key.json").exists() and (d / "gateway_key.json").exists():
                vault = Vault(d)
                vaults[vault.org] = vault
    return vaults


class Gateway:
    """The access gateway of one node: every vault it hosts, and the ledger it reads and writes."""

    def __init__(self, ledger: LedgerPort, vaults: dict[str, Vault], *, root: Path | None = None,
                 clock: Callable[[], float] = time.time, window_ms: int = FRESHNESS_MS,
                 audit_wait: str = "committed") -> None:
        if audit_wait not in AUDIT_WAIT_MODES:
            raise ValueError(f"audit_wait must be one of {AUDIT_WAIT_MODES}, not {audit_wait!r}")
        self.ledger = ledger
        self.vaults = dict(vaults)
        self.root = root
        self.clock = clock
        self.window_ms = window_ms
        self.audit_wait = audit_wait
        self._guards: dict[str, ReplayGuard] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._shred: queue.Queue[str] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False

    @classmethod
    def open(cls, ledger: LedgerPort, root: Path, **kw: Any) -> Gateway:
        """A gateway over every vault under ``root``, subscribed to the ledger's commits so that it
        shreds every erasure committed from now on (whichever node submitted it); then it shreds what
        the ledger says was erased meanwhile (subscribing first, no erasure falls in between)."""
        gateway = cls(ledger, load_vaults(root), root=root, **kw)
        ledger.on_commit(gateway._on_commit)
        gateway.reconcile()
        return gateway

    def close(self) -> None:
        """Stop the shredder and close the vaults; commits heard afterwards are ignored (a later
        gateway over the same vaults shreds them at its start-up)."""
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            self._shred.put("")
            worker.join(timeout=5)
        for vault in self.vaults.values():
            vault.close()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def vault(self, org: str) -> Vault:
        """The vault of ``org`` (rescanning the vault root once for vaults created since); VAULT_NOT_HOSTED."""
        vault = self.vaults.get(org)
        if vault is None and self.root is not None:
            with self._lock:
                for name, v in load_vaults(self.root).items():
                    if name in self.vaults:
                        v.close()
                    else:
                        self.vaults[name] = v
            vault = self.vaults.get(org)
        if vault is None:
            raise VaultError(f"this node hosts no vault for {org!r}", Code.VAULT_NOT_HOSTED)
        return vault

    def custodians(self) -> list[dict[str, Any]]:
        return [{"org": org, "gateway_key": v.gateway_key.public_hex, "org_key_id": v.org_key.key_id}
                for org, v in sorted(self.vaults.items())]

    def _guard(self, vault: Vault) -> ReplayGuard:
        with self._lock:
            guard = self._guards.get(vault.org)
            if guard is None:
                guard = self._guards[vault.org] = ReplayGuard(self.window_ms, vault.remember_request)
            return guard

    # -- ledger writes ----------------------------------------------------------------------------------------
    def _submit(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> tuple[bytes, Any]:
        """Sign ``payload`` with the next nonce of ``key`` and admit it; returns (hash, receipt future)."""
        with self._lock:
            lock = self._key_locks.setdefault(key.public_hex, threading.Lock())
        with lock:
            raw = sign_tx(key, self.ledger.chain_id, tx_type, 1, self.ledger.next_nonce(key.public_hex), payload)
            return raw, self.ledger.submit(raw)

    @staticmethod
    def _receipt(fut: Any) -> Receipt:
        try:
            result = fut.result(timeout=SUBMIT_TIMEOUT)
        except TimeoutError:
            raise LedgerError("the transaction did not commit in time", Code.TIMEOUT) from None
        if isinstance(result, LedgerError):
            raise result
        assert isinstance(result, Receipt)
        return result

    def _audit(self, vault: Vault, entries: list[dict[str, Any]]) -> None:
        """Write the audit entries: admitted to the mempool, and with ``audit_wait == "committed"`` (the
        default) committed in a block with a successful receipt, before this returns.

        Raises LedgerError (INTERNAL_ERROR) when they cannot be written — refused, not committed in
        time, or committed with a failed receipt: then no content may be released.
        """
        futures = []
        try:
            for i in range(0, len(entries), MAX_ENTRIES_PER_TX):
                futures.append(self._submit(vault.gateway_key, "audit.record",
                                            {"entries": entries[i:i + MAX_ENTRIES_PER_TX]})[1])
            if self.audit_wait == "committed":
                for fut in futures:
                    receipt = self._receipt(fut)
                    if receipt.code:
                        raise LedgerError(receipt.message, Code(receipt.code))
        except LedgerError as exc:
            log.error("audit entries for %s could not be written: %s", vault.org, exc.code.name)
            raise LedgerError(f"the access could not be audited ({exc.code.name}); nothing is released",
                              Code.INTERNAL_ERROR) from exc

    def _accept(self, request: SignedRequest, kind: str, model: type[RequestBody],
                ) -> tuple[Verified[Any], Vault, Any, Any, int]:
        """Verify a signed request whose body is a ``kind`` (``model``), refuse a replay (the custodian vault's
        memory), resolve its custodian vault and requester.

        Returns (verified request, vault, committed view, requester, the time it was checked at).

        Raises the request errors (missing, bad signature, stale, malformed, replayed),
        VAULT_NOT_HOSTED and UNKNOWN_SIGNER.
        """
        now = self.now_ms()
        verified = verify_request(request, self.ledger.chain_id, self.ledger.suite, now, kinds={kind: model},
                                  window_ms=self.window_ms, parse=parse_exact_json)
        vault = self.vault(verified.body.custodian)
        self._guard(vault).check_and_remember(verified.hash_bytes, verified.time_ms, now)
        view = self.ledger.view()
        requester = identity.resolve_signer(view, verified.requester)
        if requester.kind == "unregistered":
            raise AuthError("the requester is not a member of the consortium", Code.UNKNOWN_SIGNER)
        return verified, vault, view, requester, now

    # -- store ------------------------------------------------------------------------------------------------
    def store(self, request: SignedRequest) -> dict[str, Any]:
        """Validate, encrypt, store and anchor the resource, or every resource of the bundle, a signed
        ``store`` request carries; all-or-nothing.

        Raises: the request errors; UNKNOWN_SIGNER; NOT_CUSTODIAN (requester is not a writer of the
        custodian); PATIENT_UNKNOWN; FHIR_INVALID / FHIR_UNSUPPORTED (with an OperationOutcome);
        RECORD_* for a new version of an unfit record.
        """
        verified, vault, view, requester, _ = self._accept(request, "store", StoreRequest)
        req: StoreRequest = verified.body
        resource = req.resource
        if not is_custodian_signer(requester, vault.org, WRITER_ROLES):
            raise LedgerError(f"only an active admin or writer member of {vault.org!r} stores its records",
                              Code.NOT_CUSTODIAN)
        try:
            require_patient_active(view, req.patient)
        except TxFailed as exc:
            raise LedgerError(exc.message, exc.code) from None
        entries = split_resources(resource)
        first_version = 1
        if req.record is not None:
            first_version = self._next_version(view, vault, req.record, req.patient, entries)
        sealed = []
        for entry in entries:
            record = req.record if req.record is not None else new_record_id()
            sealed.append(vault.seal(record, first_version, req.patient, entry.type, entry.canonical))
        vault.put_pending(sealed)
        keys = [(s.record, s.version) for s in sealed]
        try:
            results = self._anchor(vault, requester.key, sealed)  # the author's identity key
        except BaseException:
            vault.discard(keys)
            raise
        vault.mark_anchored(keys)
        return {"custodian": vault.org, "patient": req.patient, "height": max(h for h, _ in results),
                "txs": [t for _, t in results],
                "records": [{"record": s.record, "version": s.version, "type": s.type, "commitment": s.commitment,
                             "full_url": e.full_url} for s, e in zip(sealed, entries, strict=True)]}

    @staticmethod
    def _next_version(view: Any, vault: Vault, record: str, patient: str, entries: list[Any]) -> int:
        if len(entries) != 1:
            raise LedgerError("a new version carries exactly one resource", Code.REQUEST_MALFORMED)
        head = get_head(view, record)
        if head is None:
            raise LedgerError(f"record {record} does not exist", Code.RECORD_UNKNOWN)
        if head.custodian != vault.org:
            raise LedgerError(f"record {record} is held by another custodian", Code.NOT_CUSTODIAN)
        if head.pseudonym != patient:
            raise LedgerError(f"record {record} belongs to another patient", Code.RECORD_PATIENT_MISMATCH)
        if head.is_erased:
            raise LedgerError(f"record {record} was erased", Code.RECORD_ERASED)
        if head.type != entries[0].type:
            raise LedgerError(f"record {record} holds a {head.type}", Code.RECORD_VERSION_CONFLICT)
        return head.version + 1

    def _anchor(self, vault: Vault, author: str, sealed: list[Any]) -> list[tuple[int, str]]:
        futures = []
        for i in range(0, len(sealed), MAX_ANCHORS_PER_TX):
            chunk = sealed[i:i + MAX_ANCHORS_PER_TX]
            anchors = [{"author": author, "commitment": s.commitment, "pseudonym": s.pseudonym, "record": s.record,
                        "type": s.type, "version": s.version} for s in chunk]
            futures.append(self._submit(vault.gateway_key, "records.anchor",
                                        {"anchors": anchors, "custodian": vault.org}))
        results = []
        for _, fut in futures:
            receipt = self._receipt(fut)
            if receipt.code:
                raise LedgerError(f"anchoring failed: {receipt.message}", Code(receipt.code))
            results.append((self.ledger.tx_height(bytes.fromhex(receipt.tx)), receipt.tx))
        return results

    # -- read -------------------------------------------------------------------------------------------------
    def read(self, request: SignedRequest) -> dict[str, Any]:
        """Serve a signed read request (see the module docstring for every step and refusal)."""
        verified, vault, view, requester, now = self._accept(request, "read", ReadRequest)
        req: ReadRequest = verified.body
        entries: list[dict[str, Any]] = []
        granted: list[dict[str, Any]] = []
        denied: list[dict[str, Any]] = []
        base = {"emergency": req.emergency, "purpose": req.purpose, "request": verified.hash,
                "request_ms": verified.time_ms, "requester": requester.key, "requester_org": requester.org}
        for record in dict.fromkeys(req.records):
            head = get_head(view, record)
            if head is None or head.custodian != vault.org:
                code = Code.RECORD_UNKNOWN if head is None else Code.NOT_CUSTODIAN
                denied.append({"record": record, "code": int(code), "name": code.name})
                continue
            owner = head.pseudonym
            try:
                decision = evaluate_access(view, requester, req.patient, record, head, req.purpose, now,
                                           emergency=req.emergency, study=req.study)
                anchor = get_anchor(view, record, head.version)
                assert anchor is not None
                salt, canonical = vault.open(record, head.version)
                if compute_commitment(salt, canonical) != anchor.commitment:
                    raise VaultIntegrityError(f"record {record} does not match its ledger anchor")
            except (AccessDenied, VaultIntegrityError, LedgerError) as exc:
                entries.append({**base, "code": int(exc.code), "consent": None, "mode": "none",
                                "outcome": "denied", "pseudonym": owner, "record": record})
                denied.append({"record": record, "code": int(exc.code), "name": exc.code.name})
                continue
            entries.append({**base, "code": 0, "consent": decision.consent, "emergency": decision.emergency,
                            "mode": decision.mode, "outcome": "granted", "pseudonym": owner, "record": record})
            granted.append({"record": record, "version": head.version, "type": head.type,
                            "custodian": vault.org, "commitment": anchor.commitment, "salt": salt.hex(),
                            "canonical": canonical.decode("utf-8"), "mode": decision.mode,
                            "emergency": decision.emergency})
        if entries:
            self._audit(vault, entries)
        if not granted:
            first = denied[0]
            raise LedgerError(f"access to {first['record']} refused ({first['name']})", Code(first["code"]))
        return {"request": verified.hash, "records": granted, "denied": denied}

    # -- erasure ----------------------------------------------------------------------------------------------
    def erase(self, raw: bytes) -> dict[str, Any]:
        """Submit a signed ``records.erase`` transaction, wait for it to commit, then crypto-shred.

        Raises REQUEST_MALFORMED (not an erasure), RECORD_UNKNOWN, VAULT_NOT_HOSTED, and every
        admission or contract refusal of the transaction (ERASURE_NOT_ALLOWED, RECORD_ERASED, ...).
        """
        tx = decode_tx(raw, self.ledger.chain_id, self.ledger.suite)
        if tx.type != "records.erase" or type(tx.payload.get("record")) is not str:
            raise LedgerError("the erasure endpoint takes a records.erase transaction", Code.REQUEST_MALFORMED)
        record = tx.payload["record"]
        head = get_head(self.ledger.view(), record)
        if head is None:
            raise LedgerError(f"record {record} does not exist", Code.RECORD_UNKNOWN)
        vault = self.vault(head.custodian)
        held = vault.versions_held(record)
        receipt = self._receipt(self.ledger.submit(raw))
        if receipt.code:
            raise LedgerError(receipt.message or "erasure refused", Code(receipt.code))
        # the shredder may have got there first (it hears of every committed erasure): count what was held
        destroyed = max(held, vault.erase(record))
        return {"record": record, "tx_hash": receipt.tx, "height": self.ledger.tx_height(tx.hash),
                "versions_destroyed": destroyed, "erased_by": (receipt.result or {}).get("by")}

    # -- keeping the vaults in step with the ledger ------------------------------------------------------------
    def reconcile(self) -> dict[str, int]:
        """Shred records the ledger says were erased; destroy pending versions that never anchored.

        Run when no store is in flight (at start-up).
        """
        view = self.ledger.view()
        shredded = discarded = 0
        for vault in self.vaults.values():
            stale = [(r, v) for r, v in vault.pending() if get_anchor(view, r, v) is None]
            if stale:
                vault.discard(stale)
                discarded += len(stale)
            vault.mark_anchored([(r, v) for r, v in vault.pending()])
            for record in vault.record_ids():
                head = get_head(view, record)
                if head is not None and head.is_erased:
                    shredded += vault.erase(record)
        return {"shredded": shredded, "discarded": discarded}

    def _hosts(self, org: Any) -> bool:
        """Whether ``org``'s vault is here: loaded, or created under the root since (a cheap check)."""
        return org in self.vaults or (type(org) is str and self.root is not None
                                      and (self.root / org / "org_key.json").exists())

    def _on_commit(self, height: int, events: list[dict[str, Any]]) -> None:
        """Hand every record erased in this block, of a custodian hosted here, to the shredder."""
        erased = [e["attrs"]["record"] for e in events
                  if e["type"] == "record_erased" and self._hosts(e["attrs"].get("custodian"))]
        if not erased:
            return
        with self._lock:
            if self._closed:
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._shredder, name="vault-shredder", daemon=True)
                self._worker.start()
            for record in erased:
                self._shred.put(record)

    def _shredder(self) -> None:
        while True:
            record = self._shred.get()
            if not record:
                return
            head = get_head(self.ledger.view(), record)
            if head is None or not head.is_erased:
                continue
            try:
                self.vault(head.custodian).erase(record)
            except LedgerError:
                log.exception("could not shred an erased record")
