"""Helpers shared by the route modules: the node of a request, bodies, JSON views.

Every route that takes a body reads it with :func:`read_body` or :func:`read_through`, and so
enforces its media type (``Content-Type: application/json``; UNSUPPORTED_MEDIA_TYPE otherwise) and
its size limit in one place.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from careledger.api.errors import code_name
from careledger.api.schemas import errors
from careledger.api.status import http_status
from careledger.core.block import Receipt
from careledger.core.errors import Code, EncodingError, LedgerError
from careledger.node.engine import Engine
from careledger.vault.requests import SCHEME, RequestBody, SignedRequest

HEX32_PATTERN = r"^[0-9a-f]{64}$"


def node_of(request: Request) -> Engine:
    """The engine serving this request (the solo node, or a CometBFT-backed node)."""
    node: Engine = request.app.state.node
    return node


# --- signed requests (docs/protocol.md section 4.3) -----------------------------------------------------------
#
# The server-side entry points every route with a signed request uses (records, gateway, supply
# alerts, FHIR; claims, research and trials routes the same way):
#
#   signed = signed_request(request, await read_body(request, LIMIT))    # or signed_request(request): a GET
#   verified = careledger.vault.requests.verify_request(signed, chain_id, suite, now_ms,
#                                                        kinds={"kind": Model}, guard=ReplayGuard(...))
#   verified.requester, verified.hash (audit entries cite it), verified.body (a typed Model, or None)
#
# and documents itself with ``openapi_extra=signed_route(Model, ...)`` (or ``signed_route()`` for a GET).

SIGNED_REQUEST_SECURITY = "CareLedgerRequest"
"""The name of the signed-request security scheme in the OpenAPI document's components."""
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    SIGNED_REQUEST_SECURITY: {
        "type": "http", "scheme": SCHEME,
        "description": f"Authorization: {SCHEME} key=<hex32>, time=<ms>, nonce=<32..64 hex>, sig=<hex64>, where sig "
                       "is Ed25519 in signing domain 'request' over canonical({body: hex(SHA-256(body bytes)), "
                       "method, nonce, requester, target: path and query as sent, time_ms}); docs/protocol.md "
                       "section 4.3. Each signed request is accepted once, within 5 minutes of its time."},
    "FhirBearer": {"type": "http", "scheme": "bearer",
                   "description": "A token from POST /fhir/auth/token (the FHIR facade only; docs/fhir.md)."},
}
"""The security schemes the OpenAPI document declares (:func:`careledger.api.app.create_app` adds them)."""


SIGNED_REQUEST_REFUSALS: tuple[Code, ...] = (Code.MISSING_SIGNATURE, Code.BAD_SIGNATURE, Code.REQUEST_STALE,
                                             Code.REQUEST_MALFORMED, Code.REQUEST_REPLAYED)
"""What :func:`careledger.vault.requests.verify_request` refuses with, in its order."""
BODY_REFUSALS: tuple[Code, ...] = (Code.UNSUPPORTED_MEDIA_TYPE, Code.OVERSIZED)
"""What :func:`read_body` refuses with."""


def refusals(*codes: Code) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the statuses these codes answer with, taken from the one
    status table (:func:`careledger.api.status.http_status`): a route declares the codes it can
    raise, never a status by hand. INTERNAL_ERROR (500) is always declared."""
    return errors(*sorted({http_status(code) for code in (*codes, Code.INTERNAL_ERROR)}))


def target_of(request: Request) -> str:
    """The request's path and query exactly as sent (the raw request target, no scheme or host):
    what a signed request signs as its target."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return str(raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else ""))


def signed_request(request: Request, body: bytes = b"") -> SignedRequest:
    """What a signed-request verifier checks (:func:`careledger.vault.requests.verify_request`): the
    method, the target as sent, the body bytes as read (empty for a GET), and the Authorization header.

    Read the body with :func:`read_body` first, so its media type and size are enforced; pass the bytes
    exactly as read (the signature covers their SHA-256)."""
    return SignedRequest(request.method, target_of(request), body, request.headers.get("authorization"))


def signed_route(*kinds: type[RequestBody], also: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` for a route that takes a signed request: the security scheme (with ``also``,
    other schemes that are accepted instead, such as a bearer token) and, when ``kinds`` are given,
    the JSON request body as one of those typed requests (their schemas, from the models, each
    self-contained: :func:`inline_defs`)."""
    extra: dict[str, Any] = {"security": [{SIGNED_REQUEST_SECURITY: []}, *({name: []} for name in also)]}
    if kinds:
        schemas = [inline_defs(kind.model_json_schema(mode="validation")) for kind in kinds]
        schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        extra["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return extra


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with every ``$ref`` to its own ``$defs`` replaced by the definition, and no
    ``$defs``: self-contained, to sit inside a route's ``requestBody``. Raises ValueError for a
    recursive model (its schema cannot be inlined)."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def inline(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref[len("#/$defs/"):]
                if name in seen:
                    raise ValueError(f"a typed request's schema is recursive ({name})")
                return inline({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}, (*seen, name))
            return {k: inline(v, seen) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [inline(v, seen) for v in node]
        return node

    out: dict[str, Any] = inline(schema, ())
    return out


JSON_MEDIA_TYPES = frozenset({"application/json"})
READ_THROUGH_FACTOR = 4
"""A transaction body up to this many times its limit is read to the end (not kept), so that its
refusal as OVERSIZED can still name its hash; a larger one is refused unread."""


def require_media_type(request: Request, accepted: frozenset[str] = JSON_MEDIA_TYPES) -> None:
    """Refuse a body that is not declared as one of ``accepted`` (``application/json`` unless a route
    takes more): UNSUPPORTED_MEDIA_TYPE. Parameters are allowed, except a charset other than UTF-8
    (JSON is UTF-8). The message never echoes the header."""
    declared = request.headers.get("content-type")
    if declared is None:
        raise LedgerError(f"send the body as Content-Type: {' or '.join(sorted(accepted))}",
                          Code.UNSUPPORTED_MEDIA_TYPE)
    media_type, *params = (part.strip() for part in declared.split(";"))
    charsets = [p.partition("=")[2].strip().strip('"').lower() for p in params
                if p.partition("=")[0].strip().lower() == "charset"]
    if media_type.lower() not in accepted or any(c not in ("utf-8", "utf8") for c in charsets):
        raise LedgerError(f"this Content-Type is not accepted here; send {' or '.join(sorted(accepted))}",
                          Code.UNSUPPORTED_MEDIA_TYPE)


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError:
        raise LedgerError("Content-Length is not an integer", Code.BAD_REQUEST) from None


async def read_body(request: Request, limit: int, accepted: frozenset[str] = JSON_MEDIA_TYPES) -> bytes:
    """The raw request body of a JSON route: refused with UNSUPPORTED_MEDIA_TYPE unless declared as
    ``accepted`` (before anything is read), and with OVERSIZED once it exceeds ``limit`` bytes.

    A declared ``Content-Length`` above the limit is refused before any of the body is read; a body
    without one (chunked) is read only until it passes the limit.
    """
    require_media_type(request, accepted)
    return await _read_up_to(request, limit, limit)


async def read_through(request: Request, limit: int) -> bytes:
    """The whole raw body of a route that takes a transaction, read before anything is checked, so
    that every refusal (of its media type, its size, the transaction itself) can name its hash.

    Only a body above ``READ_THROUGH_FACTOR * limit`` bytes is refused here, unread (OVERSIZED, no
    hash); the caller checks :func:`require_media_type` and ``limit`` itself (:func:`check_size`).
    """
    return await _read_up_to(request, READ_THROUGH_FACTOR * limit, limit)


async def _read_up_to(request: Request, cap: int, limit: int) -> bytes:
    """The body, refused with OVERSIZED (naming ``limit``) when its declared length is above ``cap``
    (before reading) or once more than ``cap`` bytes have arrived."""
    size = _declared_length(request)
    if size is not None and size > cap:
        raise EncodingError(f"request body is {size} bytes; the limit is {limit}", Code.OVERSIZED)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise EncodingError(f"request body exceeds the limit of {limit} bytes", Code.OVERSIZED)
        chunks.append(chunk)
    return b"".join(chunks)


def check_size(body: bytes, limit: int) -> None:
    """OVERSIZED when ``body`` is longer than ``limit`` bytes."""
    if len(body) > limit:
        raise EncodingError(f"request body is {len(body)} bytes; the limit is {limit}", Code.OVERSIZED)


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    """A receipt as the API shows it: the hashed fields plus the code's name and the human message."""
    return {"code": receipt.code, "name": code_name(receipt.code), "result": receipt.result,
            "events": list(receipt.events), "index": receipt.index, "message": receipt.message}


def not_found(what: str) -> LedgerError:
    return LedgerError(f"{what} does not exist", Code.NOT_FOUND)
