"""How a node's API is served: TLS, client certificates, time-outs, the connection cap and rate limits.

:class:`ApiSettings` is versioned configuration passed in at the edge: ``careledger node start``
builds it from the home's ``config.json`` and its flags (:mod:`careledger.node.home`,
``docs/cli.md``); tests build it directly. The defaults serve plain HTTP with the limits on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from careledger.api.limits import RateLimit

CLIENT_TLS_MODES = ("off", "organisations")


@dataclass(frozen=True)
class ApiSettings:
    """The API's serving settings.

    * ``tls_cert`` / ``tls_key``: PEM files; with both, the API serves HTTPS only.
    * ``tls_client_ca``: PEM bundle of the issuers of client certificates the server accepts (the
      consortium's organisation certificates, or the CAs that issued them). With it, the server asks
      every TLS client for a certificate (optional at the TLS layer).
    * ``client_tls``: ``"organisations"`` makes the gateway's record reads signed by a member of an
      organisation require a client certificate whose SHA-256 fingerprint that organisation registered
      on the ledger (``identity.set_org_tls``); ``"off"`` (default) does not.
    * ``header_timeout_s``: a connection must deliver a complete request head within this time of
      connecting (or of the first byte of its next request), else it is closed.
    * ``keep_alive_s``: an idle kept-alive connection is closed after this long.
    * ``max_connections``: connections beyond this many open at once are answered
      ``503 TOO_MANY_CONNECTIONS`` and closed.
    * ``rate_limit``: per-client limits on the open read routes (:mod:`careledger.api.limits`).
    * ``started_at``: ``time.monotonic()`` when the node began starting, for ``careledger_startup_seconds``.
    """

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    client_tls: str = "off"
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    rate_limit: RateLimit = field(default_factory=RateLimit)
    started_at: float | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("client certificates need the API to serve TLS (a certificate and key)")
        if self.client_tls not in CLIENT_TLS_MODES:
            raise ValueError(f"client_tls must be one of {list(CLIENT_TLS_MODES)}, not {self.client_tls!r}")
        if self.client_tls != "off" and self.tls_client_ca is None:
            raise ValueError("client_tls 'organisations' needs tls_client_ca (the accepted issuers)")
        if self.header_timeout_s <= 0 or self.keep_alive_s <= 0 or self.max_connections < 1:
            raise ValueError("time-outs must be positive and max_connections at least 1")

    @property
    def tls(self) -> bool:
        """Whether the API serves HTTPS."""
        return self.tls_cert is not None
