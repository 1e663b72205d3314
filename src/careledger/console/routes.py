"""Read-only routes the console's views need and the API did not have (all under ``/v1/console``).

* ``GET /v1/console/blocks?before=&limit=``: the newest blocks (or those below ``before``), one line
  each, for the explorer's block list;
* ``GET /v1/console/supply/recalls``: every recalled lot and withdrawn product, for regulators and
  manufacturers;
* ``GET /v1/console/supply/lots/{gtin}/{lot}/distribution``: where a lot's packs are now, counted by
  holder and state (and in transit).

All read committed state only, write nothing, and carry no PHI (nothing patient-related is here).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from careledger.api.common import node_of, not_found
from careledger.api.errors import LedgerRoute
from careledger.contracts import identity
from careledger.contracts.supply import layout as supply
from careledger.contracts.supply.layout import parse_gtin
from careledger.core.errors import NotFound, StoreCorrupted
from careledger.node.store import state_chk

router = APIRouter(prefix="/v1/console", tags=["console"], route_class=LedgerRoute)

MAX_BLOCKS_PAGE = 100
MAX_DISTRIBUTION_PACKS = 200_000


def organisation_origins(app: FastAPI) -> list[str]:
    """The origins (``scheme://host[:port]``) of every active organisation's declared API; [] when the
    app has no node."""
    node = getattr(app.state, "node", None)
    if node is None:
        return []
    origins = []
    for org in identity.organisations(node.store.view()):
        api = org.api
        if org.is_active and isinstance(api, str):
            parts = urlsplit(api)
            if parts.scheme in ("http", "https") and parts.netloc:
                origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


@router.get("/blocks", summary="A page of blocks, newest first", response_model=None)
def list_blocks(request: Request,
                before: Annotated[int | None, Query(ge=1, le=2**53 - 1, description="Only blocks below this height")]
                = None,
                limit: Annotated[int, Query(ge=1, le=MAX_BLOCKS_PAGE)] = 20) -> JSONResponse:
    """Up to ``limit`` blocks below ``before`` (default: from the head down): height, hash, time,
    transaction count, proposer and app hash. ``next_before`` pages on (null at block 1)."""
    node = node_of(request)
    head = node.head.height
    top = head if before is None else min(head, before - 1)
    blocks: list[dict[str, Any]] = []
    for height in range(top, max(0, top - limit), -1):
        try:
            header, block_hash, _ = node.store.block(height)
        except NotFound:  # a block committed after ``head`` was read cannot be missing; be safe anyway
            continue
        blocks.append({"height": height, "hash": block_hash.hex(), "time_ms": header.time_ms,
                       "tx_count": header.tx_count, "proposer": header.proposer, "app_hash": header.app_hash})
    last = int(blocks[-1]["height"]) if blocks else 1
    return JSONResponse({"head": head, "blocks": blocks, "next_before": last if last > 1 else None})


@router.get("/supply/recalls", summary="Recalled lots and withdrawn products", response_model=None)
def list_recalls(request: Request) -> JSONResponse:
    """Every lot whose status is ``recalled`` and every product whose status is ``withdrawn``, by GTIN."""
    view = node_of(request).store.view()
    lots, products = [], []
    for product in supply.products(view):
        gtin = product.gtin
        if product.is_withdrawn:
            products.append({"gtin": gtin, "name": product.name, "owner": product.owner, "reason": product.reason,
                             "withdrawn_at": product.withdrawn_at, "withdrawn_by": product.withdrawn_by})
        for lot in supply.lots_of(view, gtin):
            if lot.is_recalled:
                lots.append({"gtin": gtin, "lot": lot.lot, "product": product.name, "expiry": lot.expiry,
                             "owner": lot.owner, "packs": lot.packs, "reason": lot.reason,
                             "recalled_at": lot.recalled_at, "recalled_by": lot.recalled_by})
    return JSONResponse({"lots": lots, "products": products})


@router.get("/supply/lots/{gtin}/{lot}/distribution", summary="Where a lot's packs are", response_model=None)
def lot_distribution(request: Request, gtin: Annotated[str, Path(pattern=r"^[0-9]{8,14}$")],
                     lot: Annotated[str, Path(max_length=20)]) -> JSONResponse:
    """The lot's packs counted by current holder, by state, and in transit to whom. At most
    200,000 packs of the product are examined (``truncated`` says when the product has more)."""
    node = node_of(request)
    gtin14 = parse_gtin(gtin)
    view = node.store.view()
    lot_rec = supply.get_lot(view, gtin14, lot)
    if lot_rec is None:
        raise not_found(f"lot {lot!r} of {gtin14}")
    prefix = supply.pack_prefix(gtin14)
    by_holder: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    in_transit: Counter[str] = Counter()
    rows = view.connection.execute(
        "SELECT key, value, chk FROM state WHERE key >= ? AND key < ? ORDER BY key LIMIT ?",
        (prefix, prefix + "\U0010ffff", MAX_DISTRIBUTION_PACKS + 1)).fetchall()
    truncated = len(rows) > MAX_DISTRIBUTION_PACKS
    for key, value, chk in rows[:MAX_DISTRIBUTION_PACKS]:
        if state_chk(key, bytes(value)) != chk:
            raise StoreCorrupted(f"state entry {key[:40]!r} fails its checksum")
        rec = supply.decode_pack(bytes(value))
        if rec.lot != lot:
            continue
        by_holder[rec.holder] += 1
        by_state[rec.state] += 1
        if rec.in_transit_to:
            in_transit[rec.in_transit_to] += 1
    return JSONResponse({"gtin": gtin14, "lot": lot, "status": lot_rec.status, "expiry": lot_rec.expiry,
                         "packs": sum(by_state.values()), "by_holder": dict(sorted(by_holder.items())),
                         "by_state": dict(sorted(by_state.items())), "in_transit_to": dict(sorted(in_transit.items())),
                         "truncated": truncated})
