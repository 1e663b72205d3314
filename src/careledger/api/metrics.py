"""The node's Prometheus metrics, served at ``GET /metrics`` (text exposition format).

One :class:`NodeMetrics` per application, on its own :class:`~prometheus_client.CollectorRegistry`
(never the library's global one, so several nodes in one process, as in the tests, keep apart):

==========================================  =========  ===============================================================
name                                        type       what
==========================================  =========  ===============================================================
``careledger_tx_admitted_total``            counter    transactions admitted to the mempool (any route: ``/v1/txs``,
                                                       the batch route, the gateway's audit and anchor transactions)
``careledger_tx_refused_total``             counter    transactions refused before any block, by ``code`` and
                                                       ``name`` (admission, or dropped from the block)
``careledger_tx_receipts_total``            counter    receipts of committed transactions by ``code`` and ``name``
                                                       (0 OK; others: the contract refused, writes rolled back)
``careledger_tx_commit_seconds``            histogram  submission to commit, for transactions submitted to this node
``careledger_height``                       gauge      the committed height
``careledger_mempool_transactions``         gauge      transactions waiting in this node's mempool
``careledger_ready``                        gauge      1 while ``/readyz`` would answer 200
``careledger_gateway_reads_total``          counter    records asked of this node's gateway, by ``outcome``:
                                                       ``granted``, ``emergency`` (granted under break-glass),
                                                       ``denied`` (an audited refusal of one record in an
                                                       answer that released others) or ``refused`` (a request
                                                       answered with an error: nothing released)
``careledger_supply_alerts_raised_total``   counter    supply alerts derived from committed receipts, by ``kind``
``careledger_startup_seconds``              gauge      from the start of ``careledger node start`` (or of the app)
                                                       until the API's services were open and it could serve
``careledger_http_requests_total``          counter    HTTP requests by ``route`` (the route's template, never the
                                                       path with its values) and ``status``
``careledger_rate_limited_total``           counter    requests refused 429 RATE_LIMITED on open read routes
``careledger_connections_refused_total``    counter    connections refused at the connection cap
``careledger_connections_timed_out_total``  counter    connections closed because no request head arrived in time
==========================================  =========  ===============================================================

Labels hold codes, outcomes, kinds and route templates only: never a key, pseudonym, record id or
any value from a request.

:class:`MeteredEngine` wraps the node's :class:`~careledger.node.engine.Engine` so every submission
is counted whichever part of the API made it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from careledger.chain.executor import Chain
from careledger.core.block import Receipt
from careledger.core.errors import Code, LedgerError
from careledger.node.engine import CommitListener, Engine, Submission
from careledger.node.store import Head, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GATEWAY_OUTCOMES = ("granted", "emergency", "denied", "refused")


def _code_name(code: int) -> str:
    try:
        return Code(code).name
    except ValueError:
        return "UNKNOWN"


class _AlertCollector(Collector):
    """``careledger_supply_alerts_raised_total`` by kind, read from the supply alert index at scrape time
    (the index catches up with the store first, as it does for ``GET /v1/supply/alerts``)."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("careledger_supply_alerts_raised", "Supply alerts derived from committed "
                                     "receipts, by kind", labels=["kind"])
        for kind, count in sorted(self._counts().items()):
            family.add_metric([kind], count)
        yield family


class NodeMetrics:
    """The metrics of one node's API (see the module docstring for each)."""

    def __init__(self, engine: Engine, started_at: float | None = None) -> None:
        """``started_at``: ``time.monotonic()`` when the node's process began starting (default: now)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.started_at = time.monotonic() if started_at is None else started_at
        r = self.registry
        self.admitted = Counter("careledger_tx_admitted", "Transactions admitted to the mempool", registry=r)
        self.refused = Counter("careledger_tx_refused", "Transactions refused before any block, by code",
                               ["code", "name"], registry=r)
        self.receipts = Counter("careledger_tx_receipts", "Receipts of committed transactions submitted here, "
                                "by code", ["code", "name"], registry=r)
        self.commit_seconds = Histogram("careledger_tx_commit_seconds", "Submission to commit, in seconds",
                                        buckets=COMMIT_BUCKETS, registry=r)
        self.height = Gauge("careledger_height", "The committed height", registry=r)
        self.height.set_function(lambda: engine.head.height)
        self.mempool = Gauge("careledger_mempool_transactions", "Transactions waiting in this node's mempool",
                             registry=r)
        self.mempool.set_function(lambda: int(engine.status().get("mempool", 0)))
        self.ready = Gauge("careledger_ready", "1 while the node is ready (GET /readyz answers 200)", registry=r)
        self.gateway_reads = Counter("careledger_gateway_reads", "Records asked of this node's gateway, by outcome",
                                     ["outcome"], registry=r)
        for outcome in GATEWAY_OUTCOMES:
            self.gateway_reads.labels(outcome)
        self.startup_seconds = Gauge("careledger_startup_seconds", "Seconds from the start of the node until "
                                     "its API could serve", registry=r)
        self.http_requests = Counter("careledger_http_requests", "HTTP requests by route template and status",
                                     ["route", "status"], registry=r)
        self.rate_limited = Counter("careledger_rate_limited", "Requests refused 429 on open read routes",
                                    registry=r)
        self.connections_refused = Counter("careledger_connections_refused", "Connections refused at the "
                                           "connection cap", registry=r)
        self.connections_timed_out = Counter("careledger_connections_timed_out", "Connections closed: no request "
                                             "head within the header timeout", registry=r)

    def watch_alerts(self, counts: Callable[[], dict[str, int]]) -> None:
        """Report supply alerts by kind from ``counts()`` at each scrape."""
        self.registry.register(_AlertCollector(counts))

    def mark_started(self) -> None:
        """The API can serve: record the start-up time."""
        self.startup_seconds.set(time.monotonic() - self.started_at)

    def count_refusal(self, error: LedgerError) -> None:
        self.refused.labels(str(int(error.code)), error.code.name).inc()

    def count_gateway_read(self, result: dict[str, Any]) -> None:
        """Count the records of a gateway read answer (``records`` granted, ``denied``)."""
        for record in result.get("records", []):
            self.gateway_reads.labels("emergency" if record.get("emergency") else "granted").inc()
        denied = len(result.get("denied", []))
        if denied:
            self.gateway_reads.labels("denied").inc(denied)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class MeteredEngine:
    """An :class:`~careledger.node.engine.Engine` that counts what passes through :meth:`submit_async`
    (admissions, refusals by code, receipts by code, submission-to-commit time) and otherwise forwards
    to the engine it wraps."""

    def __init__(self, engine: Engine, metrics: NodeMetrics) -> None:
        self.engine = engine
        self.metrics = metrics

    @property
    def chain(self) -> Chain:
        return self.engine.chain

    @property
    def store(self) -> Store:
        return self.engine.store

    @property
    def head(self) -> Head:
        return self.engine.head

    def submit_async(self, raw: bytes) -> Submission:
        """The wrapped engine's submission, counted; raises what it raises (counted as a refusal)."""
        metrics = self.metrics
        try:
            sub = self.engine.submit_async(raw)
        except LedgerError as exc:
            metrics.count_refusal(exc)
            raise
        began = time.perf_counter()

        def admitted(fut: Future[None]) -> None:
            error = fut.exception()
            if error is None:
                metrics.admitted.inc()
            elif isinstance(error, LedgerError):
                metrics.count_refusal(error)

        def committed(fut: Future[object]) -> None:
            if fut.exception() is not None:
                return
            outcome = fut.result()
            if isinstance(outcome, Receipt):
                metrics.commit_seconds.observe(time.perf_counter() - began)
                metrics.receipts.labels(str(outcome.code), _code_name(outcome.code)).inc()
            elif isinstance(outcome, LedgerError):
                metrics.count_refusal(outcome)

        sub.admitted.add_done_callback(admitted)
        sub.committed.add_done_callback(committed)
        return sub

    def status(self) -> dict[str, Any]:
        return self.engine.status()

    def health(self) -> dict[str, Any]:
        return self.engine.health()

    def is_pending(self, tx_hash: bytes) -> bool:
        return self.engine.is_pending(tx_hash)

    def nonces(self, pubkey: str) -> tuple[int, int]:
        return self.engine.nonces(pubkey)

    def on_commit(self, listener: CommitListener) -> None:
        self.engine.on_commit(listener)
