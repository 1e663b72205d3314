"""The supply contract's transactions, assembled: products, the pack lifecycle, scans and EPCIS capture.

Pack-lifecycle payloads name items by ref, EPC URN or Digital Link (normalised to refs before
anything else, so a bad check digit or a malformed URN is refused at admission with its GS1 code).

==========================  ==================================================================
type (version 1)            payload
==========================  ==================================================================
supply.register_product     gtin, name, strength?, dosage_form?, ndc?, national_codes?
supply.withdraw_product     gtin, reason
supply.recall_lot           gtin, lot, reason
supply.commission           gtin, lot, expiry (YYMMDD), serials[] | serial_range{prefix,start,count,width}
supply.aggregate            parent (SSCC or case SGTIN), children[]
supply.disaggregate         parent, children[]? (all when omitted)
supply.ship                 items[], to (organisation id)
supply.receive              items[]
supply.decommission         items[], state (supplied, destroyed, stolen, exported, sample, …)
supply.undo                 items[], state (the state being undone)
supply.verify               gtin+serial(+lot, expiry) | dl | scan
supply.epcis_capture        document (an EPCIS 2.0 JSON-LD document, as text), source?
supply.epcis_confirm        capture (the capturing transaction's hash), approve
supply.set_location         gln, org?, name, role, address?, status
==========================  ==================================================================
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from careledger.contracts.base import Handler, Normalising, TxContext
from careledger.contracts.supply import epcis, gs1, locations, packs, products, verification
from careledger.contracts.supply.base import SupplyPayload, require_supply_member
from careledger.contracts.supply.layout import (
    MAX_ITEMS_PER_TX,
    SERIAL_RE,
    SupplyInvalid,
    check_serial,
    parse_gtin,
    parse_refs,
)
from careledger.core.errors import Code
from careledger.core.state import Overlay
from careledger.core.types import OrgId

Items = Annotated[list[str], Field(min_length=1, max_length=MAX_ITEMS_PER_TX)]
DecommissionState = Literal["supplied", "destroyed", "stolen", "exported", "sample", "free_sample", "locked",
                            "checked_out"]


class SerialRange(SupplyPayload):
    prefix: Annotated[str, Field(max_length=19)] = ""
    start: Annotated[int, Field(ge=0, le=10**19)]
    count: Annotated[int, Field(ge=1, le=MAX_ITEMS_PER_TX)]
    width: Annotated[int, Field(ge=1, le=20)]

    def serials(self) -> tuple[str, ...]:
        last = self.start + self.count - 1
        if len(str(last)) > self.width or len(self.prefix) + self.width > 20:
            raise SupplyInvalid("serial range does not fit its width (serials are at most 20 characters)",
                                Code.FIELD_TOO_LONG)
        if self.prefix and not SERIAL_RE.fullmatch(self.prefix):
            check_serial(self.prefix, "serial prefix")
        fmt = f"{self.prefix}{{:0{self.width}d}}"
        return tuple(fmt.format(n) for n in range(self.start, last + 1))


class CommissionPayload(SupplyPayload):
    gtin: str
    lot: str
    expiry: str
    serials: Annotated[list[str], Field(min_length=1, max_length=MAX_ITEMS_PER_TX)] | None = None
    serial_range: SerialRange | None = None

    def normalise(self) -> packs.Commission:
        gtin = parse_gtin(self.gtin)
        check_serial(self.lot, "lot")
        try:
            gs1.validate_yymmd0(self.expiry)
        except gs1.GS1Error as exc:
            raise SupplyInvalid(exc.message, exc.code) from None
        if (self.serials is None) == (self.serial_range is None):
            raise SupplyInvalid("give exactly one of serials and serial_range", Code.INVALID_PAYLOAD)
        if self.serials is not None:
            match = SERIAL_RE.fullmatch
            for s in self.serials:
                if not match(s):
                    check_serial(s)
            serials = tuple(self.serials)
        else:
            assert self.serial_range is not None
            serials = self.serial_range.serials()
        if len(set(serials)) != len(serials):
            raise SupplyInvalid("a serial appears twice in this commissioning", Code.SERIAL_EXISTS)
        return packs.Commission(gtin, self.lot, self.expiry, serials)


class AggregatePayload(SupplyPayload):
    parent: str
    children: Items

    def normalise(self) -> packs.Aggregate:
        parent, children = parse_refs([self.parent])[0], parse_refs(self.children)
        return packs.Aggregate(parent, children)


class DisaggregatePayload(SupplyPayload):
    parent: str
    children: Items | None = None

    def normalise(self) -> packs.Disaggregate:
        return packs.Disaggregate(parse_refs([self.parent])[0],
                                  None if self.children is None else parse_refs(self.children))


class ShipPayload(SupplyPayload):
    items: Items
    to: OrgId

    def normalise(self) -> packs.Ship:
        return packs.Ship(parse_refs(self.items), to=self.to)


class ReceivePayload(SupplyPayload):
    items: Items

    def normalise(self) -> packs.Receive:
        return packs.Receive(parse_refs(self.items))


class DecommissionPayload(SupplyPayload):
    items: Items
    state: DecommissionState

    def normalise(self) -> packs.Decommission:
        return packs.Decommission(parse_refs(self.items), self.state)


class UndoPayload(SupplyPayload):
    items: Items
    state: DecommissionState

    def normalise(self) -> packs.Undo:
        return packs.Undo(parse_refs(self.items), self.state)


def _authorize(state: Overlay, ctx: TxContext, p: object) -> None:
    require_supply_member(state, ctx)


def _apply_one(state: Overlay, ctx: TxContext, op: packs.Op) -> dict[str, Any]:
    return packs.apply_ops(state, ctx, (op,))[0]


def _op_handler(tx_type: str, payload: type[Normalising[packs.Op]], summary: str) -> Handler[packs.Op]:
    """A pack-lifecycle transaction: its payload normalises to one op, applied by :func:`packs.apply_ops`."""
    return Handler(tx_type, 1, payload, _apply_one, _authorize, summary=summary, read_hints=packs.op_hints)


HANDLERS: list[Handler[Any]] = [
    *products.HANDLERS,
    _op_handler("supply.commission", CommissionPayload,
                "The product's owner commissions serialised packs of one lot (up to 10,000 per transaction)."),
    _op_handler("supply.aggregate", AggregatePayload, "The holder packs items into a case or pallet."),
    _op_handler("supply.disaggregate", DisaggregatePayload, "The holder unpacks a case or pallet."),
    _op_handler("supply.ship", ShipPayload, "The holder ships items (with their contents) to a named member."),
    _op_handler("supply.receive", ReceivePayload, "The consignee receives a shipment."),
    _op_handler("supply.decommission", DecommissionPayload,
                "The holder dispenses (supplied), destroys, reports stolen, exports, samples or locks packs."),
    _op_handler("supply.undo", UndoPayload, "The same party reverts a decommissioning within the undo window."),
    *verification.HANDLERS,
    *epcis.HANDLERS,
    *locations.HANDLERS,
]
