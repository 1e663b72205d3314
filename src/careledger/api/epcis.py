"""EPCIS 2.0-style capture and query endpoints (after GS1's REST binding, ``/capture`` and ``/events``).

Capture is a ledger write, so it is signed: ``POST /v1/epcis/capture`` takes the EPCIS document as
its body and three headers, ``X-CareLedger-Key``, ``X-CareLedger-Nonce`` and
``X-CareLedger-Signature``. The signature is the ordinary transaction signature of a
``supply.epcis_capture`` (version 1) transaction whose payload is ``{"document": <the body as
text>}``, so the node rebuilds exactly the transaction the client signed. A document that fails
the schema or the CBV is answered 400 at once; an admitted one 202 with the capture job's URL (the
transaction hash). The job then succeeds or fails as a whole: EPCIS's default "rollback" capture
error behaviour. Capture is idempotent: a document whose events were all captured before is answered
200 ``{"status": "already_captured", "captureID", "captureIDs"}`` naming the original capture jobs
(nothing is written); one that repeats only some of them is refused 409 ``EPCIS_DUPLICATE_EVENTS``.
A job whose document has other members' events reports the multi-party capture (``capture``: who
has confirmed, what still waits). The body is sent as ``application/ld+json`` (EPCIS 2.0's media type) or
``application/json``; anything else is 415 UNSUPPORTED_MEDIA_TYPE.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from careledger.api import schemas
from careledger.api.common import (
    check_size,
    node_of,
    not_found,
    read_body,
    read_through,
    receipt_json,
    require_media_type,
)
from careledger.api.errors import LedgerRoute, error_response
from careledger.api.services import services_of
from careledger.api.supply import capture_json, now_ms
from careledger.contracts.supply import epcis
from careledger.contracts.supply.layout import get_capture, parse_ref
from careledger.core import codec
from careledger.core.errors import Code, EncodingError, LedgerError, NotFound
from careledger.core.tx import body_of
from careledger.node.engine import Engine
from careledger.supply.epcis_export import CONTEXT, export_document, filter_events
from careledger.supply.event_index import MAX_PAGE, CapturedEventIndex, EventQuery

router = APIRouter(prefix="/v1/epcis", tags=["epcis"], route_class=LedgerRoute)

NONCE_HEADER = "x-careledger-nonce"


def capture_tx(chain_id: str, key: str, nonce: int, document: str, sig_hex: str) -> bytes:
    """The wire bytes of the capture transaction a client signed (see the module docstring)."""
    body = body_of(chain_id, "supply.epcis_capture", 1, key, nonce, {"document": document})
    return codec.encode({"body": body, "sig": sig_hex})


EPCIS_MEDIA_TYPES = frozenset({"application/json", "application/ld+json"})


def _rebuild(request: Request, chain_id: str, document: bytes) -> bytes:
    """The capture transaction the client signed, from its headers and body. Raises
    MISSING_SIGNATURE (a header is missing), BAD_REQUEST (the nonce) or MALFORMED_ENCODING (not UTF-8)."""
    key = request.headers.get("x-careledger-key")
    nonce = request.headers.get(NONCE_HEADER)
    sig = request.headers.get("x-careledger-signature")
    if not key or not nonce or not sig:
        raise LedgerError("capture needs X-CareLedger-Key, X-CareLedger-Nonce and X-CareLedger-Signature",
                          Code.MISSING_SIGNATURE)
    if not nonce.isdigit() or len(nonce) > 15:
        raise LedgerError("X-CareLedger-Nonce must be a positive integer", Code.BAD_REQUEST)
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        raise EncodingError("an EPCIS document is UTF-8 JSON", Code.MALFORMED_ENCODING) from None
    return capture_tx(chain_id, key, int(nonce), text, sig)


@router.post("/capture", status_code=202, summary="Capture an EPCIS 2.0 document (signed)", response_model=None,
             responses=schemas.errors(400, 401, 403, 409, 413, 415, 422, 503))
async def capture(request: Request) -> JSONResponse:
    """Validate the EPCIS document (schema + CBV), then admit it as one signed transaction: every
    event is applied, or none is. Every refusal whose transaction can be rebuilt (headers present,
    body UTF-8) carries its hash as `captureID` and `tx_hash`."""
    node = node_of(request)
    limit = node.chain.max_tx_bytes
    document = await read_through(request, limit)
    raw: bytes | None = None
    unbuildable: LedgerError | None = None
    try:
        raw = _rebuild(request, node.chain.chain_id, document)
    except LedgerError as exc:
        unbuildable = exc  # answered after the media type check, without a hash
    extra = {} if raw is None else {"captureID": sub_hash(raw), "tx_hash": sub_hash(raw)}
    try:
        require_media_type(request, EPCIS_MEDIA_TYPES)
        if unbuildable is not None:
            raise unbuildable
        assert raw is not None
        check_size(raw, limit)
        sub = await run_in_threadpool(node.submit_async, raw)
        await asyncio.wrap_future(sub.admitted)
    except LedgerError as exc:
        if exc.code == Code.EPCIS_ALREADY_CAPTURED:
            originals = await run_in_threadpool(original_captures, node, document)
            if originals:
                return JSONResponse({"captureID": originals[0], "captureIDs": originals, "status": "already_captured"},
                                    status_code=200, headers={"Location": f"/v1/epcis/capture/{originals[0]}"})
        return error_response(exc, extra)
    capture_id = sub.tx_hash.hex()
    return JSONResponse({"captureID": capture_id, "status": "pending"}, status_code=202,
                        headers={"Location": f"/v1/epcis/capture/{capture_id}"})


def original_captures(node: Engine, document: bytes) -> list[str]:
    """The captures (transaction hashes, sorted) that recorded the events of an already captured document."""
    try:
        capture = epcis.normalise_document(document.decode("utf-8"))
    except (LedgerError, UnicodeDecodeError):
        return []
    return sorted({rec.capture for _, rec in epcis.captured_before(node.store.view(), capture.events)})


def sub_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@router.get("/capture/{capture_id}", summary="A capture job's outcome", response_model=None)
def capture_job(request: Request, capture_id: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]) -> JSONResponse:
    """`running` while pending; then `success` with the receipt, or the error that rolled it back; `capture`
    is the multi-party capture (confirmations, pending events) when the document had other members' events."""
    node = node_of(request)
    key = bytes.fromhex(capture_id)
    if node.is_pending(key):
        return JSONResponse({"captureID": capture_id, "running": True, "success": None,
                             "captureErrorBehaviour": "rollback", "errors": []})
    try:
        stored = node.store.tx(key)
    except NotFound:
        raise not_found(f"capture job {capture_id}") from None
    receipt = receipt_json(stored.receipt)
    errors = [] if receipt["code"] == 0 else [{"code": receipt["code"], "name": receipt["name"],
                                               "message": receipt["message"]}]
    multi = get_capture(node.store.view(), capture_id) if receipt["code"] == 0 else None
    return JSONResponse({"captureID": capture_id, "running": False, "success": receipt["code"] == 0,
                         "captureErrorBehaviour": "rollback", "height": stored.height, "receipt": receipt,
                         "errors": errors, "capture": None if multi is None else capture_json(multi)})


@router.post("/validate", summary="Validate an EPCIS document without capturing it", response_model=None)
async def validate(request: Request) -> JSONResponse:
    """Schema, CBV and ledger-mapping checks only: `{valid, events, ops}`, or the first problem."""
    node = node_of(request)
    text = (await read_body(request, node.chain.max_tx_bytes, EPCIS_MEDIA_TYPES)).decode("utf-8", errors="replace")
    try:
        result = epcis.normalise_document(text)
    except LedgerError as exc:
        return JSONResponse({"valid": False, "error": exc.to_dict()})
    return JSONResponse({"valid": True, "events": result.events, "ops": [op.op for op in result.ops],
                         "document_sha256": result.document_sha256})


def _query(request: Request, epcs: list[str], biz_step: str | None, ge: str | None, lt: str | None,
           event_type: str | None) -> dict[str, Any]:
    refs = [parse_ref(e) for e in epcs]
    doc = export_document(node_of(request).store.view(), refs, now_ms(), query_name="SimpleEventQuery")
    results = doc["epcisBody"]["queryResults"]["resultsBody"]
    results["eventList"] = filter_events(results["eventList"], biz_step, ge, lt, event_type)
    return doc


EpcList = Annotated[list[str], Query(max_length=100)]
QUERY_CONTEXT = [*CONTEXT, {"careledger": "urn:careledger:epcis:"}]


@router.get("/events", summary="Query events (EPCIS 2.0 SimpleEventQuery parameters)", response_model=None)
def events(request: Request, match_epc: Annotated[list[str], Query(alias="MATCH_epc", max_length=100)] = [],  # noqa: B006
           eq_biz_step: Annotated[str | None, Query(alias="EQ_bizStep", max_length=100)] = None,
           ge_event_time: Annotated[str | None, Query(alias="GE_eventTime", max_length=40)] = None,
           lt_event_time: Annotated[str | None, Query(alias="LT_eventTime", max_length=40)] = None,
           event_type: Annotated[str | None, Query(alias="eventType", max_length=40)] = None,
           eq_biz_location: Annotated[str | None, Query(alias="EQ_bizLocation", max_length=200)] = None,
           eq_read_point: Annotated[str | None, Query(alias="EQ_readPoint", max_length=200)] = None,
           match_parent: Annotated[list[str], Query(alias="MATCH_parentID", max_length=100)] = [],  # noqa: B006
           match_any: Annotated[list[str], Query(alias="MATCH_anyEPC", max_length=100)] = [],  # noqa: B006
           per_page: Annotated[int | None, Query(alias="perPage", ge=1, le=MAX_PAGE)] = None,
           next_page: Annotated[str | None, Query(alias="nextPageToken", pattern=r"^[0-9]{1,9}$")] = None,
           ) -> JSONResponse:
    """An EPCISQueryDocument. With `MATCH_epc` alone (optionally `EQ_bizStep`, `GE_eventTime`/`LT_eventTime`,
    `eventType`): the items' whole histories (their contents too), whichever transactions wrote them. With
    any other parameter, or without `MATCH_epc`: the events of EPCIS captures *as captured* (every field
    verbatim; `careledger:status` `applied` or `pending`, `careledger:captureID`), filtered by every
    parameter given, `perPage` at a time (default 100), the next page's `nextPageToken` in a `Link` header
    (and as `careledger:nextPageToken` in `queryResults`)."""
    captured = not match_epc or any(v for v in (eq_biz_location, eq_read_point, match_parent, match_any, per_page,
                                                 next_page))
    if not captured:
        return JSONResponse(_query(request, match_epc, eq_biz_step, ge_event_time, lt_event_time, event_type))
    q = EventQuery(event_type=event_type, biz_step=eq_biz_step, ge_time=ge_event_time, lt_time=lt_event_time,
                   biz_location=eq_biz_location, read_point=eq_read_point, match_epc=tuple(match_epc),
                   match_parent=tuple(match_parent), match_any=tuple(match_any))
    index: CapturedEventIndex = services_of(request).get(CapturedEventIndex)
    found, more = index.query(node_of(request).store, q, int(next_page or 0), per_page or 100)
    results: dict[str, Any] = {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": found}}
    doc = {"@context": QUERY_CONTEXT, "type": "EPCISQueryDocument", "schemaVersion": "2.0",
           "creationDate": epcis.format_time(now_ms()), "epcisBody": {"queryResults": results}}
    headers = {}
    if more is not None:
        results["careledger:nextPageToken"] = str(more)
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        headers["Link"] = f'</v1/epcis/events?{urlencode([*params, ("nextPageToken", str(more))])}>; rel="next"'
    return JSONResponse(doc, headers=headers)


@router.get("/epcs/{epc:path}/events", summary="Events of one EPC", response_model=None)
def epc_events(request: Request, epc: str) -> JSONResponse:
    """An EPCISQueryDocument with every event of one EPC (URN, Digital Link or ref) and its contents."""
    return JSONResponse(_query(request, [epc], None, None, None, None))


@router.get("/export", summary="Export items' histories as an EPCIS 2.0 document", response_model=None)
def export(request: Request, epc: Annotated[list[str], Query(max_length=100)],
           contents: Annotated[bool, Query(description="Include containers' contents")] = True) -> JSONResponse:
    """An EPCISDocument (schema-valid) with every recorded event of the items, in time order."""
    refs = [parse_ref(e) for e in epc]
    return JSONResponse(export_document(node_of(request).store.view(), refs, now_ms(), contents=contents))
