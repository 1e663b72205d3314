"""A synchronous Python client for a CareLedger node's HTTP API (``docs/http-api.md``).

::

    from careledger.client import Client
    with Client("http://127.0.0.1:8700") as client:
        result = client.send(admin_key, "identity.enrol_member", 1,
                             {"member": member_pub, "org": "org.dev", "roles": ["physician"]})
        assert result["receipt"]["code"] == 0
        # or typed: the payload model names its transaction type and version
        from careledger.contracts.identity.handlers import EnrolMember
        client.send_payload(admin_key, EnrolMember(member=member_pub, org="org.dev", roles=["physician"]))

Exceptions::

    ClientError            the node refused the request (code, name, message, http_status)
    └── NodeUnavailable    no HTTP answer at all: connection refused, reset, or timed out
                           (code NODE_UNAVAILABLE or TIMEOUT, http_status None)

A transaction that was *committed but failed* is not an exception: ``send``/``submit`` return it
with ``result["receipt"]["code"] != 0``. Inclusion proofs are checked offline with
:func:`verify_proof`, against the consortium's genesis.

I/O goes through an ``httpx`` transport that tests may swap (``Client(url, transport=...)``).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from careledger.contracts.base import Registry
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.genesis import Genesis, decode_genesis, parse_genesis
from careledger.core.proofs import ProofInvalid
from careledger.core.proofs import verify_proof as _verify_proof
from careledger.core.tx import sign_tx
from careledger.vault.requests import authorization

__all__ = ["Client", "ClientError", "NodeUnavailable", "ProofInvalid", "transaction_of", "verify_proof"]

DEFAULT_TIMEOUT = 10.0
_NONCE_CODES = frozenset({int(Code.NONCE_REPLAYED), int(Code.NONCE_OUT_OF_ORDER)})


def _seg(value: str) -> str:
    """One URL path segment, escaped (so a value can never reach another route)."""
    return quote(value, safe="")


def transaction_of(payload: BaseModel, registry: Registry | None = None) -> tuple[str, int, dict[str, Any]]:
    """The transaction type and version whose payload model ``payload`` is an instance of (in
    ``registry``; by default among the handlers of the contract package that defines the model,
    ``careledger.contracts.<name>.HANDLERS``, and of its defining module if that keeps its own), and
    the payload's JSON: the fields that were set, as they were set (``model_dump(mode="json",
    exclude_unset=True)``), so the node checks exactly what the caller built.

    Raises ValueError when no registered (type, version) takes that model, or more than one does.
    """
    if registry is not None:
        handlers = registry.handlers()
    else:
        module = type(payload).__module__
        parts = module.split(".")
        package = ".".join(parts[:3]) if parts[:2] == ["careledger", "contracts"] and len(parts) > 2 else None
        handlers = []
        if package:  # the package's handlers, and those of a module that keeps its own (identity.keys)
            for name in dict.fromkeys((package, module)):
                handlers += [h for h in getattr(importlib.import_module(name), "HANDLERS", []) if h not in handlers]
    kinds = [(h.type, h.version) for h in handlers if h.payload is type(payload)]
    if len(kinds) != 1:
        raise ValueError(f"{type(payload).__name__} is the payload of {len(kinds)} registered transaction kinds, "
                         "not one: use Client.send with the type and version")
    (tx_type, version), = kinds
    return tx_type, version, payload.model_dump(mode="json", exclude_unset=True)


class ClientError(Exception):
    """The node answered with an error: a stable ``code`` and ``name``, a human ``message``.

    ``tx_hash`` is set when the node reported which transaction the error is about; ``document`` is the
    node's whole error answer (a route may add fields beside ``error``, such as a refused release's
    ``report``), None when it gave none.
    """

    def __init__(self, code: int, name: str, message: str, http_status: int | None,
                 tx_hash: str | None = None, document: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name} ({code}): {message}")
        self.code = code
        self.name = name
        self.message = message
        self.http_status = http_status
        self.tx_hash = tx_hash
        self.document = document


class NodeUnavailable(ClientError):
    """No HTTP answer: the node could not be reached or did not answer in time."""


def verify_proof(bundle: dict[str, Any], genesis: Genesis | dict[str, Any] | str | Path,
                 validators: Iterable[str] | None = None) -> Receipt:
    """Check an inclusion proof bundle offline; returns the verified receipt, raises :class:`ProofInvalid`.

    ``genesis`` is the consortium's genesis (object, decoded document, or file path); the block must be
    signed by one of its validators, or of ``validators`` (hex keys) when the set has changed since.
    """
    if isinstance(genesis, str | Path):
        genesis = decode_genesis(Path(genesis).read_bytes())
    elif isinstance(genesis, dict):
        genesis = parse_genesis(genesis)
    keys = list(validators) if validators is not None else [v.pub_key for v in genesis.validators]
    return _verify_proof(bundle, genesis.chain_id, keys, genesis.crypto_suite)


class Client:
    """One node's HTTP API. Thread-safe; :meth:`send` keeps a nonce counter per key."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._http = httpx.Client(base_url=base_url.rstrip("/"), transport=transport, timeout=timeout)
        self._chain_id: str | None = None
        self._nonces: dict[str, int] = {}
        self._nonce_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    # -- plumbing -------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def request(self, method: str, path: str, *, timeout: float | None = None, sign: SigningKey | None = None,
                **kwargs: Any) -> dict[str, Any]:
        """One call to the node's HTTP API: the decoded JSON object of a success, else ClientError with
        the stable code the node gave (NodeUnavailable when it cannot be reached or does not answer).
        ``kwargs`` go to ``httpx`` (``json``, ``content``, ``params``, ``headers``). With ``sign``, the
        request is a signed request of that key (``Authorization: CareLedger-Request …`` over the
        method, the path and query and the body exactly as sent; docs/protocol.md section 4.3)."""
        request = self._http.build_request(method, path, timeout=timeout if timeout is not None else self.timeout,
                                           **kwargs)
        if sign is not None:
            request.headers["Authorization"] = authorization(sign, self.chain_id(), request.method,
                                                             request.url.raw_path.decode("ascii"), request.content)
        try:
            response = self._http.send(request)
        except httpx.TimeoutException as exc:
            raise NodeUnavailable(int(Code.TIMEOUT), Code.TIMEOUT.name, f"no answer from the node: {exc}",
                                  None) from exc
        except httpx.TransportError as exc:
            raise NodeUnavailable(int(Code.NODE_UNAVAILABLE), Code.NODE_UNAVAILABLE.name,
                                  f"cannot reach the node: {exc}", None) from exc
        try:
            doc = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            doc = None
        if response.is_success and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            raise ClientError(error["code"], str(error.get("name", "")), str(error.get("message", "")),
                              response.status_code, doc.get("tx_hash"), doc)
        code = Code.INTERNAL_ERROR if response.is_success or response.status_code >= 500 else Code.BAD_REQUEST
        raise ClientError(int(code), code.name, f"unexpected HTTP {response.status_code} answer "
                          f"({response.headers.get('content-type', 'no content type')})", response.status_code)

    # -- transactions ---------------------------------------------------------------------------------
    def submit(self, raw: bytes, wait: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        """Submit signed wire bytes. Without ``wait``: ``{tx_hash, status: "pending"}`` once admitted, or
        ``status: "queued"`` when its nonce is ahead of the signer's next (it waits for the gap to fill,
        protocol.md section 5); with it: ``{tx_hash, status: "committed", height, receipt}`` (``timeout``
        seconds at most, ≤ 120), queued transactions included. Raises :class:`ClientError` when the node
        refuses it or it is dropped before commit (NONCE_GAP_EXPIRED for a gap never filled)."""
        params: dict[str, Any] = {"wait": "commit", "timeout": timeout} if wait else {}
        return self.request("POST", "/v1/txs", content=raw, params=params,
                             headers={"content-type": "application/json"},
                             timeout=self.timeout + (timeout if wait else 0))

    def submit_batch(self, raws: Iterable[bytes], wait: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        """Submit up to 1000 transactions in order; ``{accepted, rejected, results: [...]}`` per item."""
        params: dict[str, Any] = {"wait": "commit", "timeout": timeout} if wait else {}
        return self.request("POST", "/v1/txs/batch", json=[r.hex() for r in raws],
                             params=params, timeout=self.timeout + (timeout if wait else 0))

    def chain_id(self) -> str:
        """The node's chain id (asked once, then remembered)."""
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def _key_lock(self, pub: str) -> threading.Lock:
        with self._nonce_lock:
            return self._key_locks.setdefault(pub, threading.Lock())

    def send(self, key: SigningKey, tx_type: str, version: int, payload: dict[str, Any], wait: bool = True,
             timeout: float = 30.0) -> dict[str, Any]:
        """Sign ``payload`` as the next transaction of ``key`` and submit it (see :meth:`submit`).

        The first send for a key asks the node for its next nonce (which counts the key's pending
        transactions); later sends count up locally, so back-to-back sends need no round trip. After
        any error the counter is forgotten and the next send asks the node again; a nonce refusal of a
        locally counted nonce (the key also signs elsewhere) is retried once with the node's nonce.
        """
        pub = key.public_hex
        chain_id = self.chain_id()
        with self._key_lock(pub):
            cached = self._nonces.pop(pub, None)
            nonce = cached if cached is not None else int(self.nonce(pub)["next"])
            try:
                result = self.submit(sign_tx(key, chain_id, tx_type, version, nonce, payload), wait=wait,
                                     timeout=timeout)
            except ClientError as exc:
                if cached is None or exc.code not in _NONCE_CODES:
                    raise
                # the local count went stale (the key signed elsewhere): ask the node, try once more
                nonce = int(self.nonce(pub)["next"])
                result = self.submit(sign_tx(key, chain_id, tx_type, version, nonce, payload), wait=wait,
                                     timeout=timeout)
            self._nonces[pub] = nonce + 1
            return result

    def send_payload(self, key: SigningKey, payload: BaseModel, wait: bool = True,
                     timeout: float = 30.0) -> dict[str, Any]:
        """:meth:`send` a typed payload (a contract's payload model): its type and version are the ones
        that model is registered for (:func:`transaction_of`). Raises ValueError for a model that is
        no one transaction kind's payload, else as :meth:`send`."""
        tx_type, version, doc = transaction_of(payload)
        return self.send(key, tx_type, version, doc, wait=wait, timeout=timeout)

    def tx(self, tx_hash: str) -> dict[str, Any]:
        """A committed transaction with receipt and proof, or ``{status: "pending"}``; NOT_FOUND otherwise."""
        return self.request("GET", f"/v1/txs/{_seg(tx_hash)}")

    # -- chain ----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        """The block at ``height`` (an int, its decimal string, or ``"latest"``)."""
        return self.request("GET", f"/v1/blocks/{_seg(str(height))}")

    def nonce(self, pubkey: str) -> dict[str, Any]:
        """``{account, committed, pending, next}`` for a key."""
        return self.request("GET", f"/v1/accounts/{_seg(pubkey)}/nonce")

    # -- identity -------------------------------------------------------------------------------------
    def organisations(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/identity/organisations")["organisations"])

    def organisation(self, org: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/identity/organisations/{_seg(org)}")

    def members(self, org: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/v1/identity/organisations/{_seg(org)}/members")["members"])

    def key_info(self, pubkey: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/identity/keys/{_seg(pubkey)}")

    def patient(self, pseudonym: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/identity/patients/{_seg(pseudonym)}")

    # -- key rotation and recovery (docs/consortium.md, "Keys") ----------------------------------------
    def _signing_key_of(self, identity_key: str) -> str:
        """The key that signs for ``identity_key`` now."""
        return str(self.key_info(identity_key).get("signing_key") or identity_key)

    def rotate_key(self, key: SigningKey, new_key: SigningKey, wait: bool = True) -> dict[str, Any]:
        """Replace ``key`` (the key that signs for a member or patient now) with ``new_key``, proving
        possession of it; from then on sign with ``new_key`` (its nonces start at 1)."""
        from careledger.contracts.identity.keys import sign_possession

        identity_key = str(self.key_info(key.public_hex).get("identity") or key.public_hex)
        proof = sign_possession(new_key, self.chain_id(), identity_key, key.public_hex)
        return self.send(key, "identity.rotate_key", 1, {"new_key": new_key.public_hex, "proof": proof}, wait=wait)

    def recovery_proof(self, new_key: SigningKey, patient: str) -> dict[str, str]:
        """What a patient who lost her key hands her custodian, made with her new key alone:
        ``{"new_key", "proof"}`` for :meth:`propose_recovery`."""
        from careledger.contracts.identity.keys import sign_possession

        identity_key = str(self.patient(patient)["key"])
        proof = sign_possession(new_key, self.chain_id(), identity_key, self._signing_key_of(identity_key))
        return {"new_key": new_key.public_hex, "proof": proof}

    def propose_recovery(self, key: SigningKey, patient: str, new_key: str, proof: str,
                         wait: bool = True) -> dict[str, Any]:
        """A custodian's admin proposes ``new_key`` for ``patient`` (``proof`` from :meth:`recovery_proof`)."""
        return self.send(key, "identity.propose_recovery", 1, {"new_key": new_key, "patient": patient, "proof": proof},
                         wait=wait)

    def approve_recovery(self, key: SigningKey, patient: str, recovery: str, wait: bool = True) -> dict[str, Any]:
        """A delegate or another custodian's admin approves; the 72-hour delay starts."""
        return self.send(key, "identity.approve_recovery", 1, {"patient": patient, "recovery": recovery}, wait=wait)

    def cancel_recovery(self, key: SigningKey, patient: str, recovery: str, wait: bool = True) -> dict[str, Any]:
        """The patient, or a guardian who approved it, cancels an open recovery."""
        return self.send(key, "identity.cancel_recovery", 1, {"patient": patient, "recovery": recovery}, wait=wait)

    def complete_recovery(self, new_key: SigningKey, patient: str, recovery: str,
                          wait: bool = True) -> dict[str, Any]:
        """After the delay, the new key completes the recovery and signs for the patient from then on."""
        return self.send(new_key, "identity.complete_recovery", 1, {"patient": patient, "recovery": recovery},
                         wait=wait)

    # -- governance -----------------------------------------------------------------------------------
    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        return list(self.request("GET", "/v1/governance/proposals", params=params)["proposals"])

    def proposal(self, proposal_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/governance/proposals/{_seg(proposal_id)}")

    def validators(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/governance/validators")["validators"])
