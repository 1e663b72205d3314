"""Signed access requests: reads, stores and patient-scoped queries, bound to the chain and fresh.

Envelope (JSON)::

    {"request": {"kind": ..., "requester": hex32, "time_ms": int, "nonce": hex16..., ...kind fields},
     "sig": hex64}

``sig`` is Ed25519 over ``signing_message("request", chain_id, codec.encode(request))``: a request
signature can never pass as a transaction or a block signature, nor on another chain. The verifier
refuses a request whose ``time_ms`` is more than :data:`FRESHNESS_MS` away from its own clock
(REQUEST_STALE) and one it has seen before (REQUEST_REPLAYED): the hash of a request is remembered
until it could no longer be fresh.

Kinds and their fields:

* ``read``    custodian, patient, records (1..64 ids), purpose, emergency, study — a gateway read;
* ``store``   custodian, patient, content (SHA-256 of the canonical resource), record (new version of) —
  a custodian member stores a resource or bundle;
* ``view``    patient, format (``json`` or ``fhir``) — the patient's (or delegate's) own view:
  records, consents, access log;
* ``index``   patient, purpose, emergency, study — the records the requester's consent covers;
* ``anchors`` patient, records, purpose, emergency, study — ledger anchors to check commitments against.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from careledger.contracts.consent import Purpose, StudyId
from careledger.contracts.records import Pseudonym, RecordId
from careledger.core import codec
from careledger.core.crypto import CryptoSuite, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.types import Hex32, NonNegativeInt, OrgId, PublicKeyHex

FRESHNESS_MS = 5 * 60 * 1000
Nonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,64}$")]
RecordList = Annotated[list[RecordId], Field(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    requester: PublicKeyHex
    time_ms: NonNegativeInt
    nonce: Nonce
    patient: Pseudonym


class ReadRequest(_Request):
    kind: Literal["read"]
    custodian: OrgId
    records: RecordList
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


class StoreRequest(_Request):
    kind: Literal["store"]
    custodian: OrgId
    content: Hex32
    record: RecordId | None = None


class ViewRequest(_Request):
    kind: Literal["view"]
    format: Literal["json", "fhir"] = "json"


class IndexRequest(_Request):
    kind: Literal["index"]
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


class AnchorsRequest(_Request):
    kind: Literal["anchors"]
    records: RecordList
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


AnyRequest = ReadRequest | StoreRequest | ViewRequest | IndexRequest | AnchorsRequest
_MODELS: dict[str, type[BaseModel]] = {"read": ReadRequest, "store": StoreRequest, "view": ViewRequest,
                                       "index": IndexRequest, "anchors": AnchorsRequest}


def sign_request(key: SigningKey, chain_id: str, kind: str, fields: dict[str, Any],
                 now_ms: int | None = None) -> dict[str, Any]:
    """Build and sign a request envelope of ``kind`` with a fresh nonce and the current time."""
    body = {**fields, "kind": kind, "nonce": os.urandom(16).hex(), "requester": key.public_hex,
            "time_ms": int(time.time() * 1000) if now_ms is None else now_ms}
    body = {k: v for k, v in body.items() if v is not None}
    sig = key.sign("request", chain_id, codec.encode(body))
    return {"request": body, "sig": sig.hex()}


@dataclass(frozen=True)
class Verified:
    """A request whose signature, freshness and novelty were checked."""

    body: Any  # one of the request models
    hash: str  # SHA-256 of the signed request bytes, hex: what audit entries cite

    @property
    def requester(self) -> str:
        return str(self.body.requester)


class ReplayGuard:
    """Remembers request hashes until they could no longer be fresh.

    ``persist`` (optional) is asked too: it returns False for a hash already seen, which lets a
    custodian's vault keep the memory across restarts.
    """

    def __init__(self, window_ms: int = FRESHNESS_MS,
                 persist: Callable[[bytes, int, int], bool] | None = None) -> None:
        self.window_ms = window_ms
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._persist = persist

    def check_and_remember(self, request_hash: bytes, request_ms: int, now_ms: int) -> None:
        expires = request_ms + self.window_ms + 1
        with self._lock:
            if len(self._seen) > 100_000:
                self._seen = {h: t for h, t in self._seen.items() if t >= now_ms}
            if request_hash in self._seen:
                raise LedgerError("this request was already used", Code.REQUEST_REPLAYED)
            self._seen[request_hash] = expires
        if self._persist is not None and not self._persist(request_hash, expires, now_ms):
            raise LedgerError("this request was already used", Code.REQUEST_REPLAYED)


def verify_request(doc: Any, chain_id: str, suite: CryptoSuite, now_ms: int, guard: ReplayGuard | None,
                   kinds: tuple[str, ...], window_ms: int = FRESHNESS_MS) -> Verified:
    """Check an envelope: shape, kind, signature, freshness, novelty. Returns the typed request.

    Raises REQUEST_MALFORMED, BAD_SIGNATURE, REQUEST_STALE or REQUEST_REPLAYED (in that order).
    """
    if type(doc) is not dict or set(doc) - {"request", "sig", "resource"} or "request" not in doc:
        raise LedgerError("a request is {request, sig}", Code.REQUEST_MALFORMED)
    body, sig_hex = doc["request"], doc.get("sig")
    if type(body) is not dict or body.get("kind") not in kinds:
        raise LedgerError(f"request kind must be one of {', '.join(kinds)}", Code.REQUEST_MALFORMED)
    if type(sig_hex) is not str or len(sig_hex) != 128:
        raise AuthError("request is not signed", Code.MISSING_SIGNATURE)
    try:
        model = _MODELS[body["kind"]].model_validate(body)
        signature = bytes.fromhex(sig_hex)
        message = codec.encode(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise LedgerError(f"request {where}: {first.get('msg', 'invalid')}", Code.REQUEST_MALFORMED) from None
    except (ValueError, LedgerError) as exc:
        raise LedgerError("request is not canonical JSON with a hex signature", Code.REQUEST_MALFORMED) from exc
    suite.verify(parse_public_key(body["requester"]), "request", chain_id, message, signature)
    if abs(now_ms - model.time_ms) > window_ms:  # type: ignore[attr-defined]
        raise LedgerError(f"request time is more than {window_ms // 1000} s from the node's clock",
                          Code.REQUEST_STALE)
    digest = hashlib.sha256(message).digest()
    if guard is not None:
        guard.check_and_remember(digest, model.time_ms, now_ms)  # type: ignore[attr-defined]
    return Verified(model, digest.hex())


__all__ = ["FRESHNESS_MS", "AnchorsRequest", "AnyRequest", "IndexRequest", "ReadRequest", "ReplayGuard",
           "StoreRequest", "Verified", "ViewRequest", "sign_request", "verify_request"]
