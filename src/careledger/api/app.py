"""The node's HTTP API: one FastAPI application over one running node, under either engine
(see :mod:`careledger.node.engine`).

Routes live in one module per area (:mod:`.txs`, :mod:`.chain`, :mod:`.identity`,
:mod:`.governance`, :mod:`.records`, :mod:`.supply`, :mod:`.epcis`); a module that needs long-lived
objects has a starter (:mod:`.services`), run when the app starts. Every error answers through
:mod:`.errors`, its HTTP status from the one table in :mod:`.status`; every body is JSON
(``Content-Type: application/json``, :mod:`.common`). The reference is ``docs/http-api.md`` and
the OpenAPI document is served at ``/openapi.json`` (Swagger UI at ``/docs``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from careledger.api import chain, claims, epcis, fhir, governance, identity, ops, records, research, supply, trials, txs
from careledger.api.common import SECURITY_SCHEMES
from careledger.api.errors import install_error_handlers
from careledger.api.limits import RateLimitMiddleware
from careledger.api.metrics import MeteredEngine, NodeMetrics
from careledger.api.schemas import transaction_schemas
from careledger.api.services import NodeContext, Services, Starter, home_of, open_services
from careledger.api.settings import ApiSettings
from careledger.console import mount as mount_console
from careledger.contracts.base import Registry
from careledger.node.engine import Engine
from careledger.node.solo import Node, as_engine

API_VERSION = "1.0.0"

DESCRIPTION = """\
The HTTP interface of a CareLedger node: submit signed transactions, read blocks and receipts with
their inclusion proofs, and query committed consortium state (organisations, members, patient
pseudonyms, governance proposals, validators, account nonces).

No protected health information is ever on the ledger or in this API.

Every error has the shape `{"error": {"code": int, "name": str, "message": str}}`, where `code` is a
stable CareLedger result code; the HTTP status follows from the code, one status per code (see
`docs/http-api.md`). Refusals that concern a transaction also carry its `tx_hash`. Every request
body is sent as `Content-Type: application/json` (415 otherwise).

Operators' routes: `GET /healthz` (alive), `GET /readyz` (ready to take transactions, else 503) and
`GET /metrics` (Prometheus). The open read routes of the supply chain are rate-limited per client
(429 `RATE_LIMITED` with `Retry-After`).
"""

TAGS: list[dict[str, Any]] = [
    {"name": "transactions", "description": "Submit signed transactions and look them up with their proofs."},
    {"name": "blocks", "description": "Committed blocks: header, signature, transactions, receipt codes."},
    {"name": "node", "description": "The node's own status."},
    {"name": "accounts", "description": "Per-key nonces, for building the next transaction."},
    {"name": "identity", "description": "Organisations, members, keys and patient pseudonyms."},
    {"name": "governance", "description": "Consortium proposals and the validator set."},
    {"name": "records", "description": "Signed patient-scoped queries and the custodian gateway (docs/records.md)."},
    {"name": "supply", "description": "Products, lots, packs, verification and alerts (docs/supply-chain.md)."},
    {"name": "epcis", "description": "EPCIS 2.0 capture, event queries and export (docs/supply-chain.md)."},
    {"name": "claims", "description": "Claims desk, signed claim queries, plans and edit tables (docs/claims.md)."},
    {"name": "research", "description": "Study registry, releases, linkage, aggregate answers (docs/research.md)."},
    {"name": "trials", "description": "Trial registrations, sites, anchors, safety, results (docs/trials.md)."},
]


def _describe_transactions(doc: dict[str, Any], schemas: dict[str, Any], registry: Registry) -> None:
    """The transaction bodies of ``POST /v1/txs`` as the node's registry defines them
    (:func:`careledger.api.schemas.transaction_schemas`), the payload models among the components."""
    transaction, payloads = transaction_schemas(registry)
    clashes = sorted(name for name in set(payloads) & set(schemas) if payloads[name] != schemas[name])
    if clashes:
        raise ValueError(f"payload models named like other components: {', '.join(clashes)}")
    schemas.update(payloads)
    schemas["SignedTransaction"] = transaction
    content = doc["paths"]["/v1/txs"]["post"]["requestBody"]["content"]["application/json"]
    content["schema"] = {"$ref": "#/components/schemas/SignedTransaction"}


def _openapi_with_ledger_errors(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with its default 422 validation responses replaced by our 400 error shape,
    the signed-request security scheme declared and the transaction bodies generated from the payload
    models."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                          tags=app.openapi_tags)
        error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                validation = "HTTPValidationError" in str(responses.get("422"))  # FastAPI's, not a declared 422
                if validation and responses.pop("422") is not None and "400" not in responses:
                    responses["400"] = {"description": "Malformed request",
                                        "content": {"application/json": {"schema": error_ref}}}
        doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        schemas = doc["components"].setdefault("schemas", {})
        _describe_transactions(doc, schemas, app.state.node.chain.registry)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = doc
    return app.openapi_schema


ROUTES = (txs, chain, identity, governance, records, supply, epcis, claims, research, fhir, trials, ops)
"""Every route module, in the order their routes are matched."""
STARTERS: tuple[Starter, ...] = (records.start, supply.start, claims.start, research.start, fhir.start, trials.start)
"""Every route module's starter (see :mod:`.services`), run in this order at start-up."""


def create_app(node: Node | Engine, home: Path | None = None, settings: ApiSettings | None = None) -> FastAPI:
    """The API application serving ``node`` (a solo :class:`Node` or any :class:`Engine`). The caller
    starts and stops the node. ``settings`` (default :class:`ApiSettings`) gives the rate limits and
    whether gateway reads need organisation client certificates; the rest of it is the server's
    (:mod:`careledger.api.server`).

    Every submission goes through a :class:`~careledger.api.metrics.MeteredEngine`, so the node's
    metrics count it whichever route or service made it.

    The services the routes use (:data:`STARTERS`: the records gateway over ``home/vault``, the
    supply alert index) are opened by the application's lifespan when the server starts, before the
    first request, and closed when it stops; serve it with its lifespan on (as
    :mod:`careledger.api.server` does). ``home`` defaults to the directory above the ledger's
    ``data/ledger.sqlite``.
    """
    settings = settings if settings is not None else ApiSettings()
    bare = as_engine(node)
    metrics = NodeMetrics(bare, settings.started_at)
    engine = MeteredEngine(bare, metrics)
    context = NodeContext(engine, home if home is not None else home_of(engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(open_services, context, STARTERS)
        app.state.services = services
        app.state.services_open = True
        metrics.mark_started()
        try:
            yield
        finally:
            app.state.services_open = False
            app.state.services = Services()
            await run_in_threadpool(services.close)

    app = FastAPI(title="CareLedger node API", version=API_VERSION, description=DESCRIPTION, openapi_tags=TAGS,
                  lifespan=lifespan)
    app.state.node = engine
    app.state.metrics = metrics
    app.state.settings = settings
    app.state.services = Services()  # empty until start-up: a route needing a service answers NODE_UNAVAILABLE
    app.state.services_open = False
    metrics.watch_alerts(lambda: supply.alert_counts(app.state.services, engine.store))
    install_error_handlers(app)
    for module in ROUTES:
        app.include_router(module.router)
    mount_console(app)
    app.add_middleware(RateLimitMiddleware, limit=settings.rate_limit, on_limited=metrics.rate_limited.inc)
    app.add_middleware(ops.RequestLog, metrics=metrics)
    app.openapi = lambda: _openapi_with_ledger_errors(app)  # type: ignore[method-assign]
    return app
