"""Supply alerts: derived from committed receipts, readable by regulators and the product's manufacturer.

A refused operation writes nothing (its receipt fails and its writes roll back), yet some refusals
must be reported: they may be a counterfeit, a clone or a diversion. The ledger keeps every included
transaction with its receipt code for ever, so an alert *is* such a receipt, and this module derives
the alert list from the chain deterministically (every node derives the same list):

=========================================  ==================================================================
alert kind                                 from
=========================================  ==================================================================
``decommission_inactive`` (NMVS_NC_PCK_22)  ``supply.decommission`` failed PACK_INACTIVE / PACK_STOLEN /
                                            PACK_DESTROYED
``possible_clone`` (NMVS_NC_PCK_22)         ``supply.verify`` of a dispensed, exported, … or destroyed serial
``stolen_scanned``                          ``supply.verify`` of a pack reported stolen
``receipt_by_non_consignee``                ``supply.receive`` failed NOT_CONSIGNEE
``ship_expired_or_recalled``                ``supply.ship`` failed PACK_EXPIRED / LOT_RECALLED / PRODUCT_WITHDRAWN
``unknown_serial`` (NMVS_NC_PC_02)          ``supply.verify`` of an unknown serial; any supply op failing
                                            SERIAL_UNKNOWN
``unknown_product`` (NMVS_NC_PC_01)         ``supply.verify`` of an unregistered GTIN
=========================================  ==================================================================

``supply.epcis_capture`` and ``supply.epcis_confirm`` raise ``decommission_inactive`` and
``receipt_by_non_consignee`` as the operations of those names do. Every alert names its **subjects**
(the item refs the refused operation named: for an EPCIS capture or confirmation, the items of the
event its message names, ``event <index>: ...``, read from the captured document), their ``gtins``
and ``lots`` (``<gtin>/<lot>``), and the **manufacturers** that own those products (a case or pallet
through its contents), so a manufacturer sees alerts about its products whichever way they arose.

:class:`AlertIndex` keeps the derived list in memory and catches up with the store on each read (it
rebuilds from the first block after a restart). Who may read: a regulator sees every alert; a
manufacturer sees the alerts about its own products; anyone else is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from careledger.contracts import identity
from careledger.contracts.supply import epcis
from careledger.contracts.supply.layout import get_item, get_product, parse_ref, split_pack_ref
from careledger.core import codec
from careledger.core.errors import Code, LedgerError, NotFound
from careledger.core.state import StateReader
from careledger.node.store import Store, StoredTx

FMD_CODES = {"decommission_inactive": "NMVS_NC_PCK_22", "possible_clone": "NMVS_NC_PCK_22",
             "unknown_serial": "NMVS_NC_PC_02", "unknown_product": "NMVS_NC_PC_01"}
_FAILED: dict[str, dict[int, str]] = {
    "supply.decommission": {Code.PACK_INACTIVE: "decommission_inactive", Code.PACK_STOLEN: "decommission_inactive",
                            Code.PACK_DESTROYED: "decommission_inactive"},
    "supply.receive": {Code.NOT_CONSIGNEE: "receipt_by_non_consignee"},
    "supply.ship": {Code.PACK_EXPIRED: "ship_expired_or_recalled", Code.LOT_RECALLED: "ship_expired_or_recalled",
                    Code.PRODUCT_WITHDRAWN: "ship_expired_or_recalled"},
    "supply.epcis_capture": {Code.PACK_INACTIVE: "decommission_inactive",
                             Code.NOT_CONSIGNEE: "receipt_by_non_consignee"},
    "supply.epcis_confirm": {Code.PACK_INACTIVE: "decommission_inactive",
                             Code.NOT_CONSIGNEE: "receipt_by_non_consignee"},
}
_ANY_SUPPLY: dict[int, str] = {Code.SERIAL_UNKNOWN: "unknown_serial"}
MAX_SUBJECTS = 20


def _subjects(payload: dict[str, Any]) -> list[str]:
    names = list(payload.get("items", []))
    if "parent" in payload:
        names.append(payload["parent"])
    if "gtin" in payload and "serial" in payload:
        names.append(f"{payload['gtin']}/{payload['serial']}")
    refs = []
    for name in names[:MAX_SUBJECTS]:
        try:
            refs.append(parse_ref(name))
        except Exception:  # a payload that failed may name anything; keep what parses
            continue
    return refs


DocumentOf = Callable[[str], str | None]
"""The document a capture (by its id, the capture transaction's hash) carried, if it is committed."""


def _event_subjects(document: str | None, message: str) -> list[str]:
    """The items of the event a failed capture or confirmation names (``event <index>: ...``)."""
    index = epcis.failed_event_index(message)
    if document is None or index is None:
        return []
    try:
        capture = epcis.normalise_document(document)
    except LedgerError:
        return []
    return next((list(ev.refs[:MAX_SUBJECTS]) for ev in capture.events if ev.index == index), [])


def _is_pack(ref: str) -> bool:
    return len(ref) > 15 and ref[14] == "/"


def _packs(reader: StateReader, refs: list[str]) -> list[str]:
    """The pack refs among ``refs``, and the packs inside the containers among them (up to MAX_SUBJECTS)."""
    out: list[str] = []
    stack = list(reversed(refs))
    seen: set[str] = set()
    while stack and len(out) < MAX_SUBJECTS and len(seen) < 10 * MAX_SUBJECTS:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if _is_pack(ref):
            out.append(ref)
            continue
        rec = get_item(reader, ref)
        stack.extend(reversed(rec.children or ()) if rec is not None else ())
    return out


def _products(reader: StateReader, refs: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(GTINs, ``<gtin>/<lot>`` lots, manufacturers) of the items ``refs`` name, sorted."""
    gtins, lots, owners = set(), set(), set()
    for ref in _packs(reader, refs):
        gtin, _ = split_pack_ref(ref)
        gtins.add(gtin)
        rec = get_item(reader, ref)
        if rec is not None and rec.lot is not None:
            lots.add(f"{gtin}/{rec.lot}")
    for gtin in gtins:
        product = get_product(reader, gtin)
        if product is not None:
            owners.add(product.owner)
    return sorted(gtins), sorted(lots), sorted(owners)


def _capture_document(body: dict[str, Any], document_of: DocumentOf | None) -> str | None:
    payload = body["payload"]
    if body["type"] == "supply.epcis_capture":
        return str(payload.get("document", "")) or None
    if body["type"] == "supply.epcis_confirm" and document_of is not None:
        return document_of(str(payload.get("capture", "")))
    return None


def store_documents(store: Store) -> DocumentOf:
    """A :data:`DocumentOf` reading capture transactions from ``store``."""
    def document_of(capture: str) -> str | None:
        try:
            body = codec.decode_trusted(store.tx(bytes.fromhex(capture)).raw)["body"]
        except (NotFound, ValueError):
            return None
        document = body["payload"].get("document") if body.get("type") == "supply.epcis_capture" else None
        return document if isinstance(document, str) else None
    return document_of


def _signer_org(reader: StateReader, signer: str) -> str | None:
    rec = identity.get_key_record(reader, signer)
    return None if rec is None else rec.org


def alerts_of_tx(reader: StateReader, stored: StoredTx, time_ms: int,
                 document_of: DocumentOf | None = None) -> list[dict[str, Any]]:
    """The alerts one committed transaction raised (none for most). ``document_of`` finds the document of
    the capture an ``epcis_confirm`` names (without it, such an alert has no subjects)."""
    receipt = stored.receipt
    if receipt.code == 0 and not any(e["type"] == "supply_alert" for e in receipt.events):
        return []
    if b'"type":"supply.' not in stored.raw:
        return []
    body = codec.decode_trusted(stored.raw)["body"]
    tx_type: str = body["type"]
    if not tx_type.startswith("supply."):
        return []
    base = {"height": stored.height, "index": stored.index, "tx": stored.hash.hex(), "time_ms": time_ms,
            "tx_type": tx_type, "signer": body["signer"], "org": _signer_org(reader, body["signer"])}
    out = []
    if receipt.code == 0:
        for event in receipt.events:
            if event["type"] != "supply_alert":
                continue
            attrs = event["attrs"]
            subject = f"{attrs['gtin']}/{attrs['serial']}"
            manufacturer = attrs.get("manufacturer")
            _, lots, _ = _products(reader, [subject])
            out.append({**base, "kind": attrs["kind"], "reasons": attrs.get("reasons", []), "subjects": [subject],
                        "gtins": [attrs["gtin"]], "lots": lots,
                        "manufacturers": [manufacturer] if manufacturer else [], "code": 0, "message": ""})
    else:
        kind = _FAILED.get(tx_type, {}).get(receipt.code) or _ANY_SUPPLY.get(receipt.code)
        if kind is not None:
            document = _capture_document(body, document_of)
            refs = _event_subjects(document, receipt.message) if document else _subjects(body["payload"])
            gtins, lots, manufacturers = _products(reader, refs)
            out.append({**base, "kind": kind, "reasons": [Code(receipt.code).name], "subjects": refs,
                        "gtins": gtins, "lots": lots, "manufacturers": manufacturers, "code": receipt.code,
                        "message": receipt.message})
    for alert in out:
        alert["id"] = f"{alert['height']}-{alert['index']}-{out.index(alert)}"
        alert["nmvs_code"] = FMD_CODES.get(alert["kind"])
    return out


def may_read(alert: dict[str, Any], org: str, org_roles: list[str]) -> bool:
    return "regulator" in org_roles or org in alert["manufacturers"]


class AlertIndex:
    """The alerts of a store's chain, derived block by block and kept in memory."""

    def __init__(self) -> None:
        self.height = 0
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def catch_up(self, store: Store) -> None:
        head = store.head().height
        with self._lock:
            if self.height >= head:
                return
            reader = store.view()
            document_of = store_documents(store)
            for height in range(self.height + 1, head + 1):
                header = store.block(height)[0]
                for stored in store.block_txs(height):
                    self.alerts.extend(alerts_of_tx(reader, stored, header.time_ms, document_of))
                self.height = height

    def visible(self, store: Store, org: str, org_roles: list[str], kind: str | None = None,
                since_height: int = 0, limit: int = 1000, gtin: str | None = None, party: str | None = None,
                from_ms: int | None = None, to_ms: int | None = None) -> list[dict[str, Any]]:
        """The alerts ``org`` may read, oldest first (the last ``limit``): of one ``kind``, about one ``gtin``,
        raised by one ``party`` (the signer's organisation), in the block-time period ``[from_ms, to_ms)``."""
        self.catch_up(store)
        with self._lock:
            chosen = [a for a in self.alerts if a["height"] >= since_height and (kind is None or a["kind"] == kind)
                      and (gtin is None or gtin in a["gtins"]) and (party is None or a["org"] == party)
                      and (from_ms is None or a["time_ms"] >= from_ms) and (to_ms is None or a["time_ms"] < to_ms)
                      and may_read(a, org, org_roles)]
        return chosen[-limit:]
