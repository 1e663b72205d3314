"""Supply-chain queries: products, lots, packs and logistic units, locations (GLNs), multi-party EPCIS
captures, verification, and alerts.

Everything reads committed state. ``GET /v1/supply/verify`` is open to anyone and writes nothing (a
pharmacy that wants its scan on the ledger signs ``supply.verify`` instead). ``GET /v1/supply/alerts``
needs a signed request (see :mod:`careledger.supply.auth`): a regulator sees every alert, a
manufacturer those about its products.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from careledger.api.common import SIGNED_REQUEST_REFUSALS, node_of, not_found, refusals, signed_request, signed_route
from careledger.api.errors import LedgerRoute
from careledger.api.services import NodeContext, Services, services_of
from careledger.contracts.supply import layout
from careledger.contracts.supply.layout import pack_ref, parse_gtin, parse_ref
from careledger.contracts.supply.verification import parse_identifier, verify_pack
from careledger.core.errors import Code, LedgerError
from careledger.node.engine import Engine
from careledger.node.store import Store
from careledger.supply import auth
from careledger.supply.alerts import AlertIndex
from careledger.supply.event_index import CapturedEventIndex
from careledger.supply.views import item_view
from careledger.vault.requests import ReplayGuard

router = APIRouter(prefix="/v1/supply", tags=["supply"], route_class=LedgerRoute)

GtinPath = Annotated[str, Path(pattern=r"^[0-9]{8,14}$", description="GTIN-8/12/13/14")]
GlnPath = Annotated[str, Path(pattern=r"^[0-9]{13}$", description="GLN (13 digits)")]
CapturePath = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="capture id (the capture's tx hash)")]
OrgQuery = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9.-]{1,62}$")]
Short = Annotated[str | None, Query(max_length=20)]


def now_ms() -> int:
    return int(time.time() * 1000)


def requester(request: Request, node: Engine) -> auth.Requester:
    """The member who signed this request (see :mod:`careledger.supply.auth`); raises AuthError."""
    return auth.verify_member_request(signed_request(request), node.chain.chain_id, node.chain.suite,
                                      node.store.view(), now_ms(), services_of(request).get(AlertReads).guard)


@dataclass(frozen=True)
class AlertReads:
    """The replay memory of signed alert reads (each signed request is accepted once)."""

    guard: ReplayGuard


def start(context: NodeContext, services: Services) -> None:
    """The alert index and the captured-event index, built at start-up (each derives its entries from
    committed transactions as it is read), and the memory of the signed reads the alerts answered."""
    services.add(AlertIndex())
    services.add(CapturedEventIndex())
    services.add(AlertReads(ReplayGuard()))


def alert_index(request: Request) -> AlertIndex:
    return services_of(request).get(AlertIndex)


def alert_counts(services: Services, store: Store) -> dict[str, int]:
    """Alerts raised so far, by kind (for the metrics); none before the API's services are open."""
    try:
        index = services.get(AlertIndex)
    except LedgerError:
        return {}
    index.catch_up(store)
    counts: dict[str, int] = {}
    for alert in list(index.alerts):
        counts[alert["kind"]] = counts.get(alert["kind"], 0) + 1
    return counts


@router.get("/products/{gtin}", summary="A product's master data", response_model=None)
def get_product(request: Request, gtin: GtinPath) -> JSONResponse:
    """Name, strength, dosage form, national codes, owner, GS1 Company Prefix and status of a GTIN."""
    rec = layout.get_product(node_of(request).store.view(), parse_gtin(gtin))
    if rec is None:
        raise not_found(f"product {gtin}")
    return JSONResponse(rec.to_json())


@router.get("/products/{gtin}/lots/{lot}", summary="A lot (batch) and its recall status", response_model=None)
def get_lot(request: Request, gtin: GtinPath, lot: Annotated[str, Path(max_length=20)]) -> JSONResponse:
    """The lot's expiry, owner, number of packs commissioned and recall status."""
    rec = layout.get_lot(node_of(request).store.view(), parse_gtin(gtin), lot)
    if rec is None:
        raise not_found(f"lot {lot!r} of {gtin}")
    return JSONResponse(rec.to_json())


@router.get("/locations", summary="Registered locations (GLNs)", response_model=None)
def get_locations(request: Request, org: OrgQuery = None,
                  status: Annotated[str | None, Query(pattern=r"^(active|retired)$")] = None) -> JSONResponse:
    """Every registered location (by GLN), optionally of one organisation and with one status. A GLN that is
    not registered may still resolve, through its organisation's GS1 Company Prefix."""
    found = [rec.to_json() for rec in layout.locations(node_of(request).store.view())
             if (org is None or rec.org == org) and (status is None or rec.status == status)]
    return JSONResponse({"locations": found})


@router.get("/locations/{gln}", summary="A registered location", response_model=None)
def get_location(request: Request, gln: GlnPath) -> JSONResponse:
    """The location's organisation, name, role, address and status, or 404."""
    rec = layout.get_location(node_of(request).store.view(), gln)
    if rec is None:
        raise not_found(f"location {gln}")
    return JSONResponse(rec.to_json())


def capture_json(rec: layout.CaptureRecord) -> dict[str, Any]:
    """A multi-party capture as the API shows it: its record plus ``pending_orgs``."""
    return {**rec.to_json(), "pending_orgs": rec.pending_orgs}


@router.get("/captures", summary="Multi-party EPCIS captures (e.g. those awaiting an organisation)",
            response_model=None)
def get_captures(request: Request, awaiting: OrgQuery = None,
                 status: Annotated[str | None, Query(pattern=r"^(pending|complete|rejected)$")] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JSONResponse:
    """Captures that had events of other members than the capturer, by id: with `awaiting`, those with a
    pending event attributed to that organisation and not yet confirmed by it (what it has to confirm or
    reject)."""
    found = []
    for rec in layout.captures(node_of(request).store.view()):
        waits_for = awaiting is None or (awaiting in rec.pending_orgs and awaiting not in rec.confirmed)
        if (status is None or rec.status == status) and waits_for:
            found.append(capture_json(rec))
            if len(found) >= limit:
                break
    return JSONResponse({"captures": found})


@router.get("/captures/{capture}", summary="A multi-party EPCIS capture", response_model=None)
def get_capture(request: Request, capture: CapturePath) -> JSONResponse:
    """Who captured it, who has confirmed, the events still pending (in document order) and its status;
    404 for an unknown capture or one whose events all applied at once (its job says so)."""
    rec = layout.get_capture(node_of(request).store.view(), capture)
    if rec is None:
        raise not_found(f"multi-party capture {capture}")
    return JSONResponse(capture_json(rec))


def _item(request: Request, ref: str) -> JSONResponse:
    view = item_view(node_of(request).store.view(), ref)
    if view is None:
        raise not_found(f"item {ref}")
    return JSONResponse(view)


@router.get("/packs/{gtin}/{serial:path}", summary="A pack: state, holder, custody chain, history",
            response_model=None)
def get_pack(request: Request, gtin: GtinPath, serial: str) -> JSONResponse:
    """The pack's EU FMD state, current holder, consignee while in transit, lot, container,
    custody chain and full event history."""
    return _item(request, parse_ref(pack_ref(parse_gtin(gtin), serial)))


@router.get("/items", summary="Any item by EPC URN, Digital Link or ref", response_model=None)
def get_item(request: Request, epc: Annotated[str, Query(max_length=200)]) -> JSONResponse:
    """A pack (SGTIN) or logistic unit (SSCC) named by EPC URN, GS1 Digital Link or ledger ref."""
    return _item(request, parse_ref(epc))


@router.get("/verify", summary="Verify a product identifier (read-only)", response_model=None)
def verify(request: Request, gtin: Annotated[str | None, Query(max_length=14)] = None, serial: Short = None,
           lot: Short = None, expiry: Annotated[str | None, Query(max_length=6)] = None,
           dl: Annotated[str | None, Query(max_length=300)] = None,
           scan: Annotated[str | None, Query(max_length=120)] = None) -> JSONResponse:
    """VERIFIED, or NOT VERIFIED with reasons (EU FMD / NMVS codes, DSCSA VRS failure reason), with
    the pack's holder and custody chain. Give GTIN + serial (+ lot, expiry), a GS1 Digital Link
    (`dl`) or a scanned element string (`scan`, GS as %1D). Writes nothing."""
    pi = parse_identifier(gtin, serial, lot, expiry, dl, scan)
    node = node_of(request)
    result = verify_pack(node.store.view(), pi, max(now_ms(), int(node.status().get("latest_block_time_ms") or 0)))
    result["height"] = node.head.height
    return JSONResponse(result)


@router.get("/alerts", summary="Alerts (signed request; regulators and manufacturers)", response_model=None,
            openapi_extra=signed_route(),
            responses=refusals(Code.BAD_REQUEST, *SIGNED_REQUEST_REFUSALS, Code.UNKNOWN_SIGNER, Code.SIGNER_REVOKED,
                               Code.UNAUTHORISED, Code.NODE_UNAVAILABLE))
def get_alerts(request: Request, kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}$")] = None,
               since_height: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
               gtin: Annotated[str | None, Query(pattern=r"^[0-9]{14}$")] = None, party: OrgQuery = None,
               from_ms: Annotated[int | None, Query(ge=0)] = None,
               to_ms: Annotated[int | None, Query(ge=0)] = None) -> JSONResponse:
    """Alerts derived from committed receipts: a regulator sees all, a manufacturer those about its
    products; each names its subjects, GTINs, lots and manufacturers. Filters: `kind`, `gtin` (14 digits),
    `party` (the organisation whose transaction raised it), the block-time period `[from_ms, to_ms)`.
    A signed request (`Authorization: CareLedger-Request …`), accepted once."""
    node = node_of(request)
    who = requester(request, node)
    if "regulator" not in who.org_roles and "manufacturer" not in who.org_roles:
        raise LedgerError("alerts are readable by regulators and manufacturers only", Code.UNAUTHORISED)
    alerts = alert_index(request).visible(node.store, who.org, list(who.org_roles), kind, since_height, limit,
                                          gtin=gtin, party=party, from_ms=from_ms, to_ms=to_ms)
    body: dict[str, Any] = {"org": who.org, "alerts": alerts, "height": node.head.height}
    return JSONResponse(body)
