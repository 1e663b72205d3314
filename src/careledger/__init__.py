"""CareLedger: a permissioned consortium ledger for healthcare (records, consent, supply chain,
claims, research and trials), with an embedded engine and a CometBFT engine."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("careledger")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
