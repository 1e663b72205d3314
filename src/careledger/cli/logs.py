"""Logging for the node's long-running commands (``careledger node start``, ``careledger abci serve``
and ``abci node``): ``--log-level`` and ``--log-format``.

* ``text``: ``TIME LEVEL LOGGER: message`` lines on stderr;
* ``json``: one JSON object per line on stderr: ``time`` (UTC, ISO 8601 with milliseconds),
  ``level``, ``logger``, ``message``, the record's structured fields (the access log's ``method``,
  ``route``, ``status``, ``ms``) and, for an exception, ``exc_info``.

What CareLedger logs never carries PHI, key material or request bodies: transaction hashes and
result codes, heights, route templates (``/v1/accounts/{pubkey}/nonce``, never the key itself),
organisation ids and counts. ``tests/cli/test_node_logs.py`` runs a records and supply flow against
a node logging at DEBUG and searches every line for the flow's clinical content, pseudonyms, keys,
salts and request signatures.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = {"httpx": "WARNING", "httpcore": "WARNING", "uvicorn": "WARNING", "uvicorn.error": "WARNING",
         "uvicorn.access": "WARNING", "multipart": "WARNING", "asyncio": "WARNING"}
"""Libraries whose INFO and DEBUG lines would name URLs with keys in them, or only add noise."""


class LogSettingsError(ValueError):
    pass


class _UtcMillis(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return super().formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


class _JsonUtcMillis(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return logging.Formatter.formatTime(self, record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"


def configure_logging(level: str = "INFO", fmt: str = "text", stream: Any = None) -> logging.Handler:
    """Send every CareLedger logger's records at ``level`` and above to ``stream`` (stderr) as ``fmt``.

    Replaces the root logger's handlers (a second call reconfigures). Raises LogSettingsError for an
    unknown level or format. Returns the handler installed.
    """
    level = level.upper()
    if level not in LEVELS:
        raise LogSettingsError(f"--log-level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise LogSettingsError(f"--log-format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = _JsonUtcMillis(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}, json_ensure_ascii=False)
    else:
        formatter = _UtcMillis(TEXT_FORMAT)
    formatter.converter = _gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in QUIET.items():
        logging.getLogger(name).setLevel(max(logging.getLevelName(quiet), logging.getLevelName(level)))
    logging.captureWarnings(True)
    return handler


def _gmtime(seconds: float | None) -> time.struct_time:
    return time.gmtime(seconds)
