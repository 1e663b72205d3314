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

from careledger.abci.app import CareLedgerApp
from careledger.abci.engine import CometbftEngine
from careledger.abci.server import serve as serve_abci
from careledger.api.app import create_app
from careledger.keys import read_key
from careledger.node.engine import Engine
from careledger.node.solo import Node

log = logging.getLogger("careledger.api.server")


def _config(node: Node | Engine, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(create_app(node), host=host, port=port, log_level="warning", access_log=False,
                          lifespan="off", server_header=False)


def serve(node: Node | Engine, host: str = "127.0.0.1", port: int = 8700) -> None:
    """Serve the API for ``node`` until interrupted (Ctrl-C / SIGTERM). The caller owns the node."""
    uvicorn.Server(_config(node, host, port)).run()


class BackgroundServer:
    """The API served from a daemon thread; ``port=0`` picks a free port (see :attr:`port`).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, node: Node | Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                                   socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(_config(node, host, self.port))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts connections. Raises RuntimeError otherwise."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"careledger-api:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread (the node keeps running)."""
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


def serve_in_thread(node: Node | Engine, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start the API for ``node`` in a background thread; ``.port`` / ``.url`` say where, ``.stop()`` ends it."""
    return BackgroundServer(node, host, port).start()


# -- a CometBFT consortium node's process ----------------------------------------------------------------------

def read_node_file(node_dir: Path) -> dict[str, Any]:
    """``node.json`` of a consortium node directory (written by ``careledger net init``)."""
    doc: dict[str, Any] = json.loads((node_dir / "node.json").read_text())
    return doc


def run_cometbft_node(node_dir: Path, check_integrity: bool = True) -> int:
    """Serve one consortium node: ABCI for its CometBFT, and the HTTP API. Returns on SIGINT/SIGTERM."""
    spec = read_node_file(node_dir)
    home = node_dir / spec["careledger_home"]
    app = CareLedgerApp(home / "data" / "ledger.sqlite", check_integrity=check_integrity)
    try:
        engine = CometbftEngine(app, spec["rpc"].replace("tcp://", "http://"),
                                read_key(home / "node_key.json").public_hex)
        host, port = spec["api"].rsplit(":", 1)
        server = BackgroundServer(engine, host, int(port)).start()
        log.info("node %s: HTTP API on %s, ABCI on %s", spec["name"], server.url, spec["abci"])
        try:
            asyncio.run(serve_abci(app, spec["abci"]))
        finally:
            server.stop()
            engine.close()
    finally:
        app.close()
    return 0
