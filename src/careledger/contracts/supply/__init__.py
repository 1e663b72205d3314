"""The drug supply-chain contract: GS1 identifiers, product master data, the pack lifecycle (EU FMD /
DSCSA), verification and EPCIS 2.0 capture. Pure; its off-ledger side is :mod:`careledger.supply`."""

from __future__ import annotations

from careledger.contracts.supply.handlers import HANDLERS

__all__ = ["HANDLERS"]
