"""Serving the API with uvicorn: in the foreground for the CLI, in a background thread for tests, or
beside the ABCI server for a CometBFT consortium node (:func:`run_cometbft_node`).

Uvicorn's access log is off (request lines carry keys and pseudonyms) and its level is ``warning``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from careledger.abci.app import CareLedgerApp
from careledger.abci.engine import CometbftEngine
from careledger.abci.server import serve as serve_abci
from careledger.api.app import create_app
from careledger.api.services import Services
from careledger.keys import read_key
from careledger.node.engine import Engine
from careledger.node.solo import Node

log = logging.getLogger("careledger.api.server")


def _config(node: Node | Engine, host: str, port: int, home: Path | None) -> uvicorn.Config:
    """Uvicorn's settings; the lifespan is on: it opens the app's services before the first request
    (and a failure there stops the server from starting) and closes them at shutdown."""
    return uvicorn.Config(create_app(node, home), host=host, port=port, log_level="warning", access_log=False,
                          lifespan="on", server_header=False)


def serve(node: Node | Engine, host: str = "127.0.0.1", port: int = 8700, home: Path | None = None) -> None:
    """Serve the API for ``node`` until interrupted (Ctrl-C / SIGTERM). The caller owns the node."""
    uvicorn.Server(_config(node, host, port, home)).run()


class BackgroundServer:
    """The API served from a daemon thread; ``port=0`` picks a free port (see :attr:`port`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, node: Node | Engine, host: str = "127.0.0.1", port: int = 0, home: Path | None = None) -> None:
        self.host = host
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(node, host, self.port, home))
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
        return f"http://{host}:{self.port}"

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
                    home: Path | None = None) -> BackgroundServer:
    """Start the API for ``node`` in a background thread; ``.port`` / ``.url`` say where, ``.stop()`` ends it."""
    return BackgroundServer(node, host, port, home).start()


# -- a CometBFT consortium node's process ----------------------------------------------------------------------

def read_node_file(node_dir: Path) -> dict[str, Any]:
    """``node.json`` of a consortium node directory (written by ``careledger net init``)."""
    doc: dict[str, Any] = json.loads((node_dir / "node.json").read_text())
    return doc


def run_cometbft_node(node_dir: Path, check_integrity: bool = True) -> int:
    """Serve one consortium node: ABCI for its CometBFT, and the HTTP API with the services it opens at
    start-up, among them the records gateway over the vaults in ``HOME/vault/<org>/`` (created by
    ``careledger records vault-init --home nodeK/careledger``), subscribed to this node's commits,
    so an erasure committed through any node shreds the copy held here. Returns on SIGINT/SIGTERM."""
    spec = read_node_file(node_dir)
    home = node_dir / spec["careledger_home"]
    app = CareLedgerApp(home / "data" / "ledger.sqlite", check_integrity=check_integrity)
    try:
        engine = CometbftEngine(app, spec["rpc"].replace("tcp://", "http://"),
                                read_key(home / "node_key.json").public_hex)
        host, port = spec["api"].rsplit(":", 1)
        server = BackgroundServer(engine, host, int(port), home).start()
        log.info("node %s: HTTP API on %s, ABCI on %s", spec["name"], server.url, spec["abci"])
        try:
            asyncio.run(serve_abci(app, spec["abci"]))
        finally:
            server.stop()
            engine.close()
    finally:
        app.close()
    return 0
