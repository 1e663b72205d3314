"""CareLedger's contracts, one module each, assembled into a :class:`Registry` at the edge."""

from __future__ import annotations

from careledger.contracts import audit, consent, governance, identity, records
from careledger.contracts.base import Handler, Payload, Registry, Signer, TxContext


def default_registry() -> Registry:
    """Every contract this release ships, registered by (type, version)."""
    from careledger.supply import contract as supply  # the supply contract lives in careledger.supply

    return Registry([*identity.HANDLERS, *governance.HANDLERS, *records.HANDLERS, *consent.HANDLERS, *audit.HANDLERS,
                     *supply.HANDLERS])


__all__ = ["Handler", "Payload", "Registry", "Signer", "TxContext", "default_registry"]
