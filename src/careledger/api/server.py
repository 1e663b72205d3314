"""Serving the API with uvicorn: in the foreground for the CLI, in a background thread for tests, or
beside the ABCI server for a CometBFT consortium node (:func:`run_cometbft_node`).

Uvicorn's access log is off (request lines carry keys and pseudonyms; :class:`careledger.api.ops.RequestLog`
logs route templates instead), its level is ``warning`` and it installs no logging configuration of
its own (the process's, :mod:`careledger.cli.logs`, applies). ``X-Forwarded-For`` is not trusted.

Each connection is served by :class:`GuardedProtocol` (uvicorn's h11 protocol with three additions):

* **connection cap**: a connection beyond ``max_connections`` open at once is answered
  ``503 TOO_MANY_CONNECTIONS`` and closed at once;
* **header time-out**: a connection that has not delivered a complete request head within
  ``header_timeout_s`` of connecting, or of the first byte of its next request, is closed (slow or
  silent clients cannot hold connections; idle kept-alive ones close after ``keep_alive_s``);
* **client certificates**: over TLS, the peer's certificate (if it sent one) is handed to the app as
  the ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM).

With a certificate and key (:class:`~careledger.api.settings.ApiSettings`) the API serves HTTPS only
(TLS 1.2 or later); with ``tls_client_ca`` it asks clients for a certificate, verified against that
bundle when sent (:mod:`careledger.api.client_tls` decides which routes need one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
import time
from http.client import responses
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from careledger.abci.app import CareLedgerApp
from careledger.abci.engine import CometbftEngine
from careledger.abci.server import serve as serve_abci
from careledger.api.app import create_app
from careledger.api.metrics import NodeMetrics
from careledger.api.services import Services
from careledger.api.settings import ApiSettings
from careledger.api.status import http_status
from careledger.core.errors import Code
from careledger.keys import read_public_key
from careledger.node.engine import Engine
from careledger.node.solo import Node

log = logging.getLogger("careledger.api.server")


class GuardedProtocol(H11Protocol):
    """Uvicorn's h11 protocol with the connection cap, the header time-out and the client certificate
    (module docstring). :func:`guarded_protocol` makes a subclass bound to one server's settings."""

    max_connections: ClassVar[int] = 1024
    header_timeout_s: ClassVar[float] = 10.0
    metrics: ClassVar[NodeMetrics | None] = None

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._arm_head_timer()
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _with_tls_extension(self.app, ssl_object)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_head():
            self._arm_head_timer()
        else:
            self._cancel_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._awaiting_head() or self.timeout_keep_alive_task is not None:
            self._cancel_head_timer()  # idle between requests: the keep-alive time-out applies

    def _awaiting_head(self) -> bool:
        """Whether the connection is waiting for (the rest of) a request head and nothing else watches it."""
        return (self.conn.their_state is h11.IDLE and self.timeout_keep_alive_task is None
                and not self.transport.is_closing())

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head():
            if self.metrics is not None:
                self.metrics.connections_timed_out.inc()
            self.transport.close()

    def _refuse(self) -> None:
        if self.metrics is not None:
            self.metrics.connections_refused.inc()
        status = http_status(Code.TOO_MANY_CONNECTIONS)
        body = json.dumps({"error": {"code": int(Code.TOO_MANY_CONNECTIONS), "name": Code.TOO_MANY_CONNECTIONS.name,
                                     "message": f"the node serves at most {self.max_connections} connections at "
                                                "once; retry later"}}).encode()
        head = (f"HTTP/1.1 {status} {responses.get(status, '')}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\nretry-after: 1\r\n\r\n").encode("ascii")
        self.transport.write(head + body)
        self.transport.close()


def guarded_protocol(settings: ApiSettings, metrics: NodeMetrics | None = None) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` subclass bound to ``settings`` (and counting into ``metrics``)."""
    attrs: dict[str, Any] = {"max_connections": settings.max_connections,
                             "header_timeout_s": settings.header_timeout_s, "metrics": metrics}
    return type("BoundGuardedProtocol", (GuardedProtocol,), attrs)


def _with_tls_extension(app: ASGIApp, ssl_object: ssl.SSLObject) -> ASGIApp:
    """``app`` with the ASGI TLS extension in every request scope of this connection."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    extension = {"server_cert": None, "client_cert_chain": chain, "client_cert_name": None,
                 "client_cert_error": None, "tls_version": None, "cipher_suite": None}

    async def tls_app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["extensions"] = {**(scope.get("extensions") or {}), "tls": extension}
        await app(scope, receive, send)

    return tls_app


def server_ssl_context(settings: ApiSettings) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or later, the node's certificate chain and key, and, with
    ``tls_client_ca``, client certificates requested (optional) and verified against that bundle.
    Raises OSError or ssl.SSLError for files that cannot be read or do not match."""
    assert settings.tls_cert is not None and settings.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    if settings.tls_client_ca is not None:
        context.load_verify_locations(cafile=str(settings.tls_client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _config(node: Node | Engine, host: str, port: int, home: Path | None,
            settings: ApiSettings | None = None) -> uvicorn.Config:
    """Uvicorn's settings; the lifespan is on: it opens the app's services before the first request
    (and a failure there stops the server from starting) and closes them at shutdown."""
    settings = settings if settings is not None else ApiSettings()
    app = create_app(node, home, settings)
    tls: dict[str, Any] = {}
    if settings.tls:
        context = server_ssl_context(settings)
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_context_factory": lambda config, default: context}
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, log_config=None,
                          lifespan="on", server_header=False, proxy_headers=False,
                          http=guarded_protocol(settings, app.state.metrics),
                          timeout_keep_alive=max(1, round(settings.keep_alive_s)), **tls)


def serve(node: Node | Engine, host: str = "127.0.0.1", port: int = 8700, home: Path | None = None,
          settings: ApiSettings | None = None) -> None:
    """Serve the API for ``node`` until interrupted (Ctrl-C / SIGTERM). The caller owns the node."""
    uvicorn.Server(_config(node, host, port, home, settings)).run()


class BackgroundServer:
    """The API served from a daemon thread; ``port=0`` picks a free port (see :attr:`port`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, node: Node | Engine, host: str = "127.0.0.1", port: int = 0, home: Path | None = None,
                 settings: ApiSettings | None = None) -> None:
        self.host = host
        self.settings = settings if settings is not None else ApiSettings()
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(node, host, self.port, home, self.settings))
        self._thread: threading.Thread | None = None

    @property
    def app(self) -> FastAPI:
        """The application being served."""
        app = self._server.config.app
        assert isinstance(app, FastAPI)
        return app

    @property
    def services(self) -> Services:
        """The app's services (empty before start-up and after shutdown)."""
        services: Services = self.app.state.services
        return services

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.settings.tls else 'http'}://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the app's services are open and the server accepts connections.
        Raises RuntimeError otherwise (the services' failure is in the log)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"careledger-api:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except SystemExit:  # uvicorn exits this way when the app's start-up fails (logged by uvicorn)
            log.error("the API server on %s stopped: its start-up failed", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the app's services and wait for the server thread (the node keeps running)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_in_thread(node: Node | Engine, host: str = "127.0.0.1", port: int = 0,
                    home: Path | None = None, settings: ApiSettings | None = None) -> BackgroundServer:
    """Start the API for ``node`` in a background thread; ``.port`` / ``.url`` say where, ``.stop()`` ends it."""
    return BackgroundServer(node, host, port, home, settings).start()


# -- a CometBFT consortium node's process ----------------------------------------------------------------------

def read_node_file(node_dir: Path) -> dict[str, Any]:
    """``node.json`` of a consortium node directory (written by ``careledger net init``)."""
    doc: dict[str, Any] = json.loads((node_dir / "node.json").read_text())
    return doc


def run_cometbft_node(node_dir: Path, check_integrity: bool = True, settings: ApiSettings | None = None) -> int:
    """Serve one consortium node: ABCI for its CometBFT, and the HTTP API with the services it opens at
    start-up, among them the records gateway over the vaults in ``HOME/vault/<org>/`` (created by
    ``careledger records vault-init --home nodeK/careledger``), subscribed to this node's commits,
    so an erasure committed through any node shreds the copy held here. Returns on SIGINT/SIGTERM."""
    spec = read_node_file(node_dir)
    home = node_dir / spec["careledger_home"]
    app = CareLedgerApp(home / "data" / "ledger.sqlite", check_integrity=check_integrity)
    try:
        engine = CometbftEngine(app, spec["rpc"].replace("tcp://", "http://"),
                                read_public_key(home / "node_key.json"))
        host, port = spec["api"].rsplit(":", 1)
        server = BackgroundServer(engine, host, int(port), home, settings).start()
        log.info("node %s: HTTP API on %s, ABCI on %s", spec["name"], server.url, spec["abci"])
        try:
            asyncio.run(serve_abci(app, spec["abci"]))
        finally:
            server.stop()
            engine.close()
    finally:
        app.close()
    return 0
