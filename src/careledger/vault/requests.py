"""Signed requests: the one scheme every signed read of the API uses (docs/protocol.md section 4.3).

A signed request is an ordinary HTTP request with one header::

    Authorization: CareLedger-Request key=<hex32>, time=<ms>, nonce=<hex>, sig=<hex64>

``sig`` is Ed25519, in signing domain ``request`` and bound to the chain id, over the canonical JSON
of the request as the node received it::

    signed  = canonical({"body": hex(SHA-256(body bytes)), "method": METHOD, "nonce": nonce,
                         "requester": key, "target": path and query exactly as sent, "time_ms": time})
    message = signing_message("request", chain_id, signed)

so a signature covers the method, the path and query, every byte of the body, who asks and when,
and can never pass as a transaction or block signature, nor on another chain, route or body. The
request hash, ``SHA-256(signed)``, is what audit entries cite and what replay memory remembers.

A route that takes a body takes a *typed request*: a JSON object whose ``kind`` names one of the
route's request models (``read``, ``store``, ``view``, ``index``, ``anchors`` here; ``token`` for the
FHIR token exchange; claims and research add theirs). A GET has an empty body.

The verifier (:func:`verify_request`) checks, in this order, and refuses with the first failure:

1. the ``Authorization`` header is present with this scheme: MISSING_SIGNATURE;
2. its parameters are well-formed (``key`` 64 hex, ``time`` decimal ms, ``nonce`` 32 to 64
   lower-case hex, ``sig`` 128 hex, each once): BAD_SIGNATURE;
3. the signature: BAD_SIGNATURE;
4. freshness, ``|node clock - time| <= 300,000 ms``: REQUEST_STALE;
5. the body is a request of one of the route's kinds: REQUEST_MALFORMED;
6. novelty, the request hash not seen before within its freshness window: REQUEST_REPLAYED.

Who the requester is (a member, a patient, a delegate) and what it may see is for the route to
decide, against committed state, after these checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from careledger.contracts.consent import Purpose, StudyId
from careledger.contracts.records import Pseudonym, RecordId
from careledger.core import codec
from careledger.core.crypto import CryptoSuite, SigningKey, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.types import OrgId
from careledger.vault.canonical import parse_exact

SCHEME = "CareLedger-Request"
"""The ``Authorization`` scheme of a signed request."""
FRESHNESS_MS = 5 * 60 * 1000
MAX_INTEGER = 2**53 - 1
"""The largest integer a typed request's number may denote (JSON's interoperable range)."""
Nonce = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,64}$")]
RecordList = Annotated[list[RecordId], Field(min_length=1, max_length=64)]

_PARAM = re.compile(r"^\s*([a-z]+)\s*=\s*(\"?)([0-9a-f]*)\2\s*$")
_PATTERNS = {"key": re.compile(r"^[0-9a-f]{64}$"), "time": re.compile(r"^[0-9]{1,15}$"),
             "nonce": re.compile(r"^[0-9a-f]{32,64}$"), "sig": re.compile(r"^[0-9a-f]{128}$")}


# --- what is signed ---------------------------------------------------------------------------------------

def signed_request(method: str, target: str, body: bytes, requester: str, time_ms: int, nonce: str) -> bytes:
    """The canonical bytes a request signature covers (see the module docstring)."""
    return codec.encode({"body": hashlib.sha256(body).hexdigest(), "method": method.upper(), "nonce": nonce,
                         "requester": requester, "target": target, "time_ms": time_ms})


def authorization(key: SigningKey, chain_id: str, method: str, target: str, body: bytes = b"", *,
                  now_ms: int | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value that signs ``method target`` with ``body`` as ``key``, now
    (or at ``now_ms``), with a fresh random nonce (or ``nonce``)."""
    time_ms = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = os.urandom(16).hex() if nonce is None else nonce
    signed = signed_request(method, target, body, key.public_hex, time_ms, nonce)
    sig = key.sign("request", chain_id, signed).hex()
    return f"{SCHEME} key={key.public_hex}, time={time_ms}, nonce={nonce}, sig={sig}"


def sign_headers(key: SigningKey, chain_id: str, method: str, target: str, body: bytes = b"", *,
                 now_ms: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """``{"Authorization": ...}`` for a request (see :func:`authorization`)."""
    return {"Authorization": authorization(key, chain_id, method, target, body, now_ms=now_ms, nonce=nonce)}


# --- what arrives -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """The parameters of a ``CareLedger-Request`` Authorization header."""

    requester: str
    time_ms: int
    nonce: str
    signature: bytes


def is_signed(authorization_value: str | None) -> bool:
    """Does this Authorization header value use the signed-request scheme?"""
    return authorization_value is not None and \
        authorization_value.strip().partition(" ")[0].lower() == SCHEME.lower()


def parse_authorization(value: str | None) -> Credentials:
    """The credentials of an Authorization header value.

    Raises MISSING_SIGNATURE (no header, or another scheme) or BAD_SIGNATURE (a parameter missing,
    repeated, unknown or out of shape). The messages never echo the header.
    """
    if value is None or not is_signed(value):
        raise AuthError(f"this request must be signed: Authorization: {SCHEME} key=…, time=…, nonce=…, sig=… "
                        "(docs/protocol.md section 4.3)", Code.MISSING_SIGNATURE)
    params: dict[str, str] = {}
    for part in value.strip()[len(SCHEME):].split(","):
        match = _PARAM.match(part)
        if match is None or match[1] not in _PATTERNS or match[1] in params:
            raise AuthError(f"the {SCHEME} header takes key, time, nonce and sig once each", Code.BAD_SIGNATURE)
        params[match[1]] = match[3]
    for name, pattern in _PATTERNS.items():
        if name not in params or not pattern.match(params[name]):
            raise AuthError(f"the {SCHEME} header's {name} is missing or out of shape", Code.BAD_SIGNATURE)
    return Credentials(params["key"], int(params["time"]), params["nonce"], bytes.fromhex(params["sig"]))


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as the node received it: what a verifier checks."""

    method: str
    target: str  # the path and query exactly as sent
    body: bytes
    authorization: str | None


class RequestBody(BaseModel):
    """Base of every typed request body: strict, no unknown fields, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


B = TypeVar("B")


@dataclass(frozen=True)
class Verified(Generic[B]):
    """A request whose signature and freshness were checked, with its typed body (None for a GET)."""

    requester: str
    time_ms: int
    hash: str  # SHA-256 of the signed bytes, hex: what audit entries cite and replay memory keeps
    body: B

    @property
    def hash_bytes(self) -> bytes:
        return bytes.fromhex(self.hash)


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
        """Raises REQUEST_REPLAYED for a hash seen before (within its window)."""
        expires = request_ms + self.window_ms + 1
        with self._lock:
            if len(self._seen) > 100_000:
                self._seen = {h: t for h, t in self._seen.items() if t >= now_ms}
            if request_hash in self._seen:
                raise LedgerError("this request was already used", Code.REQUEST_REPLAYED)
            self._seen[request_hash] = expires
        if self._persist is not None and not self._persist(request_hash, expires, now_ms):
            raise LedgerError("this request was already used", Code.REQUEST_REPLAYED)


def _number(text: str) -> int | float:
    """A JSON number written with a fraction or an exponent: the integer it equals, if it is one (JSON
    Schema's ``integer`` counts ``44.0`` as 44, and so do typed requests), else a float, which no typed
    request field accepts."""
    value = Decimal(text)
    if value.is_finite() and abs(value) <= MAX_INTEGER and value == value.to_integral_value():
        return int(value)
    return float(text)


def parse_json(body: bytes) -> Any:
    """A request body as JSON (UTF-8; no NaN or Infinity; integral numbers as integers, see
    :func:`_number`). Raises REQUEST_MALFORMED."""
    def refuse(text: str) -> Any:
        raise ValueError(text)

    try:
        return json.loads(body, parse_constant=refuse, parse_float=_number)
    except (ValueError, RecursionError):
        raise LedgerError("the request body is not JSON", Code.REQUEST_MALFORMED) from None


def parse_exact_json(body: bytes) -> Any:
    """A request body as JSON with every decimal's exact text kept (:func:`.canonical.parse_exact`, for
    a FHIR resource inside). Raises REQUEST_MALFORMED."""
    try:
        return parse_exact(body)
    except LedgerError as exc:
        raise LedgerError(f"the request body is not JSON ({exc.message})", Code.REQUEST_MALFORMED) from None


def parse_body(doc: Any, kinds: Mapping[str, type[RequestBody]]) -> RequestBody:
    """The typed request of ``doc``: an object whose ``kind`` is one of ``kinds``. Raises REQUEST_MALFORMED
    (naming the field, never echoing its value)."""
    if type(doc) is not dict or doc.get("kind") not in kinds:
        raise LedgerError(f"the request must be an object whose kind is one of {', '.join(kinds)}",
                          Code.REQUEST_MALFORMED)
    try:
        return kinds[doc["kind"]].model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise LedgerError(f"request {where}: {first.get('msg', 'invalid')}", Code.REQUEST_MALFORMED) from None


def verify_signature(request: SignedRequest, chain_id: str, suite: CryptoSuite, now_ms: int,
                     window_ms: int = FRESHNESS_MS) -> tuple[Credentials, bytes]:
    """Steps 1 to 4 of the module docstring; returns the credentials and the request hash."""
    creds = parse_authorization(request.authorization)
    signed = signed_request(request.method, request.target, request.body, creds.requester, creds.time_ms,
                            creds.nonce)
    suite.verify(parse_public_key(creds.requester), "request", chain_id, signed, creds.signature)
    if abs(now_ms - creds.time_ms) > window_ms:
        raise AuthError(f"the request time is more than {window_ms // 1000} s from the node's clock",
                        Code.REQUEST_STALE)
    return creds, hashlib.sha256(signed).digest()


def verify_request(request: SignedRequest, chain_id: str, suite: CryptoSuite, now_ms: int, *,
                   kinds: Mapping[str, type[RequestBody]] | None = None, guard: ReplayGuard | None = None,
                   window_ms: int = FRESHNESS_MS, parse: Callable[[bytes], Any] = parse_json) -> Verified[Any]:
    """Check a signed request (every step of the module docstring, in order); returns who signed, when,
    the request hash and the typed body (``kinds`` given) or None (a bodiless GET).

    ``guard`` is the replay memory; a verifier that chooses its memory by the body (a gateway, per
    custodian vault) passes None and calls :meth:`ReplayGuard.check_and_remember` itself.

    Raises MISSING_SIGNATURE, BAD_SIGNATURE, REQUEST_STALE, REQUEST_MALFORMED (the body is not one of
    ``kinds``, or a GET carries one) and REQUEST_REPLAYED.
    """
    creds, digest = verify_signature(request, chain_id, suite, now_ms, window_ms)
    body: RequestBody | None = None
    if kinds is not None:
        body = parse_body(parse(request.body), kinds)
    elif request.body:
        raise LedgerError("this request takes no body", Code.REQUEST_MALFORMED)
    if guard is not None:
        guard.check_and_remember(digest, creds.time_ms, now_ms)
    return Verified(creds.requester, creds.time_ms, digest.hex(), body)


# --- the records kinds --------------------------------------------------------------------------------------

class ReadRequest(RequestBody):
    """A gateway read (``POST /v1/gateway/read``): records of one patient, for a purpose."""

    kind: Literal["read"]
    custodian: OrgId
    patient: Pseudonym
    records: RecordList
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


class StoreRequest(RequestBody):
    """A custodian member stores a FHIR resource or bundle (``POST /v1/gateway/store``); ``record`` makes
    it a new version of that record."""

    kind: Literal["store"]
    custodian: OrgId
    patient: Pseudonym
    resource: dict[str, Any] = Field(description="The FHIR resource or Bundle (decimals kept exactly).")
    record: RecordId | None = None


class ViewRequest(RequestBody):
    """The patient's (or a delegate's) own view: records, consents, delegates, access log."""

    kind: Literal["view"]
    patient: Pseudonym
    format: Literal["json", "fhir"] = "json"


class IndexRequest(RequestBody):
    """The patient's records the requester's consent covers for ``purpose``."""

    kind: Literal["index"]
    patient: Pseudonym
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


class AnchorsRequest(RequestBody):
    """The ledger anchors of records the requester may read, to check fetched content against."""

    kind: Literal["anchors"]
    patient: Pseudonym
    records: RecordList
    purpose: Purpose
    emergency: bool = False
    study: StudyId | None = None


QUERY_KINDS: Mapping[str, type[RequestBody]] = {"view": ViewRequest, "index": IndexRequest,
                                                "anchors": AnchorsRequest}
"""The kinds ``POST /v1/records/query`` takes."""
AnyRequest = ReadRequest | StoreRequest | ViewRequest | IndexRequest | AnchorsRequest


__all__ = ["FRESHNESS_MS", "QUERY_KINDS", "SCHEME", "AnchorsRequest", "AnyRequest", "Credentials", "IndexRequest",
           "Nonce", "ReadRequest", "ReplayGuard", "RequestBody", "SignedRequest", "StoreRequest", "Verified",
           "ViewRequest", "authorization", "is_signed", "parse_authorization", "parse_body", "parse_exact_json",
           "parse_json", "sign_headers", "signed_request", "verify_request", "verify_signature"]
