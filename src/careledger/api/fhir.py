"""The FHIR R4 REST facade over HTTP (docs/fhir.md).

* ``GET  /fhir/metadata``                         the CapabilityStatement (no credentials needed);
* ``GET  /fhir/.well-known/smart-configuration``  where and how to get a token;
* ``POST /fhir/auth/token``                       a signed ``token`` request for a short-lived bearer token;
* ``GET  /fhir/{type}?…``                         search: a searchset Bundle with paging links;
* ``GET  /fhir/{type}/{id}``                      read.

Reads and searches need ``Authorization: Bearer <token>`` or a signed request (``Authorization:
CareLedger-Request …``, :mod:`careledger.vault.fhir_access`). Every refusal is a FHIR ``OperationOutcome`` whose first
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

from careledger.api.client_tls import require_org_certificate
from careledger.api.common import node_of, read_body, signed_request, signed_route
from careledger.api.errors import refusal_response
from careledger.api.records import RecordsServices
from careledger.api.schemas import errors
from careledger.api.services import NodeContext, Services, services_of
from careledger.core.errors import Code, LedgerError
from careledger.research.fhir import ResearchStudyResources, ResearchSubjectResources
from careledger.vault import fhir_facade
from careledger.vault.fhir_access import TOKEN_KINDS
from careledger.vault.fhir_facade import FhirFacade, FhirValidator
from careledger.vault.fhir_ledger import AuditEventResources, ConsentResources, ProvenanceResources
from careledger.vault.fhir_search import ResourceProvider

log = logging.getLogger("careledger.api")

FHIR_JSON = "application/fhir+json"
CODE_SYSTEM = "urn:careledger:code"
MAX_TOKEN_REQUEST_BYTES = 16 * 1024

PROVIDERS: tuple[ResourceProvider, ...] = (ConsentResources(), AuditEventResources(), ProvenanceResources(),
                                          ResearchStudyResources(), ResearchSubjectResources())
"""The ledger's own FHIR resources, one provider per type. A contract whose state maps to FHIR adds its
providers here, one line each (every other type a vault holds is served as clinical records)."""

_LOGIN = frozenset({Code.MISSING_SIGNATURE, Code.BAD_SIGNATURE, Code.UNKNOWN_SIGNER, Code.WRONG_CHAIN,
                    Code.TOKEN_INVALID, Code.REQUEST_STALE})
_ISSUE_BY_CODE: dict[Code, str] = {
    **{c: "login" for c in _LOGIN}, Code.TOKEN_EXPIRED: "expired",
    Code.SIGNER_REVOKED: "forbidden", Code.UNAUTHORISED: "forbidden", Code.NOT_PATIENT_OR_DELEGATE: "forbidden",
    Code.NOT_CUSTODIAN: "forbidden", Code.RECORD_PATIENT_MISMATCH: "forbidden",
    Code.FHIR_TYPE_UNKNOWN: "not-supported", Code.UNSUPPORTED_MEDIA_TYPE: "not-supported",
    Code.NOT_FOUND: "not-found", Code.CONSENT_UNKNOWN: "not-found", Code.RECORD_UNKNOWN: "not-found",
    Code.VAULT_NOT_HOSTED: "not-found", Code.PATIENT_UNKNOWN: "not-found", Code.RECORD_ERASED: "deleted",
    Code.REQUEST_REPLAYED: "conflict", Code.FHIR_SEARCH_INVALID: "invalid", Code.REQUEST_MALFORMED: "invalid",
    Code.BAD_REQUEST: "invalid", Code.OVERSIZED: "too-long", Code.TIMEOUT: "timeout",
    Code.NODE_UNAVAILABLE: "transient",
}
"""The FHIR issue type of each code the facade answers (consent refusals are ``forbidden``; anything
else is an ``exception``). The HTTP status comes from the API's one table, never from here."""


router = APIRouter(prefix="/fhir", tags=["fhir"])


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


# --- OperationOutcome errors --------------------------------------------------------------------------------

_FALLBACK = json.dumps({"resourceType": "OperationOutcome", "issue": [{
    "severity": "error", "code": "exception", "diagnostics": "internal error",
    "details": {"coding": [{"system": CODE_SYSTEM, "code": str(int(Code.INTERNAL_ERROR)),
                            "display": Code.INTERNAL_ERROR.name}]}}]}).encode()


def issue_type(code: Code) -> str:
    """The FHIR IssueType of a refusal with ``code``."""
    if code in _ISSUE_BY_CODE:
        return _ISSUE_BY_CODE[code]
    return "forbidden" if 2101 <= int(code) <= 2112 else "exception"  # the consent refusals


def operation_outcome(exc: LedgerError) -> dict[str, Any]:
    """The OperationOutcome of a refusal: one error issue carrying the code and the message."""
    return {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": issue_type(exc.code), "diagnostics": exc.message,
        "details": {"coding": [{"system": CODE_SYSTEM, "code": str(int(exc.code)), "display": exc.code.name}],
                    "text": exc.message}}]}


def outcome_response(request: Request, exc: LedgerError) -> Response:
    """``exc`` as an OperationOutcome, with the status :func:`careledger.api.status.http_status` gives
    its code (and, for a credentials refusal, the Bearer challenge of RFC 6750)."""
    validator: FhirValidator = getattr(request.app.state, "fhir_outcomes", None) or FhirValidator(10_000)
    request.app.state.fhir_outcomes = validator
    try:
        body = validator.json(operation_outcome(exc))
    except LedgerError:
        exc, body = LedgerError("internal error", Code.INTERNAL_ERROR), _FALLBACK
    headers = {}
    if exc.code in _LOGIN or exc.code == Code.TOKEN_EXPIRED:
        challenge = 'Bearer realm="CareLedger"'
        if request.headers.get("authorization") is not None:
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    return refusal_response(exc, body, FHIR_JSON, headers)


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
def _outcomes(declared: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """:func:`careledger.api.schemas.errors` declarations, with an OperationOutcome body instead."""
    return {status: {"description": f"OperationOutcome: {entry['description']}", **_FHIR_OBJECT}
            for status, entry in declared.items()}


_CREDENTIALS = signed_route(also=("FhirBearer",))
"""A facade read or search takes a signed request or ``Authorization: Bearer <token>``."""


# --- routes -------------------------------------------------------------------------------------------------

@router.get("/metadata", summary="FHIR CapabilityStatement", response_class=Response,
            responses={200: {"description": "CapabilityStatement", **_FHIR_OBJECT}, **_outcomes(errors(500))})
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
                        **_outcomes(errors(400, 401, 403, 409, 413, 415, 500))},
             openapi_extra=signed_route(*TOKEN_KINDS.values()))
async def token(request: Request) -> Response:
    """A signed request (``Authorization: CareLedger-Request …``) whose body is ``{"kind": "token",
    "scope"?, "purpose"?, "emergency"?, "study"?, "expires_in"?}`` (docs/fhir.md)."""
    try:
        signed = signed_request(request, await read_body(request, MAX_TOKEN_REQUEST_BYTES))
        facade = facade_of(request)
        await run_in_threadpool(require_org_certificate, request, node_of(request), signed)
        answer = await run_in_threadpool(facade.exchange, signed)
    except LedgerError as exc:
        return outcome_response(request, exc)
    except Exception as exc:
        log.error("internal error on the token endpoint: %s", type(exc).__name__)
        return outcome_response(request, LedgerError("internal error", Code.INTERNAL_ERROR))
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.get("/{resource_type}", summary="FHIR search", response_class=Response,
            responses={200: {"description": "searchset Bundle", **_FHIR_OBJECT},
                       **_outcomes(errors(400, 401, 403, 404, 409, 500))},
            openapi_extra={**_CREDENTIALS, "parameters": [
                {"name": "patient", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "_count", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
                {"name": "_offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}}]})
async def search(request: Request, resource_type: str) -> Response:
    """Search one type for one patient; standard parameters per type (see /fhir/metadata)."""
    signed = signed_request(request)
    params, base = request.query_params.multi_items(), base_url(request)
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")

    def work(facade: FhirFacade) -> bytes:
        access = facade.authenticate(signed)
        return facade.search(access, resource_type, params, base, lenient=lenient)

    return await _answer(request, work)


@router.get("/{resource_type}/{resource_id}", summary="FHIR read", response_class=Response,
            responses={200: {"description": "the resource", **_FHIR_OBJECT},
                       **_outcomes(errors(401, 403, 404, 409, 410, 500))},
            openapi_extra=_CREDENTIALS)
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    """Read one resource: a ledger resource, or a clinical record from this node's vaults (audited)."""
    signed = signed_request(request)

    def work(facade: FhirFacade) -> bytes:
        access = facade.authenticate(signed)
        return facade.read(access, resource_type, resource_id)

    return await _answer(request, work)


@router.get("/{path:path}", summary="Other FHIR interactions (not supported)", response_class=Response,
            responses=_outcomes(errors(404)), include_in_schema=False)
async def unsupported(request: Request, path: str) -> Response:
    """history, vread, compartments, operations: not offered by this facade."""
    return outcome_response(request, LedgerError("this FHIR interaction is not supported here: read and search "
                                                 "only (see /fhir/metadata)", Code.NOT_FOUND))
