"""Verification of a pack's product identifier, and the ``supply.verify`` scan-at-dispense transaction.

:func:`verify_pack` is a pure function over committed state: three point reads (pack, lot, product)
whatever the ledger's size. It answers VERIFIED, or NOT VERIFIED with reasons modelled on the EU FMD
(NMVS) alert codes and the DSCSA VRS failure reasons, with the pack's current holder and custody chain.

The read-only query (HTTP ``GET /v1/supply/verify``) writes nothing and may be used by any member.
A pharmacy that scans at dispense signs ``supply.verify`` instead: the verdict is computed at block
time, appended to the pack's history, and the suspicious outcomes become ``supply_alert`` events
(unknown serial or product, a dispensed or destroyed serial seen again: a possible clone, a stolen pack).
"""

from __future__ import annotations

from typing import Any

from careledger.contracts.base import Handler, Reader, TxContext
from careledger.contracts.supply import cbv, gs1
from careledger.contracts.supply.base import SupplyPayload, require_supply_member
from careledger.contracts.supply.layout import (
    SupplyInvalid,
    check_serial,
    custody_chain,
    get_lot,
    get_pack,
    get_product,
    history_entry,
    pack_key,
    pack_ref,
    parse_gtin,
    product_key,
    put_item,
)
from careledger.contracts.supply.packs import utc_day
from careledger.core.errors import Code
from careledger.core.state import Overlay

ALERT_REASONS = {"UNKNOWN_SERIAL": "unknown_serial", "UNKNOWN_PRODUCT": "unknown_product",
                 "ALREADY_DECOMMISSIONED": "possible_clone", "DESTROYED": "possible_clone", "STOLEN": "stolen_scanned"}


def parse_identifier(gtin: str | None = None, serial: str | None = None, lot: str | None = None,
                     expiry: str | None = None, dl: str | None = None,
                     scan: str | None = None) -> gs1.ProductIdentifier:
    """The identifier to verify, from exactly one of: GTIN + serial (+ lot, expiry), a Digital Link URI,
    or a scanned element string. Raises :class:`SupplyInvalid` with a GS1 code."""
    given = [x for x in (gtin, dl, scan) if x is not None]
    if len(given) != 1:
        raise SupplyInvalid("give exactly one of gtin (with serial), dl or scan", Code.INVALID_PAYLOAD)
    try:
        if dl is not None:
            pi = gs1.parse_digital_link(dl)
        elif scan is not None:
            pi = gs1.parse_element_string(scan)
        else:
            assert gtin is not None
            pi = gs1.ProductIdentifier(parse_gtin(gtin), serial=serial, lot=lot, expiry=expiry)
    except gs1.GS1Error as exc:
        raise SupplyInvalid(exc.message, exc.code) from None
    if pi.serial is None:
        raise SupplyInvalid("verification needs a serial number (21)", Code.MALFORMED_IDENTIFIER)
    check_serial(pi.serial)
    return pi


def verify_pack(reader: Reader, pi: gs1.ProductIdentifier, now_ms: int) -> dict[str, Any]:
    """VERIFIED or NOT VERIFIED (with reasons) for ``pi`` against committed state at time ``now_ms``."""
    assert pi.serial is not None
    reasons: list[str] = []
    out: dict[str, Any] = {"gtin": pi.gtin, "serial": pi.serial, "lot": pi.lot, "expiry": pi.expiry,
                           "product": None, "pack": None, "custody": [], "checked_at_ms": now_ms}
    product = get_product(reader, pi.gtin)
    if product is None:
        reasons.append("UNKNOWN_PRODUCT")
    else:
        out["product"] = {"name": product.name, "strength": product.strength, "dosage_form": product.dosage_form,
                          "ndc": product.ndc, "owner": product.owner, "status": product.status}
        rec = get_pack(reader, pi.gtin, pi.serial)
        if rec is None:
            reasons.append("UNKNOWN_SERIAL")
        else:
            lot = None if rec.lot is None else get_lot(reader, pi.gtin, rec.lot)
            expiry = None if lot is None else lot.expiry
            recalled = lot is not None and lot.is_recalled
            out["pack"] = {"state": rec.state, "lot": rec.lot, "expiry": expiry, "holder": rec.holder,
                           "in_transit_to": rec.in_transit_to, "parent": rec.parent, "recalled": recalled}
            out["custody"] = custody_chain(rec)
            if pi.lot is not None and pi.lot != rec.lot:
                reasons.append("LOT_MISMATCH")
            if pi.expiry is not None and pi.expiry != expiry:
                reasons.append("EXPIRY_MISMATCH")
            if rec.state in cbv.STATE_REASON:
                reasons.append(cbv.STATE_REASON[rec.state])
            if recalled:
                reasons.append("RECALLED")
            if product.is_withdrawn:
                reasons.append("WITHDRAWN")
            if lot is not None and utc_day(now_ms) > lot.expiry_day:
                reasons.append("EXPIRED")
    out["verified"] = not reasons
    out["result"] = "VERIFIED" if not reasons else "NOT VERIFIED"
    out["reasons"] = reasons
    out["nmvs_codes"] = sorted({c for r in reasons if (c := cbv.REASONS[r][0]) is not None})
    dscsa: dict[str, Any] = {"verified": not reasons}
    dscsa.update(cbv.dscsa_failure(reasons) or {})
    out["dscsa"] = dscsa
    return out


# --- the signed scan ---------------------------------------------------------------------------------

class VerifyScan(SupplyPayload):
    gtin: str | None = None
    serial: str | None = None
    lot: str | None = None
    expiry: str | None = None
    dl: str | None = None
    scan: str | None = None

    def normalise(self) -> gs1.ProductIdentifier:
        return parse_identifier(self.gtin, self.serial, self.lot, self.expiry, self.dl, self.scan)


def alert_kinds(verdict: dict[str, Any]) -> list[str]:
    return sorted({ALERT_REASONS[r] for r in verdict["reasons"] if r in ALERT_REASONS})


def apply_verify(state: Overlay, ctx: TxContext, pi: gs1.ProductIdentifier) -> dict[str, Any]:
    """Verify the scanned pack at block time, append the verdict to its history and raise ``supply_alert``
    events for suspicious outcomes. Raises UNAUTHORISED (not a supply member)."""
    org = require_supply_member(state, ctx)
    verdict = verify_pack(state, pi, ctx.env.time_ms)
    assert pi.serial is not None
    ref = pack_ref(pi.gtin, pi.serial)
    rec = get_pack(state, pi.gtin, pi.serial)
    if rec is not None:
        put_item(state, ref, rec.logged(history_entry("verify", ctx.env.time_ms, org, ctx.env.height,
                                                      verdict["result"])))
    owner = (verdict["product"] or {}).get("owner")
    for kind in alert_kinds(verdict):
        ctx.emit("supply_alert", kind=kind, gtin=pi.gtin, serial=pi.serial, reasons=verdict["reasons"],
                 manufacturer=owner, org=org)
    return {k: verdict[k] for k in ("result", "verified", "reasons", "nmvs_codes", "dscsa", "pack")} | {"ref": ref}


def _authorize(state: Overlay, ctx: TxContext, p: object) -> None:
    require_supply_member(state, ctx)


def _hints(pi: gs1.ProductIdentifier) -> list[str]:
    return [product_key(pi.gtin), pack_key(pi.gtin, pi.serial or "")]


HANDLERS: list[Handler[Any]] = [
    Handler("supply.verify", 1, VerifyScan, apply_verify, _authorize,
                  summary="A signed scan (e.g. at dispense): the verdict is recorded and suspicious outcomes "
                          "raise alerts.", read_hints=_hints),
]
