"""Helpers shared by the test suite, by layer; test modules import from here, never from each other.

* :mod:`.consortium`: reproducible keys (``seeded_key``) and an eight-organisation genesis;
* :mod:`.ledger`: :class:`Ledger`, blocks executed in memory through ``BlockExecution``;
* :mod:`.tools`: ``require_tool`` and friends (a missing real part fails under ``CI=true``);
* :mod:`.records`, :mod:`.supply`, :mod:`.epcis`, :mod:`.vectors`, :mod:`.load`: per-area worlds.
"""

from support.consortium import (
    BLOCK_INTERVAL_MS,
    CHAIN_ID,
    GENESIS_TIME_MS,
    ORG_ROLES,
    Consortium,
    make_consortium,
    seeded_key,
)
from support.ledger import BlockOutcome, Ledger
from support.tools import require_abci_cli, require_cometbft, require_tool

__all__ = ["BLOCK_INTERVAL_MS", "CHAIN_ID", "GENESIS_TIME_MS", "ORG_ROLES", "BlockOutcome", "Consortium", "Ledger",
           "make_consortium", "require_abci_cli", "require_cometbft", "require_tool", "seeded_key"]
