"""What every supply transaction shares: payloads with a stateless normalisation step (see
:class:`careledger.contracts.base.Normalising`), and the authorisation helpers (who may act for which
organisation)."""

from __future__ import annotations

from typing import Any

from careledger.contracts import identity
from careledger.contracts.base import Payload, TxContext
from careledger.contracts.supply.layout import SupplyError, SupplyInvalid
from careledger.core.errors import Code
from careledger.core.state import Overlay, StateReader

SUPPLY_ROLES = ("supply_operator", "pharmacist", "pharmacy_technician", "quality_officer", "inspector")
"""Member roles that may sign supply transactions (an organisation admin always may)."""
EVENT_SKEW_MS = 5 * 60 * 1000
"""How far an EPCIS eventTime may lie ahead of the block time."""


class SupplyPayload(Payload):
    """A supply payload; :meth:`normalise` runs the stateless identifier checks and returns what
    ``authorize``/``apply`` receive (raising :class:`SupplyInvalid` with a stable GS1/supply code)."""

    def normalise(self) -> Any:
        return self


def require_supply_member(state: Overlay | StateReader, ctx: TxContext) -> str:
    """The signer's organisation, if the signer is its admin or a member with a supply role."""
    signer = ctx.signer
    if signer.org is None or signer.kind not in ("admin", "member"):
        raise SupplyError("only a consortium member may sign supply transactions", Code.UNAUTHORISED)
    if signer.kind == "member" and not signer.has_role(*SUPPLY_ROLES):
        raise SupplyError(f"signer lacks a supply role ({', '.join(SUPPLY_ROLES)})", Code.UNAUTHORISED)
    return signer.org


def org_roles(state: Overlay | StateReader, org: str) -> list[str]:
    rec = identity.get_org(state, org)
    return [] if rec is None else list(rec.roles)


def require_org_role(state: Overlay | StateReader, org: str, *roles: str) -> None:
    if not set(org_roles(state, org)) & set(roles):
        raise SupplyError(f"organisation {org!r} is not a {' or '.join(roles)}", Code.UNAUTHORISED)


def company_prefix_of(state: Overlay | StateReader, org: str, gtin: str) -> str | None:
    """The longest GS1 Company Prefix of ``org`` that ``gtin`` (GTIN-14) falls under, if any."""
    rec = identity.get_org(state, org)
    if rec is None:
        return None
    best = None
    for prefix in rec.gs1_company_prefixes:
        if gtin[1:1 + len(prefix)] == prefix and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def org_of_company_prefix(state: Overlay | StateReader, digits: str) -> str | None:
    """The active organisation holding the longest GS1 Company Prefix that ``digits`` starts with."""
    best: tuple[int, str] | None = None
    for rec in identity.organisations(state):
        if not rec.is_active:
            continue
        for prefix in rec.gs1_company_prefixes:
            if digits.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), rec.id)
    return None if best is None else best[1]


def invalid(message: str, code: Code) -> SupplyInvalid:
    return SupplyInvalid(message, code)
