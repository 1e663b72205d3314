"""Signed research requests to a custodian's gateway: the vault's envelope, with research kinds.

The envelope, its signing domain (``request``, this chain), its freshness window and its replay rule
are those of :mod:`careledger.vault.requests` (build one with
:func:`careledger.vault.requests.sign_request`)::

    {"request": {"kind": ..., "requester": hex32, "time_ms": int, "nonce": hex32..64, ...kind fields},
     "sig": hex64}

Kinds and their fields:

* ``research-release``  custodian, study, recipient — a data steward (or admin) of the custodian asks
  its gateway to build, anchor and seal a release of the study for the recipient;
* ``research-package``  custodian, release — the recipient fetches the sealed package;
* ``research-answer``   custodian, query — a data steward has the custodian answer an aggregate query;
* ``research-results``  custodian, query — a researcher of the study's sponsor fetches that answer;
* ``research-log``      linkage (optional) — the patient's research log. Signed by the *study key*
  itself (an unregistered key: it proves she holds the study pseudonym, and says nothing else), or
  by her registered key or her active delegate's with ``linkage``, a linkage statement of hers that
  tells the answering node which study pseudonym is hers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from careledger.contracts.consent import StudyId
from careledger.core import codec
from careledger.core.crypto import CryptoSuite, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.types import NonNegativeInt, OrgId, PublicKeyHex
from careledger.vault.requests import FRESHNESS_MS, Nonce, ReplayGuard

ReleaseId = Annotated[str, StringConstraints(pattern=r"^rel-[0-9a-f]{24}(-[0-9]{1,4})?$")]
QueryId = Annotated[str, StringConstraints(pattern=r"^rq-[0-9a-f]{24}(-[0-9]{1,4})?$")]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    requester: PublicKeyHex
    time_ms: NonNegativeInt
    nonce: Nonce


class ReleaseRequest(_Request):
    kind: Literal["research-release"]
    custodian: OrgId
    study: StudyId
    recipient: PublicKeyHex


class PackageRequest(_Request):
    kind: Literal["research-package"]
    custodian: OrgId
    release: ReleaseId


class AnswerRequest(_Request):
    kind: Literal["research-answer"]
    custodian: OrgId
    query: QueryId


class ResultsRequest(_Request):
    kind: Literal["research-results"]
    custodian: OrgId
    query: QueryId


class LogRequest(_Request):
    kind: Literal["research-log"]
    linkage: dict[str, Any] | None = None


MODELS: dict[str, type[_Request]] = {"research-release": ReleaseRequest, "research-package": PackageRequest,
                                     "research-answer": AnswerRequest, "research-results": ResultsRequest,
                                     "research-log": LogRequest}


@dataclass(frozen=True)
class Verified:
    """A research request whose shape, signature and freshness were checked."""

    body: Any  # one of the request models
    hash: str  # SHA-256 of the signed request bytes, hex

    @property
    def requester(self) -> str:
        return str(self.body.requester)


def verify_research_request(doc: Any, chain_id: str, suite: CryptoSuite, now_ms: int, kind: str,
                            guard: ReplayGuard | None, window_ms: int = FRESHNESS_MS) -> Verified:
    """Check a research request envelope of ``kind``: shape, signature, freshness, novelty (in that order).

    Raises REQUEST_MALFORMED (not ``{request, sig}``, another kind, a field out of shape),
    MISSING_SIGNATURE, BAD_SIGNATURE (not signed by the requester for this chain), REQUEST_STALE
    (more than ``window_ms`` from the node's clock) or REQUEST_REPLAYED (``guard`` has seen it).
    """
    if type(doc) is not dict or set(doc) - {"request", "sig"} or "request" not in doc:
        raise LedgerError("a request is {request, sig}", Code.REQUEST_MALFORMED)
    body, sig_hex = doc["request"], doc.get("sig")
    if type(body) is not dict or body.get("kind") != kind:
        raise LedgerError(f"this route takes a {kind} request", Code.REQUEST_MALFORMED)
    if type(sig_hex) is not str or len(sig_hex) != 128:
        raise AuthError("request is not signed", Code.MISSING_SIGNATURE)
    try:
        model = MODELS[kind].model_validate(body)
        signature = bytes.fromhex(sig_hex)
        message = codec.encode(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise LedgerError(f"request {where}: {first.get('msg', 'invalid')}", Code.REQUEST_MALFORMED) from None
    except (ValueError, LedgerError):
        raise LedgerError("request is not canonical JSON with a hex signature", Code.REQUEST_MALFORMED) from None
    suite.verify(parse_public_key(model.requester), "request", chain_id, message, signature)
    if abs(now_ms - model.time_ms) > window_ms:
        raise LedgerError(f"request time is more than {window_ms // 1000} s from the node's clock",
                          Code.REQUEST_STALE)
    digest = hashlib.sha256(message).digest()
    if guard is not None:
        guard.check_and_remember(digest, model.time_ms, now_ms)
    return Verified(model, digest.hex())


__all__ = ["MODELS", "AnswerRequest", "LogRequest", "PackageRequest", "QueryId", "ReleaseId", "ReleaseRequest",
           "ResultsRequest", "Verified", "verify_research_request"]
