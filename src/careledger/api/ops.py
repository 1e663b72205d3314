"""What an operator's tools ask a node: is it alive, is it ready, and its metrics.

* ``GET /healthz``: 200 ``{"status": "alive"}`` whenever the process answers HTTP at all;
* ``GET /readyz``: 200 when the node can take transactions now: its engine produces blocks (for a
  CometBFT node: its CometBFT answers and is not catching up), its store is open and readable at
  the engine's height, and the API's services are open; otherwise ``503 NODE_UNAVAILABLE`` with
  the same ``checks``;
* ``GET /metrics``: Prometheus' text format (:mod:`careledger.api.metrics`).

None of them needs a signature; none answers anything about a patient. :class:`RequestLog` is the
middleware that counts every request by route template and status and logs one line per request
(``careledger.api.access``: method, route template, status, milliseconds; never the path's values,
the query or the body).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from careledger.api import schemas
from careledger.api.common import node_of
from careledger.api.errors import error_response
from careledger.api.metrics import CONTENT_TYPE, NodeMetrics
from careledger.core.errors import Code, LedgerError
from careledger.node.engine import Engine

access_log = logging.getLogger("careledger.api.access")

router = APIRouter(tags=["node"])


def metrics_of(request: Request) -> NodeMetrics:
    metrics: NodeMetrics = request.app.state.metrics
    return metrics


def store_check(engine: Engine) -> dict[str, Any]:
    """Whether the engine's store is open and readable, and at which height it is."""
    store = engine.store
    try:
        if not store.path.exists():
            return {"open": False, "reason": "the ledger file is gone"}
        return {"open": True, "height": store.head().height}
    except Exception as exc:  # any failure to read the head means the store cannot serve
        return {"open": False, "reason": f"the store cannot be read ({type(exc).__name__})"}


def readiness(engine: Engine, services_open: bool) -> tuple[bool, dict[str, Any]]:
    """``(ready, checks)``: the engine's :meth:`~careledger.node.engine.Engine.health`, the store and the
    API's services."""
    engine_health = engine.health()
    store = store_check(engine)
    checks = {"engine": engine_health, "store": store, "services": {"open": services_open}}
    ready = bool(engine_health.get("ready")) and bool(store.get("open")) and services_open
    return ready, checks


@router.get("/healthz", summary="Liveness", response_model=None)
def healthz() -> JSONResponse:
    """200 whenever the node's process answers HTTP."""
    return JSONResponse({"status": "alive"})


@router.get("/readyz", summary="Readiness", response_model=None,
            responses={200: {"description": "Ready: engine producing, store open, services open"},
                       **schemas.errors(503)})
def readyz(request: Request) -> JSONResponse:
    """200 while the node can take transactions; 503 NODE_UNAVAILABLE with the checks otherwise."""
    ready, checks = readiness(node_of(request), bool(getattr(request.app.state, "services_open", False)))
    metrics_of(request).ready.set(1 if ready else 0)
    if ready:
        return JSONResponse({"ready": True, "checks": checks})
    failing = [name for name, check in checks.items() if not (check.get("ready") or check.get("open"))]
    return error_response(LedgerError(f"the node is not ready: {', '.join(failing)}", Code.NODE_UNAVAILABLE),
                          {"ready": False, "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_model=None)
def metrics(request: Request) -> Response:
    """The node's metrics in Prometheus' text exposition format."""
    return Response(metrics_of(request).exposition(), media_type=CONTENT_TYPE)


class RequestLog:
    """ASGI middleware: counts each HTTP request by route template and status, and logs it at INFO on
    ``careledger.api.access`` with method, route template, status and duration only."""

    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            self.metrics.http_requests.labels(route, str(status[0])).inc()
            access_log.info("request", extra={"method": scope["method"], "route": route, "status": status[0],
                                              "ms": round((time.perf_counter() - began) * 1000, 1)})
