"""What the routes use besides the engine, opened when the app starts and closed when it stops.

Each route module that needs long-lived objects (the records gateway and its queries, the supply
alert index, ...) provides a *starter*, ``start(context, services)``, that builds them from the
:class:`NodeContext` and adds them to :class:`Services`, with how to close them. The application
(:func:`careledger.api.app.create_app`) runs every starter in its lifespan's start-up, before the
first request is served, and closes everything, in reverse order, at shutdown. A route gets its
object by type: ``services_of(request).get(RecordsServices)``.

Start-up work therefore happens at start-up: the gateway's clean-up of erased records and of
versions whose anchors never committed, and its commit subscription, run before any request, not
when someone first asks for a record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request

from careledger.core.errors import Code, LedgerError
from careledger.node.engine import Engine

log = logging.getLogger("careledger.api")

T = TypeVar("T")


@dataclass(frozen=True)
class NodeContext:
    """What a starter builds from: the running engine and the node's home directory (``config.json``,
    ``vault/``)."""

    engine: Engine
    home: Path

    @property
    def vault_root(self) -> Path:
        """Where the vaults this node hosts live: ``HOME/vault/<org>/``."""
        return self.home / "vault"


def home_of(engine: Engine) -> Path:
    """The home of a node whose ledger is ``HOME/data/ledger.sqlite`` (the layout of ``careledger
    init`` and ``careledger net init``)."""
    return Path(engine.store.path).resolve().parent.parent


class Services:
    """The objects the routes use, by type, each with how to close it."""

    def __init__(self) -> None:
        self._items: dict[type[Any], Any] = {}
        self._closers: list[tuple[str, Callable[[], None]]] = []

    def add(self, item: T, close: Callable[[], None] | None = None) -> T:
        """Hold ``item`` (one per type); ``close`` runs at shutdown."""
        kind = type(item)
        if kind in self._items:
            raise ValueError(f"a {kind.__name__} is already held")
        self._items[kind] = item
        if close is not None:
            self._closers.append((kind.__name__, close))
        return item

    def get(self, kind: type[T]) -> T:
        """The held ``kind``; NODE_UNAVAILABLE when the app has not started (or has stopped)."""
        item = self._items.get(kind)
        if item is None:
            raise LedgerError(f"the API's {kind.__name__} is not running (the app serves between its start-up and "
                              "shutdown)", Code.NODE_UNAVAILABLE)
        assert isinstance(item, kind)
        return item

    def close(self) -> None:
        """Close everything, last opened first; one failure does not keep the others open."""
        while self._closers:
            name, close = self._closers.pop()
            try:
                close()
            except Exception:
                log.exception("closing %s failed", name)
        self._items.clear()


Starter = Callable[[NodeContext, Services], None]


def open_services(context: NodeContext, starters: Iterable[Starter]) -> Services:
    """Run every starter in order; if one fails, close what the others opened and re-raise."""
    services = Services()
    try:
        for start in starters:
            start(context, services)
    except BaseException:
        services.close()
        raise
    return services


def services_of(request: Request) -> Services:
    """The services of the app serving ``request``."""
    services: Services = request.app.state.services
    return services
