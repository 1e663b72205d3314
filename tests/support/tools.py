"""Real parts a test needs (CometBFT, abci-cli, ...): skipped when missing, except under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from careledger.abci.cometbft import find_abci_cli, find_cometbft


def require_tool(path: Path | None, name: str) -> Path:
    """A real part a test needs (found by ``find_cometbft`` / ``find_abci_cli``). Without it the test
    is skipped, except under ``CI=true``, where a missing real part fails the run."""
    if path is None:
        message = f"{name} not found: run scripts/install-cometbft.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_cometbft() -> Path:
    return require_tool(find_cometbft(), "cometbft")


def require_abci_cli() -> Path:
    return require_tool(find_abci_cli(), "abci-cli")
