"""Signed requests to a node's claims desk: documents to prepare, and claim queries about a patient.

The envelope and its signature are those of the records gateway (:mod:`careledger.vault.requests`)::

    {"request": {"kind": ..., "requester": hex32, "time_ms": int, "nonce": hex, ...kind fields}, "sig": hex64}

``sig`` is Ed25519 over ``signing_message("request", chain_id, codec.encode(request))``: bound to the
chain, never valid as a transaction, checked for freshness (±5 min) and, where the desk keeps a
replay guard, for novelty. :func:`careledger.vault.requests.sign_request` signs every kind.

Kinds:

* ``claim.prepare``       custodian (the provider), patient, encounter, coverage, insurer, content
                          (SHA-256 of the canonical FHIR ``Claim`` sent beside it), replaces, prior_payer_claim;
* ``coverage.prepare``    custodian (the insurer), patient, content (of the FHIR ``Coverage`` beside it),
                          coverage (the coverage a new version updates; absent to register one);
* ``claims.status``       claim — one claim with its adjudications, payments, appeals and flags;
* ``claims.list``         patient — a patient's claims;
* ``claims.flags``        insurer, since_height — an insurer's flag feed;
* ``claims.coverages``    patient — a patient's coverages;
* ``claims.eligibility``  patient, day (UTC days since 1970-01-01), insurer — FHIR CoverageEligibilityResponse.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from careledger.contracts.claims.handlers import ClaimId, CoverageId, Day
from careledger.contracts.records import Pseudonym, RecordId
from careledger.core import codec
from careledger.core.crypto import CryptoSuite, parse_public_key
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.types import Hex32, NonNegativeInt, OrgId, PublicKeyHex
from careledger.vault.requests import FRESHNESS_MS, Nonce, ReplayGuard, Verified


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    requester: PublicKeyHex
    time_ms: NonNegativeInt
    nonce: Nonce


class ClaimPrepare(_Request):
    """A provider's claims officer hands a FHIR Claim to its node's desk (sent beside the request)."""

    kind: Literal["claim.prepare"]
    custodian: OrgId
    patient: Pseudonym
    encounter: RecordId
    coverage: CoverageId
    insurer: OrgId
    content: Hex32
    replaces: ClaimId | None = None
    prior_payer_claim: ClaimId | None = None


class CoveragePrepare(_Request):
    """An insurer's claims officer hands a FHIR Coverage to its node's desk (sent beside the request)."""

    kind: Literal["coverage.prepare"]
    custodian: OrgId
    patient: Pseudonym
    content: Hex32
    coverage: CoverageId | None = None


class ClaimStatusQuery(_Request):
    kind: Literal["claims.status"]
    claim: ClaimId


class PatientClaimsQuery(_Request):
    kind: Literal["claims.list"]
    patient: Pseudonym


class FlagsQuery(_Request):
    kind: Literal["claims.flags"]
    insurer: OrgId
    since_height: NonNegativeInt = 0


class CoveragesQuery(_Request):
    kind: Literal["claims.coverages"]
    patient: Pseudonym


class EligibilityQuery(_Request):
    kind: Literal["claims.eligibility"]
    patient: Pseudonym
    day: Day | None = None
    insurer: OrgId | None = None


MODELS: dict[str, type[_Request]] = {
    "claim.prepare": ClaimPrepare, "coverage.prepare": CoveragePrepare, "claims.status": ClaimStatusQuery,
    "claims.list": PatientClaimsQuery, "claims.flags": FlagsQuery, "claims.coverages": CoveragesQuery,
    "claims.eligibility": EligibilityQuery,
}
QUERY_KINDS = ("claims.status", "claims.list", "claims.flags", "claims.coverages", "claims.eligibility")
ENVELOPE_KEYS = frozenset({"request", "sig"})


class SignedEnvelope(BaseModel):
    """The shape every signed request travels in (for the OpenAPI document; checked by :func:`verify`)."""

    model_config = ConfigDict(extra="forbid")
    request: dict[str, Any] = Field(description="The request: kind, requester, time_ms, nonce and the kind's fields.")
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature, domain 'request'.")]


def verify(doc: Any, chain_id: str, suite: CryptoSuite, now_ms: int, guard: ReplayGuard | None,
           kinds: tuple[str, ...], extra_keys: frozenset[str] = frozenset(),
           window_ms: int = FRESHNESS_MS) -> Verified:
    """Check an envelope of one of ``kinds``: shape, signature, freshness, novelty (with ``guard``).

    ``extra_keys`` are the top-level members a route takes beside the envelope (``resource``).
    Raises REQUEST_MALFORMED, MISSING_SIGNATURE, BAD_SIGNATURE, REQUEST_STALE or REQUEST_REPLAYED,
    in that order (the rules of :func:`careledger.vault.requests.verify_request`).
    """
    if type(doc) is not dict or set(doc) - ENVELOPE_KEYS - extra_keys or "request" not in doc:
        raise LedgerError("a request is {request, sig}", Code.REQUEST_MALFORMED)
    body, sig_hex = doc["request"], doc.get("sig")
    if type(body) is not dict or body.get("kind") not in kinds:
        raise LedgerError(f"request kind must be one of {', '.join(kinds)}", Code.REQUEST_MALFORMED)
    if type(sig_hex) is not str or len(sig_hex) != 128:
        raise AuthError("request is not signed", Code.MISSING_SIGNATURE)
    try:
        model = MODELS[body["kind"]].model_validate(body)
        signature = bytes.fromhex(sig_hex)
        message = codec.encode(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        raise LedgerError(f"request {where}: {first.get('msg', 'invalid')}", Code.REQUEST_MALFORMED) from None
    except (ValueError, LedgerError) as exc:
        raise LedgerError("request is not canonical JSON with a hex signature", Code.REQUEST_MALFORMED) from exc
    suite.verify(parse_public_key(body["requester"]), "request", chain_id, message, signature)
    if abs(now_ms - model.time_ms) > window_ms:
        raise LedgerError(f"request time is more than {window_ms // 1000} s from the node's clock",
                          Code.REQUEST_STALE)
    digest = hashlib.sha256(message).digest()
    if guard is not None:
        guard.check_and_remember(digest, model.time_ms, now_ms)
    return Verified(model, digest.hex())


__all__ = ["MODELS", "QUERY_KINDS", "ClaimPrepare", "ClaimStatusQuery", "CoveragePrepare", "CoveragesQuery",
           "EligibilityQuery", "FlagsQuery", "PatientClaimsQuery", "SignedEnvelope", "verify"]
