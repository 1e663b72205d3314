"""Transaction routes: submit one, submit a batch, look one up with its inclusion proof.

Submissions carry the signed wire bytes exactly as :func:`careledger.core.tx.sign_tx` produced them;
the server never parses and re-serialises them (the hash and signature are over those bytes).
Logs name the transaction hash and result code only, never the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from careledger.api import schemas
from careledger.api.common import (
    HEX32_PATTERN,
    check_size,
    node_of,
    not_found,
    read_body,
    read_through,
    receipt_json,
    require_media_type,
)
from careledger.api.errors import LedgerRoute, error_response
from careledger.core import codec
from careledger.core.block import Receipt
from careledger.core.errors import Code, EncodingError, LedgerError, NotFound
from careledger.node.engine import Engine, Submission
from careledger.node.store import tx_proof

log = logging.getLogger("careledger.api")

MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_WAIT_SECONDS = 120.0

router = APIRouter(prefix="/v1", tags=["transactions"], route_class=LedgerRoute)

Wait = Annotated[Literal["none", "commit"], Query(
    description="`none`: answer once the transaction is admitted to the mempool (202). "
                "`commit`: wait until it is in a committed block and return its receipt (200).")]
Timeout = Annotated[float, Query(gt=0, le=MAX_WAIT_SECONDS,
                                 description="With wait=commit: seconds to wait before answering 504 TIMEOUT.")]

TX_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The signed transaction's canonical wire bytes (RFC 8785 JSON), sent unchanged.",
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["body", "sig"],
            "properties": {
                "body": {"type": "object", "required": ["chain_id", "nonce", "payload", "signer", "type", "version"],
                         "properties": {"chain_id": {"type": "string"}, "nonce": {"type": "integer"},
                                        "payload": {"type": "object"}, "signer": {"type": "string"},
                                        "type": {"type": "string", "example": "identity.enrol_member"},
                                        "version": {"type": "integer"}}},
                "sig": {"type": "string", "description": "128 lower-case hex characters"}}}}},
    },
}
BATCH_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"A JSON array of at most {MAX_BATCH_ITEMS} hex-encoded transactions (wire bytes). "
                       "Items are admitted in array order, so one signer's consecutive nonces may share a batch.",
        "content": {"application/json": {"schema": {"type": "array", "maxItems": MAX_BATCH_ITEMS,
                                                    "items": {"type": "string", "pattern": "^([0-9a-f]{2})*$"}}}},
    },
}


class Admitter:
    """Hands ``POST /v1/txs`` submissions to the engine from one thread, in batches (for an engine
    whose ``quick_submit`` says its submission never waits on I/O: the solo engine).

    ``submit_async`` decodes (and, on the solo engine, waits while a block is written), so it runs off
    the event loop; a thread-pool hop per request costs more than the decode itself and lets many
    threads queue on the engine at once. Here one thread takes whatever submissions have arrived,
    starts each in arrival order, and answers the loop once per batch. It ends after
    :data:`IDLE_S` without work and starts again with the next submission.
    """

    IDLE_S = 5.0
    BATCH_MAX = 1000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._incoming: queue.SimpleQueue[tuple[bytes, asyncio.Future[Submission]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def submit(self, raw: bytes) -> Submission:
        """The engine's :meth:`~careledger.node.engine.Engine.submit_async` of ``raw``, from the admitter's
        thread; raises what it raises."""
        fut: asyncio.Future[Submission] = asyncio.get_running_loop().create_future()
        self._incoming.put((raw, fut))
        if not self._running:
            with self._lock:
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._run, name="tx-admitter", daemon=True).start()
        return await fut

    def _run(self) -> None:
        while True:
            try:
                first = self._incoming.get(timeout=self.IDLE_S)
            except queue.Empty:
                # submit() reads _running after its put(): an item put after the emptiness check
                # below finds _running false and starts a new thread.
                with self._lock:
                    self._running = False
                if self._incoming.empty():
                    return
                with self._lock:
                    if self._running:  # another thread took over meanwhile
                        return
                    self._running = True
                continue
            batch = [first]
            while len(batch) < self.BATCH_MAX:
                try:
                    batch.append(self._incoming.get_nowait())
                except queue.Empty:
                    break
            outcomes: list[tuple[asyncio.Future[Submission], Submission | BaseException]] = []
            for raw, fut in batch:
                try:
                    outcomes.append((fut, self.engine.submit_async(raw)))
                except Exception as exc:  # LedgerError for a refusal; anything else is the route's 500
                    outcomes.append((fut, exc))
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Submission],
                                                                 Submission | BaseException]]] = {}
            for fut, outcome in outcomes:
                by_loop.setdefault(fut.get_loop(), []).append((fut, outcome))
            for loop, group in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
                    loop.call_soon_threadsafe(_deliver, group)


def _deliver(group: list[tuple[asyncio.Future[Submission], Submission | BaseException]]) -> None:
    for fut, outcome in group:
        if fut.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)


class Relay:
    """Brings the node's futures' outcomes to one event loop, many per wake-up.

    ``asyncio.wrap_future`` wakes the loop once per future (a write to its self-pipe and a turn of the
    loop each); the engine settles its futures in batches (a batch of signature verdicts, a block), so
    here the first outcome of a burst schedules one call that delivers every outcome that has arrived
    by the time the loop runs it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._arrived: list[tuple[asyncio.Future[Any], Future[Any]]] = []

    def watch(self, fut: Future[Any]) -> asyncio.Future[Any]:
        """An awaitable of ``fut``'s outcome on this loop. Cancelling it (a timed-out waiter) only
        stops watching: the node's future is never cancelled."""
        mine: asyncio.Future[Any] = self.loop.create_future()
        fut.add_done_callback(lambda done: self._arrive(mine, done))
        return mine

    def _arrive(self, mine: asyncio.Future[Any], done: Future[Any]) -> None:
        with self._lock:
            self._arrived.append((mine, done))
            first = len(self._arrived) == 1
        if first:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            arrived, self._arrived = self._arrived, []
        for mine, done in arrived:
            if mine.done():
                continue
            error = done.exception()
            if error is not None:
                mine.set_exception(error)
            else:
                mine.set_result(done.result())


def relay_of(request: Request) -> Relay:
    """The app's relay for the running loop, made on first use."""
    loop = asyncio.get_running_loop()
    state = request.app.state
    relay: Relay | None = getattr(state, "tx_relay", None)
    if relay is None or relay.loop is not loop:
        relay = state.tx_relay = Relay(loop)
    return relay


def admitter_of(request: Request) -> Admitter:
    """The app's admitter, made on first use."""
    state = request.app.state
    admitter: Admitter | None = getattr(state, "tx_admitter", None)
    if admitter is None:
        admitter = state.tx_admitter = Admitter(node_of(request))
    return admitter


async def _outcome(relay: Relay, fut: Future[Any], timeout: float) -> Any:
    """The result of a node future (raising its exception), waiting ``timeout`` seconds at most
    (TimeoutError). A settled one is read at once; a waiter that gives up only stops watching."""
    if fut.done():
        return fut.result()
    return await asyncio.wait_for(relay.watch(fut), timeout)


def _json(doc: dict[str, Any], accepted: bool = False) -> Response:
    """A JSON answer (orjson): 202 for an ``accepted`` submission, else 200."""
    if accepted:
        return Response(orjson.dumps(doc), status_code=202, media_type="application/json")
    return Response(orjson.dumps(doc), status_code=200, media_type="application/json")


def _committed_height(node: Engine, tx_hash: bytes) -> int:
    return node.store.tx(tx_hash).height


def _heights(node: Engine, hashes: list[str]) -> list[int]:
    return [_committed_height(node, bytes.fromhex(h)) for h in hashes]


def _watch(fut: Future[Any]) -> asyncio.Future[Any]:
    """An awaitable for a node future that never cancels it: the node settles its futures itself and
    must not find one cancelled under it (a timed-out or disconnected waiter only stops watching)."""
    watch = asyncio.shield(asyncio.wrap_future(fut))
    watch.add_done_callback(_observe)
    return watch


def _observe(watch: asyncio.Future[Any]) -> None:
    """Mark a watch's outcome as seen, so one nobody waits for any more is not reported as lost."""
    if not watch.cancelled():
        watch.exception()


def _timeout_error(timeout: float, tx_hash: str, stage: str) -> LedgerError:
    return LedgerError(f"transaction was not {stage} within {timeout:g}s; it may still be; "
                       f"look it up at /v1/txs/{tx_hash}", Code.TIMEOUT)


@router.post(
    "/txs", status_code=202, summary="Submit a signed transaction", response_model=None,
    openapi_extra=TX_BODY_DOC,
    responses={202: {"model": schemas.SubmitPending, "description": "Admitted to the mempool (wait=none)"},
               200: {"model": schemas.SubmitCommitted,
                     "description": "Committed (wait=commit). A receipt code other than 0 means the contract "
                                    "refused it: it is in the block, its writes were rolled back."},
               **schemas.errors(400, 401, 403, 409, 413, 415, 422, 503, 504)},
)
async def submit_tx(request: Request, wait: Wait = "none", timeout: Timeout = 30.0) -> Response:
    """Admit a transaction: decode, check canonical form, size, chain, signature, nonce and the signer's
    authority against committed state. A refusal writes nothing. Every error answer carries the
    `tx_hash` of the bytes sent, except for a body too large to read (over 4 times `max_tx_bytes`)."""
    node = node_of(request)
    raw = await read_through(request, node.chain.max_tx_bytes)
    tx_hash = hashlib.sha256(raw).hexdigest()
    try:
        require_media_type(request)
        check_size(raw, node.chain.max_tx_bytes)
        if getattr(node, "quick_submit", False):
            sub = await admitter_of(request).submit(raw)
        else:  # an engine whose submission waits on I/O (CometBFT's RPC): one pool thread each
            sub = await run_in_threadpool(node.submit_async, raw)
        status = await _outcome(relay_of(request), sub.admitted, timeout)
    except LedgerError as exc:
        log.info("tx %s refused at admission: %s", tx_hash, exc.code.name)
        return error_response(exc, {"tx_hash": tx_hash})
    except TimeoutError:
        return error_response(_timeout_error(timeout, tx_hash, "admitted"), {"tx_hash": tx_hash})
    if wait == "none":
        return _json({"tx_hash": tx_hash, "status": status}, accepted=True)
    try:
        result = await _outcome(relay_of(request), sub.committed, timeout)
    except TimeoutError:
        return error_response(_timeout_error(timeout, tx_hash, "committed"), {"tx_hash": tx_hash, "status": "pending"})
    if isinstance(result, LedgerError):
        log.info("tx %s dropped from the block: %s", tx_hash, result.code.name)
        return error_response(result, {"tx_hash": tx_hash})
    assert isinstance(result, Receipt)
    height = await run_in_threadpool(_committed_height, node, sub.tx_hash)
    return _json({"tx_hash": tx_hash, "status": "committed", "height": height, "receipt": receipt_json(result)})


def _parse_batch(body: bytes) -> list[str]:
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        raise LedgerError("a batch is a JSON array of hex strings", Code.BAD_REQUEST) from None
    if type(items) is not list or not all(type(x) is str for x in items):
        raise LedgerError("a batch is a JSON array of hex strings", Code.BAD_REQUEST)
    if len(items) > MAX_BATCH_ITEMS:
        raise EncodingError(f"batch has {len(items)} items; the limit is {MAX_BATCH_ITEMS}", Code.OVERSIZED)
    return items


def _rejected(index: int, tx_hash: str | None, exc: LedgerError) -> dict[str, Any]:
    return {"index": index, "tx_hash": tx_hash, "status": "rejected", "error": exc.to_dict()}


Started = tuple[int, str, Submission]


def _start_all(node: Engine, items: list[str]) -> list[dict[str, Any] | Started]:
    """Start admitting every item, in array order (the node admits in submission order, so one
    signer's consecutive nonces may share a batch); signature checks proceed in the background."""
    out: list[dict[str, Any] | Started] = []
    for i, item in enumerate(items):
        try:
            raw = bytes.fromhex(item)
        except ValueError:
            out.append(_rejected(i, None, EncodingError("item is not hex", Code.MALFORMED_ENCODING)))
            continue
        tx_hash = hashlib.sha256(raw).hexdigest()
        try:
            out.append((i, tx_hash, node.submit_async(raw)))
        except LedgerError as exc:
            log.info("tx %s refused at admission: %s", tx_hash, exc.code.name)
            out.append(_rejected(i, tx_hash, exc))
    return out


async def _settle(started: list[Started], stage: str, timeout: float,
                  results: list[dict[str, Any]]) -> list[tuple[Started, Any]]:
    """Wait (``timeout`` in total) for each item's ``admitted`` or ``committed`` future; record refusals
    and timeouts in ``results`` and return the items that got through with their outcome."""
    watches = [_watch(getattr(s[2], stage)) for s in started]
    if watches:
        await asyncio.wait(watches, timeout=timeout)
    through: list[tuple[Started, Any]] = []
    for item, watch in zip(started, watches, strict=True):
        index, tx_hash, _ = item
        if not watch.done():
            results[index] = _rejected(index, tx_hash, _timeout_error(timeout, tx_hash, stage))
            continue
        error = watch.exception()
        outcome = None if error is not None else watch.result()
        if isinstance(outcome, LedgerError):  # a committed future settles to the error that dropped it
            error = outcome
        if isinstance(error, LedgerError):
            log.info("tx %s refused (%s): %s", tx_hash, stage, error.code.name)
            results[index] = _rejected(index, tx_hash, error)
        elif error is not None:
            raise error
        else:
            through.append((item, outcome))
    return through


@router.post(
    "/txs/batch", summary="Submit many signed transactions", response_model=None, openapi_extra=BATCH_BODY_DOC,
    responses={200: {"model": schemas.BatchResponse, "description": "One result per item, in order"},
               **schemas.errors(400, 413, 415)},
)
async def submit_batch(request: Request, wait: Wait = "none", timeout: Timeout = 30.0) -> JSONResponse:
    """Admit up to 1000 transactions in one request, in order; each item succeeds or fails on its own.
    With wait=commit, waits (up to `timeout` for admission, then again for commit) for every receipt."""
    node = node_of(request)
    limit = min(MAX_BATCH_ITEMS * (2 * node.chain.max_tx_bytes + 3) + 2, MAX_BATCH_BYTES)
    items = _parse_batch(await read_body(request, limit))
    begun = await run_in_threadpool(_start_all, node, items)
    results: list[dict[str, Any]] = [r if isinstance(r, dict) else
                                     {"index": r[0], "tx_hash": r[1], "status": "pending"} for r in begun]
    admitted = []
    for item, status in await _settle([r for r in begun if not isinstance(r, dict)], "admitted", timeout, results):
        admitted.append(item)
        results[item[0]]["status"] = status
    if wait == "commit":
        committed = await _settle(admitted, "committed", timeout, results)
        heights = await run_in_threadpool(_heights, node, [item[1] for item, _ in committed])
        for ((index, tx_hash, _), receipt), height in zip(committed, heights, strict=True):
            results[index] = {"index": index, "tx_hash": tx_hash, "status": "committed", "height": height,
                              "receipt": receipt_json(receipt)}
    rejected = sum(1 for r in results if r["status"] == "rejected")
    return JSONResponse({"accepted": len(results) - rejected, "rejected": rejected, "results": results})


def _lookup(node: Engine, tx_hash: str) -> dict[str, Any]:
    key = bytes.fromhex(tx_hash)
    # mempool first: a transaction leaves it only after its block is stored
    pooled = node.pool_status(key)
    if pooled is not None and pooled[0] != "dropped":
        return {"tx_hash": tx_hash, "status": pooled[0]}
    try:
        stored = node.store.tx(key)
    except NotFound:
        if pooled is not None and pooled[1] is not None:  # dropped (and not committed since)
            return {"tx_hash": tx_hash, "status": "dropped", "error": pooled[1].to_dict()}
        raise not_found(f"transaction {tx_hash}") from None
    return {"tx_hash": tx_hash, "status": "committed", "height": stored.height, "index": stored.index,
            "tx": codec.decode_trusted(stored.raw), "receipt": receipt_json(stored.receipt),
            "proof": tx_proof(node.store, key)}


@router.get(
    "/txs/{tx_hash}", summary="Look up a transaction", response_model=None,
    responses={200: {"model": schemas.TxView, "description": "Committed (with receipt and proof) or pending"},
               **schemas.errors(400, 404)},
)
def get_tx(request: Request,
           tx_hash: Annotated[str, Path(pattern=HEX32_PATTERN, description="SHA-256 of the wire bytes, hex")],
           ) -> JSONResponse:
    """A committed transaction with its decoded body, receipt, position and inclusion proof; or
    `status: pending` while it waits in this node's mempool, `queued` while it waits there for its
    signer's earlier nonces, `dropped` (with `error`) when this node dropped it since it started.
    A restart forgets queued and dropped transactions: they read 404 (resubmit them)."""
    return JSONResponse(_lookup(node_of(request), tx_hash))

