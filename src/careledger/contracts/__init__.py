"""CareLedger's contracts: one package each (its state layout, typed records and handlers), pure.

Contracts import the core and each other's layouts, never a shell or an edge. The registry that
puts them together lives in :mod:`careledger.chain.registry`.
"""

from __future__ import annotations

from careledger.contracts.base import Handler, Payload, Registry, Signer, TxContext

__all__ = ["Handler", "Payload", "Registry", "Signer", "TxContext"]
