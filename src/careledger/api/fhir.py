"""The FHIR R4 REST facade over HTTP (docs/fhir.md).

* ``GET  /fhir/metadata``                         the CapabilityStatement (no credentials needed);
* ``GET  /fhir/.well-known/smart-configuration``  where and how to get a token;
* ``POST /fhir/auth/token``                       a signed ``token`` request for a short-lived bearer token;
* ``GET  /fhir/{type}?…``                         search: a searchset Bundle with paging links;
* ``GET  /fhir/{type}/{id}``                      read.

Reads and searches need ``Authorization: Bearer <token>`` or the signed-request headers
(:mod:`careledger.vault.fhir_access`). Every refusal is a FHIR ``OperationOutcome`` whose first
issue carries the stable CareLedger code (``details.coding``: system :data:`CODE_SYSTEM`, the code
as text, its name as display); the HTTP status follows from the code. The facade itself, without
HTTP, is :class:`careledger.vault.fhir_facade.FhirFacade`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from careledger.api.common import read_body
from careledger.api.records import RecordsServices
from careledger.api.services import NodeContext, Services, services_of
from careledger.api.status import http_status as status_table
from careledger.core.errors import Code, LedgerError
from careledger.vault import fhir_facade
from careledger.vault.fhir_facade import FhirFacade, FhirValidator
from careledger.vault.fhir_ledger import AuditEventResources, ConsentResources, ProvenanceResources
from careledger.vault.fhir_search import ResourceProvider

log = logging.getLogger("careledger.api")

FHIR_JSON = "application/fhir+json"
CODE_SYSTEM = "urn:careledger:code"
MAX_TOKEN_REQUEST_BYTES = 16 * 1024

PROVIDERS: tuple[ResourceProvider, ...] = (ConsentResources(), AuditEventResources(), ProvenanceResources())
"""The ledger's own FHIR resources, one provider per type. A contract whose state maps to FHIR adds its
providers here, one line each (every other type a vault holds is served as clinical records)."""

_FACADE_STATUS: dict[Code, int] = {Code.TOKEN_INVALID: 401, Code.TOKEN_EXPIRED: 401, Code.FHIR_TYPE_UNKNOWN: 404,
                                   Code.FHIR_SEARCH_INVALID: 400}
_ISSUE_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict",
                    410: "deleted", 413: "too-long", 422: "business-rule", 503: "transient", 504: "timeout"}
_ISSUE_BY_CODE = {Code.TOKEN_EXPIRED: "expired", Code.FHIR_TYPE_UNKNOWN: "not-supported"}

router = APIRouter(prefix="/fhir", tags=["fhir"])


def http_status(code: Code) -> int:
    """The HTTP status of a refusal: the API's one status table (:func:`careledger.api.status.http_status`),
    with rows for this facade's codes (2301-2304) until that table has them."""
    return _FACADE_STATUS.get(code) or status_table(code)


def start(context: NodeContext, services: Services) -> None:
    """Open the facade at start-up, over the records gateway (``records.start`` runs first): its
    providers, and the token secret this node's tokens are checked against until it stops."""
    gateway = services.get(RecordsServices).gateway
    services.add(FhirFacade(gateway.ledger, gateway, PROVIDERS))


def facade_of(request: Request) -> FhirFacade:
    """The facade of the app serving ``request``; NODE_UNAVAILABLE outside its start-up and shutdown."""
    return services_of(request).get(FhirFacade)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + router.prefix


def target_of(request: Request) -> str:
    """The request's path and query exactly as sent (what signed-request headers sign)."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return str(raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""))


# --- OperationOutcome errors --------------------------------------------------------------------------------

_FALLBACK = json.dumps({"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "exception", "diagnostics": "internal error",
    "details": {"coding": [{"system": CODE_SYSTEM, "code": str(int(Code.INTERNAL_ERROR)),
                            "display": Code.INTERNAL_ERROR.name}]}}]}).encode()


def operation_outcome(exc: LedgerError, status: int) -> dict[str, Any]:
    """The OperationOutcome of a refusal: one error issue carrying the code and the message."""
    issue = _ISSUE_BY_CODE.get(exc.code) or _ISSUE_BY_STATUS.get(status, "exception")
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": issue, "diagnostics": exc.message,
        "details": {"coding": [{"system": CODE_SYSTEM, "code": str(int(exc.code)), "display": exc.code.name}],
                    "text": exc.message}}]}


def outcome_response(request: Request, exc: LedgerError) -> Response:
    """``exc`` as an OperationOutcome with its status (and, for 401, the Bearer challenge of RFC 6750)."""
    status = http_status(exc.code)
    validator: FhirValidator = getattr(request.app.state, "fhir_outcomes", None) or FhirValidator(10_000)
    request.app.state.fhir_outcomes = validator
    try:
        body = validator.json(operation_outcome(exc, status))
    except LedgerError:
        body, status = _FALLBACK, 500
    headers = {}
    if status == 401:
        challenge = 'Bearer realm="CareLedger"'
        if request.headers.get("authorization") is not None:
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


async def _answer(request: Request, work: Callable[[FhirFacade], bytes]) -> Response:
    """Run ``work`` on the facade in a worker thread (ledger views are per thread); errors as outcomes."""
    try:
        facade = facade_of(request)
        body = await run_in_threadpool(work, facade)
    except LedgerError as exc:
        return outcome_response(request, exc)
    except Exception as exc:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return outcome_response(request, LedgerError("internal error", Code.INTERNAL_ERROR))
    return Response(body, media_type=FHIR_JSON)


# --- OpenAPI descriptions -----------------------------------------------------------------------------------

_FHIR_OBJECT = {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}
_DESCRIPTIONS = {400: "Malformed search (FHIR_SEARCH_INVALID) or request", 401: "No, expired or invalid credentials",
                 403: "Not allowed: revoked key, scope, consent, not the patient or a delegate",
                 404: "Unknown resource type, or no such resource", 409: "Signed request replayed",
                 410: "The record was erased", 413: "The body is larger than the limit",
                 500: "Internal error, or the audit entry could not be written (nothing released)"}


def _responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        s: {"description": f"OperationOutcome: {_DESCRIPTIONS[s]}", **_FHIR_OBJECT} for s in statuses}
    return out


_CREDENTIALS = [
    {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "Bearer <token> from POST /fhir/auth/token"},
    *({"name": h, "in": "header", "required": False, "schema": {"type": "string"},
       "description": "signed-request header (protocol.md section 4.3)"}
      for h in ("X-CareLedger-Key", "X-CareLedger-Timestamp", "X-CareLedger-Signature")),
]


# --- routes -------------------------------------------------------------------------------------------------

@router.get("/metadata", summary="FHIR CapabilityStatement", response_class=Response,
            responses={200: {"description": "CapabilityStatement", **_FHIR_OBJECT}, **_responses(500)})
async def metadata(request: Request) -> Response:
    """What this server offers: resource types, interactions, search parameters and the token endpoint."""
    base = base_url(request)
    return await _answer(request, lambda facade: facade.capability_statement(base))


@router.get("/.well-known/smart-configuration", summary="SMART configuration", response_class=JSONResponse)
async def smart_configuration(request: Request) -> JSONResponse:
    """The token endpoint and what it grants (SMART App Launch, section 'Backend Services')."""
    return JSONResponse(fhir_facade.smart_configuration(base_url(request)))


@router.post("/auth/token", summary="Exchange a signed request for a bearer token", response_class=JSONResponse,
             responses={200: {"description": "access_token, token_type, expires_in, scope, purpose (patient)"},
                        **_responses(400, 401, 403, 409, 413, 500)},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "required": ["request", "sig"],
                 "properties": {"request": {"type": "object"}, "sig": {"type": "string"}}}}}}})
async def token(request: Request) -> Response:
    """Body: ``{"request": {"kind": "token", "requester", "time_ms", "nonce", "scope"?, "purpose"?,
    "emergency"?, "study"?, "expires_in"?}, "sig"}`` signed like a vault request (docs/fhir.md)."""
    try:
        raw = await read_body(request, MAX_TOKEN_REQUEST_BYTES)
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            raise LedgerError("the body is not JSON", Code.REQUEST_MALFORMED) from None
        facade = facade_of(request)
        answer = await run_in_threadpool(facade.exchange, doc)
    except LedgerError as exc:
        return outcome_response(request, exc)
    except Exception as exc:
        log.error("internal error on the token endpoint: %s", type(exc).__name__)
        return outcome_response(request, LedgerError("internal error", Code.INTERNAL_ERROR))
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/{resource_type}", summary="FHIR search", response_class=Response,
            responses={200: {"description": "searchset Bundle", **_FHIR_OBJECT},
                       **_responses(400, 401, 403, 404, 409, 500)},
            openapi_extra={"parameters": [
                *_CREDENTIALS,
                {"name": "patient", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "_count", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
                {"name": "_offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}]})
async def search(request: Request, resource_type: str) -> Response:
    """Search one type for one patient; standard parameters per type (see /fhir/metadata)."""
    target, headers = target_of(request), dict(request.headers)
    params, base = request.query_params.multi_items(), base_url(request)
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")

    def work(facade: FhirFacade) -> bytes:
        access = facade.authenticate("GET", target, headers)
        return facade.search(access, resource_type, params, base, lenient=lenient)

    return await _answer(request, work)


@router.get("/{resource_type}/{resource_id}", summary="FHIR read", response_class=Response,
            responses={200: {"description": "the resource", **_FHIR_OBJECT},
                       **_responses(401, 403, 404, 409, 410, 500)},
            openapi_extra={"parameters": _CREDENTIALS})
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    """Read one resource: a ledger resource, or a clinical record from this node's vaults (audited)."""
    target, headers = target_of(request), dict(request.headers)

    def work(facade: FhirFacade) -> bytes:
        access = facade.authenticate("GET", target, headers)
        return facade.read(access, resource_type, resource_id)

    return await _answer(request, work)


@router.get("/{path:path}", summary="Other FHIR interactions (not supported)", response_class=Response,
            responses=_responses(404), include_in_schema=False)
async def unsupported(request: Request, path: str) -> Response:
    """history, vread, compartments, operations: not offered by this facade."""
    return outcome_response(request, LedgerError("this FHIR interaction is not supported here: read and search "
                                                 "only (see /fhir/metadata)", Code.NOT_FOUND))
