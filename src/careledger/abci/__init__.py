"""The CometBFT engine: CareLedger's state machine served to CometBFT v0.38.x over ABCI 2.0.

Modules:

* ``abci.proto`` / ``abci_pb2``: our schema of the ABCI messages (CometBFT's field numbers);
* :mod:`careledger.abci.wire`: varint length-delimited framing;
* :mod:`careledger.abci.server`: the asyncio socket server;
* :mod:`careledger.abci.app`: :class:`CareLedgerApp`, the adapter onto the core and the store;
* :mod:`careledger.abci.cometbft`: preparing a CometBFT home (genesis, config.toml).
"""

from __future__ import annotations

from careledger.abci.app import CareLedgerApp
from careledger.abci.server import AbciServer, handle_request

__all__ = ["AbciServer", "CareLedgerApp", "handle_request"]
