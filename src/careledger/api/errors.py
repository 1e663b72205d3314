"""The HTTP error boundary: every refusal becomes ``{"error": {"code", "name", "message"}}``.

The ``code`` is the stable numeric :class:`~careledger.core.errors.Code`; the HTTP status is derived
from it by :func:`http_status_of` (table in ``docs/http-api.md``). FastAPI's own validation errors
become ``BAD_REQUEST`` (400) and unknown routes ``NOT_FOUND`` (404), in the same shape.

Logging here never includes request bodies, payloads or exception messages that might echo them:
only the code, the route and (for transactions) the hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from careledger.core.errors import Code, LedgerError

log = logging.getLogger("careledger.api")

_STATUS: dict[Code, int] = {
    Code.MALFORMED_ENCODING: 400, Code.NON_CANONICAL_ENCODING: 400, Code.OVERSIZED: 413,
    Code.UNKNOWN_TX_TYPE: 400, Code.INVALID_PAYLOAD: 400,
    Code.WRONG_CHAIN: 401, Code.BAD_SIGNATURE: 401, Code.MISSING_SIGNATURE: 401, Code.UNKNOWN_SIGNER: 401,
    Code.SIGNER_REVOKED: 403, Code.UNAUTHORISED: 403,
    Code.NONCE_REPLAYED: 409, Code.NONCE_OUT_OF_ORDER: 409, Code.DUPLICATE_TX: 409, Code.MEMPOOL_FULL: 503,
    Code.TX_EXPIRED: 409,
    Code.NOT_FOUND: 404, Code.ALREADY_EXISTS: 409, Code.INVALID_STATE: 409, Code.LIMIT_EXCEEDED: 422,
    Code.INVALID_GENESIS: 500, Code.STORE_CORRUPTED: 500, Code.TIMEOUT: 504, Code.NODE_UNAVAILABLE: 503,
    Code.BAD_REQUEST: 400, Code.INTERNAL_ERROR: 500,
    Code.MEMBER_EXISTS: 409, Code.PATIENT_EXISTS: 409, Code.KEY_IN_USE: 409,
    Code.ALREADY_VOTED: 409, Code.PROPOSAL_CLOSED: 409,
}


def code_name(code: int) -> str:
    """The stable name of a numeric code (``"OK"`` for 0, ``"UNKNOWN_<n>"`` for codes this release lacks)."""
    try:
        return Code(code).name
    except ValueError:
        return f"UNKNOWN_{code}"


def http_status_of(code: int) -> int:
    """The HTTP status for a refusal with ``code``; contract-specific codes not in the table give 422."""
    try:
        return _STATUS.get(Code(code), 422)
    except ValueError:
        return 422


def error_body(code: Code, message: str) -> dict[str, Any]:
    return {"error": {"code": int(code), "name": code.name, "message": message}}


def error_response(exc: LedgerError, extra: dict[str, Any] | None = None) -> JSONResponse:
    """The JSON response for ``exc``; ``extra`` adds top-level fields beside ``error`` (e.g. ``tx_hash``)."""
    content: dict[str, Any] = {"error": exc.to_dict()}
    if extra:
        content.update(extra)
    return JSONResponse(content, status_code=http_status_of(int(exc.code)))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:  # never echo the offending input: it could be anything
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _ledger_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LedgerError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(error_body(Code.BAD_REQUEST, _validation_message(exc)), status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        body = error_body(Code.NOT_FOUND, f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        body = error_body(Code.BAD_REQUEST, f"method {request.method} is not allowed here")
    else:
        body = error_body(Code.BAD_REQUEST, str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class LedgerRoute(APIRoute):
    """A route whose unexpected exceptions become a 500 INTERNAL_ERROR in the standard shape.

    Handled here rather than by Starlette's server-error middleware, which re-raises (and so gets the
    exception, message and all, printed by the server's logger).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (LedgerError, RequestValidationError, StarletteHTTPException):
                raise
            except Exception as exc:
                log.error("internal error on %s %s: %s", request.method, path, type(exc).__name__)
                return JSONResponse(error_body(Code.INTERNAL_ERROR, "internal error"), status_code=500)

        return guarded
