"""Read models of committed supply state, shared by the HTTP API and the CLI (no writes)."""

from __future__ import annotations

from typing import Any

from careledger.contracts.supply.layout import custody_chain, is_unit_ref, lot_key, record_key, split_pack_ref
from careledger.core import codec
from careledger.core.state import Overlay, StateReader

HISTORY_FIELDS = ("op", "at_ms", "org", "height", "detail")


def _get(reader: StateReader | Overlay, key: str) -> Any:
    raw = reader.get_raw(key)
    return None if raw is None else codec.decode_trusted(raw)


def item_view(reader: StateReader | Overlay, ref: str) -> dict[str, Any] | None:
    """An item's state, holder, lot, container, contents, custody chain and history (None if unknown)."""
    rec = _get(reader, record_key(ref))
    if rec is None:
        return None
    out: dict[str, Any] = {"ref": ref, "kind": "unit" if is_unit_ref(ref) else "pack", "state": rec["s"],
                           "holder": rec["h"], "in_transit_to": rec.get("t"), "parent": rec.get("p"),
                           "contents": rec.get("c", []), "custody": custody_chain(rec),
                           "history": [dict(zip(HISTORY_FIELDS, [*e, None][:5], strict=True)) for e in rec["e"]]}
    if not is_unit_ref(ref):
        gtin, serial = split_pack_ref(ref)
        lot = _get(reader, lot_key(gtin, rec["l"])) or {}
        out.update(gtin=gtin, serial=serial, lot=rec["l"], expiry=lot.get("expiry"),
                   lot_status=lot.get("status"))
    return out
