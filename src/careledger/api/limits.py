"""Per-client rate limits on the open read routes (those anyone may call without a signature, such as
public pack verification, ``GET /v1/supply/verify``).

Each client, named by the address its connection comes from, has a token bucket per node: ``rate``
tokens a second, at most ``burst`` held; each request to a limited route takes one. A request that
finds the bucket empty is answered ``429 RATE_LIMITED`` (930) with ``Retry-After`` (whole seconds
until a token is back) and never reaches the route. Other routes are not limited here: signed
routes cost their caller a signature and submissions are bounded by the mempool.

The client address is the TCP peer's (the server does not trust ``X-Forwarded-For``), so clients
behind one proxy share a bucket. At most ``max_clients`` buckets are kept; when full, the buckets
that have refilled completely (they hold no information) are dropped first, then the oldest.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from careledger.api.errors import error_response
from careledger.core.errors import Code, LedgerError

OPEN_READ_PREFIXES = ("/v1/supply/verify", "/v1/supply/items", "/v1/supply/packs/", "/v1/supply/products/",
                      "/v1/supply/locations", "/v1/supply/captures", "/v1/epcis/events")
"""The routes limited by default: the supply chain's public lookups (pack verification, items, packs,
products and lots, locations, multi-party captures) and the EPCIS event query."""


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests a second per client on the routes under ``prefixes``, bursts of ``burst``;
    ``rate`` 0 turns the limit off."""

    rate: float = 20.0
    burst: int = 40
    prefixes: tuple[str, ...] = OPEN_READ_PREFIXES
    max_clients: int = 100_000

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1 or self.max_clients < 1:
            raise ValueError("a rate limit needs rate >= 0, burst >= 1 and max_clients >= 1")

    @property
    def enabled(self) -> bool:
        return self.rate > 0


class TokenBuckets:
    """One token bucket per client (thread-safe); the clock is injectable for tests."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0.0 when granted, else the seconds until one is back."""
        limit = self.limit
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - at) * limit.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                self._trim(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / limit.rate

    def _trim(self, now: float) -> None:
        if len(self._buckets) <= self.limit.max_clients:
            return
        full_after = self.limit.burst / self.limit.rate
        for client in [c for c, (_, at) in self._buckets.items() if now - at >= full_after]:
            del self._buckets[client]
        while len(self._buckets) > self.limit.max_clients:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimitMiddleware:
    """ASGI middleware answering 429 RATE_LIMITED to a client over its rate on a limited route."""

    def __init__(self, app: ASGIApp, limit: RateLimit, on_limited: Callable[[], None] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.buckets = TokenBuckets(limit)
        self._on_limited = on_limited

    def is_limited_route(self, scope: Scope) -> bool:
        return scope["method"] in ("GET", "HEAD") and any(scope["path"].startswith(p) for p in self.limit.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limit.enabled or not self.is_limited_route(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        if self._on_limited is not None:
            self._on_limited()
        retry = max(1, math.ceil(wait))
        response = error_response(
            LedgerError(f"too many requests from this client: at most {self.limit.rate:g} a second "
                        f"(bursts of {self.limit.burst}); retry in {retry} s", Code.RATE_LIMITED),
            headers={"Retry-After": str(retry)})
        await response(scope, receive, send)
