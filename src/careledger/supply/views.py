"""Read models of committed supply state, shared by the HTTP API and the CLI (no writes)."""

from __future__ import annotations

from typing import Any

from careledger.contracts.base import Reader
from careledger.contracts.supply.layout import custody_chain, get_item, get_lot, is_unit_ref, split_pack_ref

HISTORY_FIELDS = ("op", "at_ms", "org", "height", "detail")


def item_view(reader: Reader, ref: str) -> dict[str, Any] | None:
    """An item's state, holder, lot, container, contents, custody chain and history (None if unknown)."""
    rec = get_item(reader, ref)
    if rec is None:
        return None
    out: dict[str, Any] = {"ref": ref, "kind": "unit" if is_unit_ref(ref) else "pack", "state": rec.state,
                           "holder": rec.holder, "in_transit_to": rec.in_transit_to, "parent": rec.parent,
                           "contents": list(rec.children or ()), "custody": custody_chain(rec),
                           "history": [dict(zip(HISTORY_FIELDS, [*e, None][:5], strict=True)) for e in rec.events]}
    if not is_unit_ref(ref) and rec.lot is not None:
        gtin, serial = split_pack_ref(ref)
        lot = get_lot(reader, gtin, rec.lot)
        out.update(gtin=gtin, serial=serial, lot=rec.lot, expiry=None if lot is None else lot.expiry,
                   lot_status=None if lot is None else lot.status)
    return out
