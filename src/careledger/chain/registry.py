"""The contracts this release ships, assembled into one :class:`Registry` (built at the edge, passed in).

A new contract adds its package under ``careledger/contracts/`` and one line here.
"""

from __future__ import annotations

from careledger.contracts import audit, claims, consent, governance, identity, records, research, supply, trials
from careledger.contracts.base import Registry
from careledger.contracts.identity import keys as identity_keys


def default_registry() -> Registry:
    """Every contract of this release, registered by (type, version)."""
    return Registry([
        *identity.HANDLERS,
        *identity_keys.HANDLERS,
        *governance.HANDLERS,
        *records.HANDLERS,
        *consent.HANDLERS,
        *audit.HANDLERS,
        *supply.HANDLERS,
        *claims.HANDLERS,
        *research.HANDLERS,
        *trials.HANDLERS,
    ])
