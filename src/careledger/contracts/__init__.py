"""CareLedger's contracts, one module each, assembled into a :class:`Registry` at the edge."""

from __future__ import annotations

from careledger.contracts import governance, identity
from careledger.contracts.base import Handler, Payload, Registry, Signer, TxContext


def default_registry() -> Registry:
    """Every contract this release ships, registered by (type, version)."""
    return Registry([*identity.HANDLERS, *governance.HANDLERS])


__all__ = ["Handler", "Payload", "Registry", "Signer", "TxContext", "default_registry"]
