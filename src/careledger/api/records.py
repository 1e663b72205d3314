"""Records, consent and audit over HTTP: patient-scoped ledger queries and the custodian gateway.

Every route but the erasure takes a *signed request* (``Authorization: CareLedger-Request …``, see
:mod:`careledger.vault.requests`) whose body is a typed request: no route answers anything about a
patient to an unauthenticated caller.

* ``POST /v1/records/query``  — ``view`` (patient or delegate), ``index`` and ``anchors`` (parties the
  patient's consent covers), from committed ledger state; any node answers;
* ``GET  /v1/gateway``        — the custodians whose vaults this node hosts, with their gateway keys;
* ``POST /v1/gateway/store``  — a custodian member stores a FHIR resource or bundle (``resource`` in the
  signed ``store`` request); invalid FHIR answers 422 with an ``operation_outcome``;
* ``POST /v1/gateway/read``   — consent-checked, audited reads; returns content with its salt (with
  ``client_tls = "organisations"``, an organisation's members read over mutual TLS: :mod:`.client_tls`);
* ``POST /v1/gateway/erase``  — ``{"tx": hex}`` of a signed ``records.erase``; commits it, then shreds.

Consent and delegate changes and break-glass sessions are ordinary transactions (``POST /v1/txs``).
Request bodies are read with exact decimals (:mod:`careledger.vault.canonical`), so a FHIR decimal
arrives exactly as the client wrote it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from careledger.api.client_tls import require_org_certificate
from careledger.api.common import (
    BODY_REFUSALS,
    SIGNED_REQUEST_REFUSALS,
    node_of,
    read_body,
    refusals,
    signed_request,
    signed_route,
)
from careledger.api.errors import LedgerRoute, error_response
from careledger.api.metrics import NodeMetrics
from careledger.api.services import NodeContext, Services, services_of
from careledger.core.errors import Code, LedgerError
from careledger.node.home import Home, HomeError
from careledger.vault.fhir import FhirInvalid
from careledger.vault.gateway import Gateway
from careledger.vault.ledger import NodeLedger
from careledger.vault.queries import LedgerQueries
from careledger.vault.requests import QUERY_KINDS, ReadRequest, SignedRequest, StoreRequest, parse_exact_json

MAX_REQUEST_BYTES = 64 * 1024
MAX_STORE_BYTES = 16 * 1024 * 1024

router = APIRouter(tags=["records"], route_class=LedgerRoute)


@dataclass
class RecordsServices:
    """What the routes need: the ledger queries, and the gateway over the vaults this node hosts."""

    queries: LedgerQueries
    gateway: Gateway


def start(context: NodeContext, services: Services) -> None:
    """Open the gateway over ``HOME/vault`` at start-up: it shreds what the ledger says was erased
    meanwhile, discards versions whose anchors never committed, and subscribes to the engine's
    commits (so erasures committed through any node are shredded); closed at shutdown."""
    ledger = NodeLedger(context.engine)
    gateway = Gateway.open(ledger, context.vault_root, audit_wait=audit_wait_of(context.home))
    services.add(RecordsServices(LedgerQueries(ledger), gateway), close=gateway.close)


def records_of(request: Request) -> RecordsServices:
    return services_of(request).get(RecordsServices)


def audit_wait_of(home: Path) -> str:
    """The node's ``audit_wait`` setting (config.json); "committed" when the home has no config."""
    try:
        return Home(home).config().audit_wait
    except HomeError:
        return "committed"


def _error(exc: LedgerError, tx_hash: str | None = None) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, FhirInvalid):
        extra["operation_outcome"] = exc.outcome
    if tx_hash is not None:
        extra["tx_hash"] = tx_hash
    return error_response(exc, extra)


QUERY_REFUSALS = (Code.NODE_UNAVAILABLE, Code.UNKNOWN_SIGNER, Code.NOT_PATIENT_OR_DELEGATE)
"""A ledger query's refusals after the signed request's."""
GATEWAY_REFUSALS = (Code.NODE_UNAVAILABLE, Code.VAULT_NOT_HOSTED, Code.UNKNOWN_SIGNER, Code.SIGNER_REVOKED,
                    Code.NOT_CUSTODIAN, Code.RECORD_UNKNOWN, Code.RECORD_ERASED, Code.VAULT_INTEGRITY, Code.TIMEOUT)
"""Refusals every gateway request can meet after the signed request's."""
STORE_REFUSALS = (Code.PATIENT_UNKNOWN, Code.FHIR_INVALID, Code.FHIR_UNSUPPORTED, Code.RECORD_VERSION_CONFLICT)
READ_REFUSALS = (Code.CLIENT_CERT_REQUIRED, Code.CLIENT_CERT_NOT_REGISTERED, Code.RECORD_PATIENT_MISMATCH,
                 Code.CONSENT_REQUIRED)
"""A read's own (every consent refusal answers 403, as CONSENT_REQUIRED does)."""


async def _signed(request: Request, limit: int = MAX_REQUEST_BYTES) -> SignedRequest:
    """The signed request as received: media type and size checked, the body read whole."""
    return signed_request(request, await read_body(request, limit))


async def _answer(fn: Any, *args: Any, tx_hash: str | None = None) -> JSONResponse:
    try:
        return JSONResponse(await run_in_threadpool(fn, *args))
    except LedgerError as exc:
        return _error(exc, tx_hash)


@router.post("/v1/records/query", summary="Patient-scoped ledger query (signed)", response_model=None,
             openapi_extra=signed_route(*QUERY_KINDS.values()),
             responses=refusals(*BODY_REFUSALS, *SIGNED_REQUEST_REFUSALS, *QUERY_REFUSALS))
async def query(request: Request) -> JSONResponse:
    """``view``, ``index`` or ``anchors`` for one patient, answered only to the signed parties allowed."""
    signed = await _signed(request)
    return await _answer(records_of(request).queries.answer, signed)


@router.get("/v1/gateway", summary="Custodians hosted by this node", response_model=None)
async def custodians(request: Request) -> JSONResponse:
    """The organisations whose vaults this node hosts, with each gateway key (it signs anchors and audit)."""
    return JSONResponse({"custodians": records_of(request).gateway.custodians()})


@router.post("/v1/gateway/store", summary="Store and anchor a FHIR resource or bundle (signed)", response_model=None,
             openapi_extra=signed_route(StoreRequest),
             responses=refusals(*BODY_REFUSALS, *SIGNED_REQUEST_REFUSALS, *GATEWAY_REFUSALS, *STORE_REFUSALS))
async def store(request: Request) -> JSONResponse:
    """A custodian member stores FHIR content: validated, encrypted, anchored; all-or-nothing."""
    try:
        signed = await _signed(request, MAX_STORE_BYTES)
    except LedgerError as exc:
        return _error(exc)
    return await _answer(records_of(request).gateway.store, signed)


@router.post("/v1/gateway/read", summary="Read records (signed; consent-checked, audited)", response_model=None,
             openapi_extra=signed_route(ReadRequest),
             responses=refusals(*BODY_REFUSALS, *SIGNED_REQUEST_REFUSALS, *GATEWAY_REFUSALS, *READ_REFUSALS))
async def read(request: Request) -> JSONResponse:
    """Records with their salts, after the consent check and an audit entry per record."""
    metrics: NodeMetrics = request.app.state.metrics
    try:
        signed = await _signed(request)
        await run_in_threadpool(require_org_certificate, request, node_of(request), signed)
        result = await run_in_threadpool(records_of(request).gateway.read, signed)
    except LedgerError as exc:
        metrics.gateway_reads.labels("refused").inc()
        return _error(exc)
    metrics.count_gateway_read(result)
    return JSONResponse(result)


@router.post("/v1/gateway/erase", summary="Erase a record (crypto-shredding)", response_model=None)
async def erase(request: Request) -> JSONResponse:
    """Body ``{"tx": hex}``: a ``records.erase`` transaction signed by the patient, a delegate or the custodian.
    Every refusal after the hex is decoded carries the transaction's `tx_hash`."""
    try:
        doc = parse_exact_json(await read_body(request, MAX_REQUEST_BYTES))
        if type(doc) is not dict or set(doc) != {"tx"} or type(doc["tx"]) is not str:
            raise LedgerError('body must be {"tx": hex}', Code.REQUEST_MALFORMED)
        raw = bytes.fromhex(doc["tx"])
    except ValueError:
        return _error(LedgerError("tx is not hex", Code.REQUEST_MALFORMED))
    except LedgerError as exc:
        return _error(exc)
    return await _answer(records_of(request).gateway.erase, raw, tx_hash=hashlib.sha256(raw).hexdigest())
