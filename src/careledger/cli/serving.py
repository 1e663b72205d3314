"""What the commands that serve a node share: ``--log-level`` / ``--log-format`` and the API's serving
settings (``config.json`` with flags given instead: TLS, client certificates, limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import EXIT_USAGE, expand, fail
from careledger.core.errors import Code
from careledger.node.home import Home

LogLevel = Annotated[str, typer.Option(help="Log level: DEBUG, INFO, WARNING or ERROR.")]
LogFormat = Annotated[str, typer.Option(help="Log lines as `text` or `json` (one object a line), on stderr.")]


def api_settings(h: Home, tls_cert: Path | None = None, tls_key: Path | None = None, tls_client_ca: Path | None = None,
                 client_tls: str | None = None, started_at: float | None = None) -> Any:
    """The API's serving settings: ``config.json``'s, with the flags given on the command line instead."""
    from careledger.api.limits import RateLimit
    from careledger.api.settings import ApiSettings

    config = h.config()
    cert = expand(tls_cert) if tls_cert else h.resolve(config.tls_cert)
    key = expand(tls_key) if tls_key else h.resolve(config.tls_key)
    client_ca = expand(tls_client_ca) if tls_client_ca else h.resolve(config.tls_client_ca)
    for what, path in (("certificate", cert), ("key", key), ("client CA bundle", client_ca)):
        if path is not None and not path.is_file():
            fail(f"the TLS {what} {path} does not exist", name=Code.FILE_UNREADABLE.name,
                 code=int(Code.FILE_UNREADABLE))
    try:
        return ApiSettings(tls_cert=cert, tls_key=key, tls_client_ca=client_ca,
                           client_tls=client_tls or config.client_tls, header_timeout_s=config.header_timeout_s,
                           keep_alive_s=config.keep_alive_s, max_connections=config.max_connections,
                           rate_limit=RateLimit(config.open_read_rate, config.open_read_burst), started_at=started_at)
    except ValueError as exc:
        fail(str(exc), name=Code.HOME_INVALID.name, code=int(Code.HOME_INVALID))


def set_up_logging(level: str, fmt: str) -> None:
    """``--log-level`` / ``--log-format`` (:mod:`careledger.cli.logs`); a bad value exits 2."""
    from careledger.cli.logs import LogSettingsError, configure_logging

    try:
        configure_logging(level, fmt.lower())
    except LogSettingsError as exc:
        fail(str(exc), EXIT_USAGE, name=Code.BAD_REQUEST.name)
