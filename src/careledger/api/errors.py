"""The HTTP error boundary: every refusal becomes ``{"error": {"code", "name", "message"}}``.

The ``code`` is the stable numeric :class:`~careledger.core.errors.Code`; the HTTP status is derived
from it, and only from it, by :func:`careledger.api.status.http_status` (the table in
``docs/http-api.md``): no route chooses an error status itself. FastAPI's own validation errors
become ``BAD_REQUEST``, unknown routes ``NOT_FOUND`` and wrong methods ``METHOD_NOT_ALLOWED``, in
the same shape and through the same table.

Logging here never includes request bodies, payloads or exception messages that might echo them:
only the code, the route and (for transactions) the hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from careledger.api.status import http_status
from careledger.core.errors import Code, LedgerError

log = logging.getLogger("careledger.api")

def code_name(code: int) -> str:
    """The stable name of a numeric code (``"OK"`` for 0, ``"UNKNOWN_<n>"`` for codes this release lacks)."""
    try:
        return Code(code).name
    except ValueError:
        return f"UNKNOWN_{code}"


def error_response(exc: LedgerError, extra: dict[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON response for ``exc``, its status from :func:`~careledger.api.status.http_status`;
    ``extra`` adds top-level fields beside ``error`` (``tx_hash`` when the refusal concerns a
    transaction whose hash is known, an ``operation_outcome``, ...)."""
    content: dict[str, Any] = {"error": exc.to_dict()}
    if extra:
        content.update(extra)
    return JSONResponse(content, status_code=http_status(exc.code), headers=headers)


def refusal_response(exc: LedgerError, body: bytes, media_type: str,
                     headers: Mapping[str, str] | None = None) -> Response:
    """A refusal in another body format (an OperationOutcome, ...), its status from the one table."""
    return Response(body, status_code=http_status(exc.code), media_type=media_type, headers=headers)


def code_error(code: Code, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return error_response(LedgerError(message, code), headers=headers)


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
    return code_error(Code.BAD_REQUEST, _validation_message(exc))


FRAMEWORK_CODES: dict[int, Code] = {
    HTTPStatus.NOT_FOUND: Code.NOT_FOUND, HTTPStatus.METHOD_NOT_ALLOWED: Code.METHOD_NOT_ALLOWED,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: Code.UNSUPPORTED_MEDIA_TYPE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE: Code.OVERSIZED}


async def _http_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals (no such route, wrong method, ...) as codes, answered through
    the status table like every other refusal; any other one is BAD_REQUEST (or INTERNAL_ERROR)."""
    assert isinstance(exc, StarletteHTTPException)
    code = FRAMEWORK_CODES.get(exc.status_code,
                                Code.INTERNAL_ERROR if exc.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR
                                else Code.BAD_REQUEST)
    if code is Code.NOT_FOUND:
        message = f"no route {request.method} {request.url.path}"
    elif code is Code.METHOD_NOT_ALLOWED:
        message = f"method {request.method} is not allowed here"
    else:
        message = str(exc.detail)
    return code_error(code, message, headers=exc.headers)


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
                return code_error(Code.INTERNAL_ERROR, "internal error")

        return guarded
