"""The pack lifecycle: commission, aggregate, disaggregate, ship, receive, decommission, undo, observe.

Each operation is a normalised op (a frozen dataclass) applied by :func:`apply_op`; the single-purpose
transactions (``supply.commission``, ``supply.ship``, …) carry one op, ``supply.epcis_capture`` carries
the ops of a whole EPCIS document (see :mod:`careledger.contracts.supply.epcis`), so both paths obey the same
rules. An op names items by ref (see :mod:`careledger.contracts.supply.layout`); an op on a case or pallet
applies to everything inside it, at most :data:`MAX_ITEMS_PER_TX` items.

Rules (EU FMD / NMVS states, DSCSA custody):
* commissioning: by the product's owner; lot and expiry fixed per lot; a serial exists once;
* ship: by the holder, to a named consortium member; the pack must be active, not in transit, not
  expired, not in a recalled lot, not of a withdrawn product (each refusal has its own code);
* receive: by the consignee only (``NOT_CONSIGNEE`` otherwise; ``NOT_IN_TRANSIT`` if never shipped);
* decommission to ``supplied`` (dispense): by a pharmacy or hospital holding the pack, not expired,
  recalled or withdrawn; other decommissions by the holder. An inactive pack cannot be decommissioned
  again (``PACK_INACTIVE``, NMVS_NC_PCK_22; stolen and destroyed are terminal);
* undo: only of a reversible state, by the organisation that set it, within 10 days (``locked``: any
  time), and only while the pack is neither expired, recalled nor withdrawn (EU 2016/161 Art 13);
* an EPCIS event may not be older than the item's latest event (``EVENT_OUT_OF_ORDER``) nor lie
  more than five minutes ahead of the block time.
Expiry is compared as whole UTC days: a pack is usable through its expiry date.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, fields, replace
from typing import Any

from careledger.contracts import identity
from careledger.contracts.base import TxContext
from careledger.contracts.supply import cbv, gs1
from careledger.contracts.supply.base import EVENT_SKEW_MS, org_roles, require_supply_member
from careledger.contracts.supply.layout import (
    MAX_ITEMS_PER_TX,
    LotRecord,
    PackEvent,
    PackRecord,
    ProductRecord,
    SupplyError,
    SupplyInvalid,
    get_item,
    get_lot,
    get_product,
    history_entry,
    is_unit_ref,
    lot_key,
    pack_key,
    pack_prefix,
    product_key,
    put_item,
    put_lot,
    record_key,
    split_pack_ref,
)
from careledger.core import codec
from careledger.core.errors import Code
from careledger.core.state import Overlay

DAY_MS = 86_400_000
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


def utc_day(ms: int) -> int:
    return ms // DAY_MS


def utc_year(ms: int) -> int:
    return _dt.date.fromordinal(_EPOCH_ORDINAL + ms // DAY_MS).year


# --- normalised operations -------------------------------------------------------------------------

@dataclass(frozen=True)
class Commission:
    gtin: str
    lot: str
    expiry: str
    serials: tuple[str, ...]
    at: int | None = None
    op: str = "commission"


@dataclass(frozen=True)
class CommissionUnit:
    sscc: str
    at: int | None = None
    op: str = "commission_unit"


@dataclass(frozen=True)
class Aggregate:
    parent: str
    children: tuple[str, ...]
    at: int | None = None
    op: str = "aggregate"


@dataclass(frozen=True)
class Disaggregate:
    parent: str
    children: tuple[str, ...] | None = None
    at: int | None = None
    op: str = "disaggregate"


@dataclass(frozen=True)
class Ship:
    items: tuple[str, ...]
    to: str | None = None  # the consignee (an EPCIS shipment's is resolved from its destination at apply)
    at: int | None = None
    op: str = "ship"


@dataclass(frozen=True)
class Receive:
    items: tuple[str, ...]
    at: int | None = None
    op: str = "receive"


@dataclass(frozen=True)
class Decommission:
    items: tuple[str, ...]
    state: str
    at: int | None = None
    op: str = "decommission"


@dataclass(frozen=True)
class Undo:
    items: tuple[str, ...]
    state: str
    at: int | None = None
    op: str = "undo"


@dataclass(frozen=True)
class Observe:
    items: tuple[str, ...]
    biz_step: str
    at: int | None = None
    op: str = "observe"


Op = Commission | CommissionUnit | Aggregate | Disaggregate | Ship | Receive | Decommission | Undo | Observe


_OP_CLASSES: dict[str, type[Any]] = {"commission": Commission, "commission_unit": CommissionUnit,
                                     "aggregate": Aggregate, "disaggregate": Disaggregate, "ship": Ship,
                                     "receive": Receive, "decommission": Decommission, "undo": Undo,
                                     "observe": Observe}


def op_to_json(op: Op) -> dict[str, Any]:
    """An op's stored form (a pending EPCIS event keeps its ops until confirmed): its fields, tuples as lists,
    absent (None) fields left out."""
    doc: dict[str, Any] = {}
    for f in fields(op):
        value = getattr(op, f.name)
        if value is not None:
            doc[f.name] = list(value) if isinstance(value, tuple) else value
    return doc


def op_from_json(doc: dict[str, Any]) -> Op:
    """The op :func:`op_to_json` stored."""
    kind = _OP_CLASSES[doc["op"]]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
    op: Op = kind(**values)
    return op


@dataclass
class OpRun:
    """One transaction's view while applying ops: signer organisation, block time, read caches."""

    state: Overlay
    ctx: TxContext
    org: str
    lots: dict[str, LotRecord | None] = field(default_factory=dict)
    products: dict[str, ProductRecord | None] = field(default_factory=dict)
    touched: int = 0
    limit: int = MAX_ITEMS_PER_TX

    def time(self, at: int | None) -> int:
        if at is None:
            return self.ctx.env.time_ms
        if at > self.ctx.env.time_ms + EVENT_SKEW_MS:
            raise SupplyError("event time lies in the future of the block time", Code.EVENT_OUT_OF_ORDER)
        return at

    def product(self, gtin: str) -> ProductRecord | None:
        if gtin not in self.products:
            self.products[gtin] = get_product(self.state, gtin)
        return self.products[gtin]

    def lot(self, gtin: str, lot: str) -> LotRecord | None:
        key = lot_key(gtin, lot)
        if key not in self.lots:
            self.lots[key] = get_lot(self.state, gtin, lot)
        return self.lots[key]

    def count(self, n: int) -> None:
        self.touched += n
        if self.touched > self.limit:
            raise SupplyError(f"this transaction touches more than {self.limit} items", Code.TOO_MANY_ITEMS)

    def entry(self, op: str, at: int, extra: str | int | None = None) -> PackEvent:
        """A history entry of this transaction's organisation and block."""
        return history_entry(op, at, self.org, self.ctx.env.height, extra)

    def write(self, ref: str, rec: PackRecord) -> None:
        put_item(self.state, ref, rec)


def _state_error(ref: str, state: str) -> SupplyError:
    code = {"stolen": Code.PACK_STOLEN, "destroyed": Code.PACK_DESTROYED, "locked": Code.PACK_LOCKED}.get(
        state, Code.PACK_INACTIVE)
    return SupplyError(f"{ref} is {state}, not active", code)


def check_usable(run: OpRun, ref: str, rec: PackRecord, at: int) -> None:
    """Refuse a pack that is expired, in a recalled lot or of a withdrawn product (at time ``at``).

    Raises PRODUCT_WITHDRAWN, LOT_RECALLED or PACK_EXPIRED; a logistic unit is always usable.
    """
    if is_unit_ref(ref) or rec.lot is None:
        return
    gtin, _ = split_pack_ref(ref)
    product = run.product(gtin)
    if product is not None and product.is_withdrawn:
        raise SupplyError(f"{ref}: product {gtin} is withdrawn", Code.PRODUCT_WITHDRAWN)
    lot = run.lot(gtin, rec.lot)
    if lot is not None:
        if lot.is_recalled:
            raise SupplyError(f"{ref}: lot {rec.lot!r} is recalled", Code.LOT_RECALLED)
        if utc_day(at) > lot.expiry_day:
            raise SupplyError(f"{ref}: expired on {lot.expiry} (YYMMDD)", Code.PACK_EXPIRED)


def load(run: OpRun, ref: str) -> PackRecord:
    """The item's record; raises CONTAINER_UNKNOWN (a logistic unit) or SERIAL_UNKNOWN (a pack)."""
    rec = get_item(run.state, ref)
    if rec is None:
        if is_unit_ref(ref):
            raise SupplyError(f"logistic unit {ref} is unknown", Code.CONTAINER_UNKNOWN)
        raise SupplyError(f"{ref} was never commissioned", Code.SERIAL_UNKNOWN)
    return rec


def expand(run: OpRun, refs: tuple[str, ...], top_level_free: bool = True) -> list[tuple[str, PackRecord]]:
    """The items and, recursively, their contents, each with its record (loaded once).

    With ``top_level_free``, a named item packed in a container that is not named too is refused
    (PACK_AGGREGATED). Raises what :func:`load` raises and TOO_MANY_ITEMS.
    """
    out: list[tuple[str, PackRecord]] = []
    stack = list(reversed(refs))
    top = set(refs)
    seen: set[str] = set()
    while stack:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        rec = load(run, ref)
        if top_level_free and ref in top and rec.parent is not None and rec.parent not in top:
            raise SupplyError(f"{ref} is packed in {rec.parent}; unpack it first", Code.PACK_AGGREGATED)
        out.append((ref, rec))
        run.count(1)
        if rec.children:
            stack.extend(reversed(rec.children))
    return out


def _in_order(ref: str, rec: PackRecord, at: int) -> None:
    events = rec.events
    if events and at < events[-1][1]:
        raise SupplyError(f"{ref}: event at {at} ms precedes its latest event at {events[-1][1]} ms",
                          Code.EVENT_OUT_OF_ORDER)


# --- operations --------------------------------------------------------------------------------------

def apply_commission(run: OpRun, op: Commission) -> dict[str, Any]:
    """Commission packs of one lot (creating the lot). Raises GTIN_NOT_OWNED, PRODUCT_UNKNOWN,
    PRODUCT_WITHDRAWN, EXPIRY_MISMATCH, LOT_RECALLED, PACK_EXPIRED, SERIAL_EXISTS, TOO_MANY_ITEMS."""
    state, org = run.state, run.org
    product = run.product(op.gtin)
    if product is None or product.owner != org:
        from careledger.contracts.supply.products import require_owned_product

        require_owned_product(state, org, op.gtin)
    assert product is not None
    if product.is_withdrawn:
        raise SupplyError(f"product {op.gtin} is withdrawn", Code.PRODUCT_WITHDRAWN)
    at = run.time(op.at)
    run.count(len(op.serials))
    key = lot_key(op.gtin, op.lot)
    lot = run.lot(op.gtin, op.lot)
    if lot is None:
        try:
            expiry_day = gs1.yymmd0_to_epoch_days(op.expiry, reference_year=utc_year(at))
        except gs1.GS1Error as exc:
            raise SupplyError(exc.message, exc.code) from None
        lot = LotRecord(gtin=op.gtin, lot=op.lot, expiry=op.expiry, expiry_day=expiry_day, owner=org, packs=0,
                        status="active", since=run.ctx.env.height)
    elif lot.expiry != op.expiry:
        raise SupplyError(f"lot {op.lot!r} expires {lot.expiry}, not {op.expiry}", Code.EXPIRY_MISMATCH)
    if lot.is_recalled:
        raise SupplyError(f"lot {op.lot!r} is recalled", Code.LOT_RECALLED)
    if utc_day(at) > lot.expiry_day:
        raise SupplyError(f"lot {op.lot!r} expired on {op.expiry} (YYMMDD)", Code.PACK_EXPIRED)
    # The hot path: every pack of the op gets the same bytes; one read and one write each, in key order
    # (random serials land all over the state B-tree; sorted writes keep each page's inserts together).
    value = codec.encode(PackRecord(state=cbv.ACTIVE, holder=org, events=(run.entry("commission", at),),
                                    lot=op.lot).to_json())
    prefix = pack_prefix(op.gtin)
    get_raw, writes = state.get_raw, state.writes
    for serial in sorted(op.serials):
        k = prefix + serial
        if get_raw(k) is not None:
            raise SupplyError(f"serial {serial!r} of GTIN {op.gtin} is already commissioned", Code.SERIAL_EXISTS)
        writes[k] = value
    lot = replace(lot, packs=lot.packs + len(op.serials))
    run.lots[key] = lot
    put_lot(state, lot)
    return {"gtin": op.gtin, "lot": op.lot, "commissioned": len(op.serials)}


def _new_unit(run: OpRun, at: int) -> PackRecord:
    return PackRecord(state=cbv.ACTIVE, holder=run.org, events=(run.entry("commission", at),))


def apply_commission_unit(run: OpRun, op: CommissionUnit) -> dict[str, Any]:
    """Commission a logistic unit (SSCC). Raises SERIAL_EXISTS."""
    at = run.time(op.at)
    if run.state.has(record_key(op.sscc)):
        raise SupplyError(f"logistic unit {op.sscc} already exists", Code.SERIAL_EXISTS)
    run.write(op.sscc, _new_unit(run, at))
    return {"unit": op.sscc}


def _require_held(run: OpRun, ref: str, rec: PackRecord) -> None:
    if rec.holder != run.org:
        raise SupplyError(f"{ref} is held by {rec.holder!r}, not {run.org!r}", Code.NOT_HOLDER)
    if rec.in_transit_to is not None:
        raise SupplyError(f"{ref} is in transit to {rec.in_transit_to!r}", Code.PACK_IN_TRANSIT)
    if rec.state != cbv.ACTIVE:
        raise _state_error(ref, rec.state)


def apply_aggregate(run: OpRun, op: Aggregate) -> dict[str, Any]:
    """Pack items into a container (a new SSCC is commissioned on the fly). Raises SERIAL_UNKNOWN,
    NOT_HOLDER, PACK_IN_TRANSIT, the inactive-state codes, INVALID_STATE (a cycle), PACK_AGGREGATED,
    EVENT_OUT_OF_ORDER and TOO_MANY_ITEMS."""
    at = run.time(op.at)
    parent = get_item(run.state, op.parent)
    if parent is None:
        if not is_unit_ref(op.parent):
            raise SupplyError(f"{op.parent} was never commissioned", Code.SERIAL_UNKNOWN)
        parent = _new_unit(run, at)
    _require_held(run, op.parent, parent)
    _in_order(op.parent, parent, at)
    ancestors = {op.parent}
    up = parent.parent
    while up is not None and len(ancestors) < 16:
        ancestors.add(up)
        above = get_item(run.state, up)
        up = None if above is None else above.parent
    children = list(parent.children or ())
    run.count(len(op.children))
    for ref in op.children:
        if ref in ancestors:
            raise SupplyError(f"{ref} cannot be packed inside itself", Code.INVALID_STATE)
        rec = load(run, ref)
        _require_held(run, ref, rec)
        if rec.parent is not None:
            raise SupplyError(f"{ref} is already packed in {rec.parent}", Code.PACK_AGGREGATED)
        _in_order(ref, rec, at)
        run.write(ref, rec.with_parent(run.entry("aggregate", at, op.parent), op.parent))
        children.append(ref)
    if len(children) > MAX_ITEMS_PER_TX:
        raise SupplyError(f"a container holds at most {MAX_ITEMS_PER_TX} items", Code.TOO_MANY_ITEMS)
    run.write(op.parent, parent.with_children(run.entry("pack", at, len(op.children)), tuple(children)))
    return {"parent": op.parent, "children": len(children)}


def apply_disaggregate(run: OpRun, op: Disaggregate) -> dict[str, Any]:
    """Unpack some (or all) of a container's contents. Raises CONTAINER_UNKNOWN / SERIAL_UNKNOWN,
    NOT_HOLDER, PACK_IN_TRANSIT, EVENT_OUT_OF_ORDER, INVALID_STATE (not inside) and TOO_MANY_ITEMS."""
    at = run.time(op.at)
    parent = load(run, op.parent)
    if parent.holder != run.org:
        raise SupplyError(f"{op.parent} is held by {parent.holder!r}, not {run.org!r}", Code.NOT_HOLDER)
    if parent.in_transit_to is not None:
        raise SupplyError(f"{op.parent} is in transit to {parent.in_transit_to!r}", Code.PACK_IN_TRANSIT)
    _in_order(op.parent, parent, at)
    current = list(parent.children or ())
    removing = list(op.children) if op.children is not None else current
    present = set(current)
    missing = [r for r in removing if r not in present]
    if missing:
        raise SupplyError(f"{missing[0]} is not packed in {op.parent}", Code.INVALID_STATE)
    run.count(len(removing))
    for ref in removing:
        rec = load(run, ref)
        run.write(ref, rec.with_parent(run.entry("disaggregate", at, op.parent), None))
    gone = set(removing)
    left = [r for r in current if r not in gone]
    run.write(op.parent, parent.with_children(run.entry("unpack", at, len(removing)), tuple(left) if left else None))
    return {"parent": op.parent, "removed": len(removing), "left": len(left)}


def _consignee(run: OpRun, op: Ship) -> str:
    to = op.to
    if to is None:
        raise SupplyError("a shipment needs a consignee", Code.PARTY_UNKNOWN)
    identity.require_org(run.state, to)
    if to == run.org:
        raise SupplyError("the consignee is the holder itself", Code.INVALID_STATE)
    return to


def apply_ship(run: OpRun, op: Ship) -> dict[str, Any]:
    """Ship items (with their contents) to a member. Raises PARTY_UNKNOWN, ORG_UNKNOWN / ORG_INACTIVE,
    INVALID_STATE (to oneself), what :func:`expand` and :func:`check_usable` raise, NOT_HOLDER,
    PACK_IN_TRANSIT, the inactive-state codes and EVENT_OUT_OF_ORDER."""
    to = _consignee(run, op)
    at = run.time(op.at)
    items = expand(run, op.items)
    for ref, rec in items:
        _require_held(run, ref, rec)
        _in_order(ref, rec, at)
        check_usable(run, ref, rec, at)
    entry = run.entry("ship", at, to)
    for ref, rec in items:
        run.write(ref, rec.shipped(entry, to))
    return {"shipped": len(items), "to": to}


def apply_receive(run: OpRun, op: Receive) -> dict[str, Any]:
    """Receive a shipment addressed to the signer's organisation. Raises NOT_IN_TRANSIT, NOT_CONSIGNEE,
    the inactive-state codes (stolen in transit), EVENT_OUT_OF_ORDER and what :func:`expand` raises."""
    at = run.time(op.at)
    items = expand(run, op.items)
    for ref, rec in items:
        if rec.in_transit_to is None:
            raise SupplyError(f"{ref} was not shipped (holder {rec.holder!r})", Code.NOT_IN_TRANSIT)
        if rec.in_transit_to != run.org:
            raise SupplyError(f"{ref} is addressed to {rec.in_transit_to!r}, not {run.org!r}", Code.NOT_CONSIGNEE)
        if rec.state != cbv.ACTIVE:  # reported stolen in transit
            raise _state_error(ref, rec.state)
        _in_order(ref, rec, at)
    for ref, rec in items:
        run.write(ref, rec.received(run.entry("receive", at, rec.holder)))
    return {"received": len(items)}


def apply_decommission(run: OpRun, op: Decommission) -> dict[str, Any]:
    """Decommission packs (dispense, destroy, report stolen, export, sample, lock, check out). Raises
    UNAUTHORISED (only a pharmacy or hospital supplies), the inactive-state codes, NOT_HOLDER,
    PACK_IN_TRANSIT, EVENT_OUT_OF_ORDER, what :func:`check_usable` raises (supplied only) and what
    :func:`expand` raises."""
    at = run.time(op.at)
    if op.state == "supplied" and not set(org_roles(run.state, run.org)) & cbv.DISPENSER_ORG_ROLES:
        raise SupplyError("only a pharmacy or hospital may supply (dispense) a pack", Code.UNAUTHORISED)
    items = expand(run, op.items)
    for ref, rec in items:
        may_hold = rec.holder == run.org or (op.state == "stolen" and rec.in_transit_to == run.org)
        if rec.state != cbv.ACTIVE:
            raise _state_error(ref, rec.state)
        if not may_hold:
            raise SupplyError(f"{ref} is held by {rec.holder!r}, not {run.org!r}", Code.NOT_HOLDER)
        if rec.in_transit_to is not None and op.state != "stolen":
            raise SupplyError(f"{ref} is in transit to {rec.in_transit_to!r}", Code.PACK_IN_TRANSIT)
        _in_order(ref, rec, at)
        if op.state == "supplied":
            check_usable(run, ref, rec, at)
    entry = run.entry("decommission", at, op.state)
    undo = (op.state, run.org, at)
    for ref, rec in items:
        run.write(ref, rec.with_state(entry, op.state, undo))
    return {"decommissioned": len(items), "state": op.state}


def apply_undo(run: OpRun, op: Undo) -> dict[str, Any]:
    """Revert a decommissioning. Raises UNDO_STATE_MISMATCH, UNDO_OTHER_PARTY, UNDO_WINDOW_EXCEEDED,
    EVENT_OUT_OF_ORDER, what :func:`check_usable` raises and what :func:`expand` raises."""
    at = run.time(op.at)
    items = expand(run, op.items)
    for ref, rec in items:
        if rec.state != op.state or op.state not in cbv.REVERSIBLE_STATES or rec.undo is None:
            raise SupplyError(f"{ref} is {rec.state}; undoing {op.state!r} does not match", Code.UNDO_STATE_MISMATCH)
        state, by, when = rec.undo
        if by != run.org:
            raise SupplyError(f"{ref} was set {state} by {by!r}; only they may undo it", Code.UNDO_OTHER_PARTY)
        if op.state not in cbv.UNDO_ANYTIME and at - when > cbv.UNDO_WINDOW_MS:
            raise SupplyError(f"{ref}: the 10-day undo window closed", Code.UNDO_WINDOW_EXCEEDED)
        _in_order(ref, rec, at)
        check_usable(run, ref, rec, at)
    entry = run.entry("undo", at, op.state)
    for ref, rec in items:
        run.write(ref, rec.with_state(entry, cbv.ACTIVE, None))
    return {"restored": len(items), "state": cbv.ACTIVE}


def apply_observe(run: OpRun, op: Observe) -> dict[str, Any]:
    """Record an observation (EPCIS OBSERVE) of items the signer holds or is receiving. Raises NOT_HOLDER,
    EVENT_OUT_OF_ORDER and what :func:`expand` raises."""
    at = run.time(op.at)
    items = expand(run, op.items, top_level_free=False)
    for ref, rec in items:
        if run.org not in (rec.holder, rec.in_transit_to):
            raise SupplyError(f"{ref} is held by {rec.holder!r}, not {run.org!r}", Code.NOT_HOLDER)
        _in_order(ref, rec, at)
    entry = run.entry("observe", at, op.biz_step)
    for ref, rec in items:
        run.write(ref, rec.logged(entry))
    return {"observed": len(items)}


_APPLY: dict[str, Any] = {
    "commission": apply_commission, "commission_unit": apply_commission_unit, "aggregate": apply_aggregate,
    "disaggregate": apply_disaggregate, "ship": apply_ship, "receive": apply_receive,
    "decommission": apply_decommission, "undo": apply_undo, "observe": apply_observe,
}


def apply_op(run: OpRun, op: Op) -> dict[str, Any]:
    result: dict[str, Any] = _APPLY[op.op](run, op)
    return result


def apply_ops(state: Overlay, ctx: TxContext, ops: tuple[Op, ...], limit: int = MAX_ITEMS_PER_TX,
              ) -> list[dict[str, Any]]:
    """Apply ``ops`` in order for the signer's organisation; the first refusal fails them all."""
    run = OpRun(state, ctx, require_supply_member(state, ctx), limit=limit)
    results = []
    for i, op in enumerate(ops):
        try:
            results.append(apply_op(run, op))
        except SupplyError as exc:
            if len(ops) > 1:
                raise SupplyError(f"event {i}: {exc.message}", exc.code) from None
            raise
    return results


def op_hints(op: Op) -> list[str]:
    """State keys an op will read (a prefetch hint only)."""
    if isinstance(op, Commission):
        return [product_key(op.gtin), lot_key(op.gtin, op.lot),
                *(pack_key(op.gtin, s) for s in op.serials)]
    if isinstance(op, CommissionUnit):
        return [record_key(op.sscc)]
    if isinstance(op, Aggregate):
        return [record_key(op.parent), *(record_key(r) for r in op.children)]
    if isinstance(op, Disaggregate):
        return [record_key(op.parent)]
    return [record_key(r) for r in op.items]


def check_decommission_state(state: str) -> str:
    if state not in cbv.DECOMMISSION_STATES:
        raise SupplyInvalid(f"{state!r} is not a decommissioned state ({', '.join(cbv.DECOMMISSION_STATES)})",
                            Code.INVALID_PAYLOAD)
    return state
