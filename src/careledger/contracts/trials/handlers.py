"""Every handler of the trials contract, registered by (type, version).

Registration, versions, protocol amendments and sites are in :mod:`.handlers_registry`; consent,
enrolment, visits, lock and unblinding in :mod:`.handlers_conduct`; adverse events, safety reports
and results in :mod:`.handlers_reporting`.
"""

from __future__ import annotations

from typing import Any

from careledger.contracts.base import Handler
from careledger.contracts.trials import handlers_conduct, handlers_registry, handlers_reporting

HANDLERS: list[Handler[Any]] = [*handlers_registry.HANDLERS, *handlers_conduct.HANDLERS,
                                *handlers_reporting.HANDLERS]

__all__ = ["HANDLERS"]
