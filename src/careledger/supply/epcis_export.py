"""EPCIS 2.0 export: a pack's (or a container's) recorded history as a schema-valid EPCIS document.

Every history entry of a record becomes one event. Identifiers are EPC URNs written with the GS1
Company Prefix length kept in the product record (for an SSCC, the length of the prefix of the
member that holds its company prefix, else 7). Parties are named ``urn:careledger:org:<id>``, the
form the capture path accepts back. Event ids are deterministic UUIDs derived from the item and the
position of the entry in its history, so exporting twice gives the same document (apart from
``creationDate``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from careledger.contracts import identity
from careledger.contracts.supply import cbv, gs1
from careledger.contracts.supply.base import org_of_company_prefix
from careledger.contracts.supply.epcis import ORG_URN, format_time, schema_errors
from careledger.contracts.supply.layout import (
    event_extra,
    get_item,
    get_lot,
    get_product,
    is_unit_ref,
    ref_urn,
    split_pack_ref,
)
from careledger.contracts.supply.packs import utc_year
from careledger.core.state import Overlay, StateReader

CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
UNDO_BIZ_STEP = "urn:careledger:bizstep:undo"
_ORDER = {"ObjectEvent": 0, "AggregationEvent": 1}


def _event_id(ref: str, index: int) -> str:
    digest = hashlib.sha256(f"careledger/epcis/{ref}/{index}".encode()).hexdigest()
    return f"urn:uuid:{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


class _Urns:
    """EPC URNs of refs, with company prefix lengths looked up once per GTIN / SSCC prefix."""

    def __init__(self, reader: StateReader | Overlay) -> None:
        self.reader = reader
        self.lengths: dict[str, int] = {}

    def __call__(self, ref: str) -> str:
        if is_unit_ref(ref):
            org = org_of_company_prefix(self.reader, ref[1:])
            length = 7
            if org is not None:
                rec = identity.get_org(self.reader, org)
                prefixes = () if rec is None else rec.gs1_company_prefixes
                length = max((len(p) for p in prefixes if ref[1:].startswith(p)), default=7)
            return ref_urn(ref, length)
        gtin, _ = split_pack_ref(ref)
        if gtin not in self.lengths:
            product = get_product(self.reader, gtin)
            self.lengths[gtin] = len("0614141" if product is None else product.company_prefix)
        return ref_urn(ref, self.lengths[gtin])


def _party(kind: str, org: str) -> list[dict[str, str]]:
    return [{"type": "owning_party", kind: ORG_URN + org}]


def history_events(reader: StateReader | Overlay, ref: str, urn: _Urns | None = None) -> list[dict[str, Any]]:
    """The EPCIS events of one item's recorded history (empty when the item is unknown)."""
    rec = get_item(reader, ref)
    if rec is None:
        return []
    urn = urn or _Urns(reader)
    epc = urn(ref)
    lot = None if is_unit_ref(ref) or rec.lot is None else get_lot(reader, split_pack_ref(ref)[0], rec.lot)
    events = []
    disposition = "active"
    for i, entry in enumerate(rec.events):
        op, at, org = entry[0], entry[1], entry[2]
        extra: Any = event_extra(entry)
        event: dict[str, Any] = {"type": "ObjectEvent", "eventTime": format_time(at), "eventTimeZoneOffset": "+00:00",
                                 "eventID": _event_id(ref, i), "epcList": [epc], "action": "OBSERVE"}
        if op == "commission":
            event.update(action="ADD", bizStep="commissioning", disposition="active")
            if lot is not None:
                expiry = gs1.yymmd0_to_iso(lot.expiry, reference_year=utc_year(at))
                event["ilmd"] = {"cbvmda:lotNumber": lot.lot, "cbvmda:itemExpirationDate": expiry}
        elif op in ("aggregate", "disaggregate"):
            del event["epcList"]
            event.update(type="AggregationEvent", parentID=urn(extra), childEPCs=[epc],
                         action="ADD" if op == "aggregate" else "DELETE",
                         bizStep="packing" if op == "aggregate" else "unpacking")
        elif op in ("pack", "unpack"):
            continue  # the contents' own histories carry the aggregation events
        elif op == "ship":
            disposition = "in_transit"
            event.update(bizStep="shipping", disposition=disposition, sourceList=_party("source", org),
                         destinationList=_party("destination", extra))
        elif op == "receive":
            disposition = "in_progress"
            event.update(bizStep="receiving", disposition=disposition, sourceList=_party("source", extra),
                         destinationList=_party("destination", org))
        elif op == "decommission":
            disposition = cbv.STATE_DISPOSITION[extra]
            event.update(bizStep=cbv.STATE_BIZ_STEP[extra], disposition=disposition)
            if extra == "destroyed":
                event["action"] = "DELETE"
        elif op == "undo":
            disposition = "active"
            event.update(bizStep=UNDO_BIZ_STEP, disposition=disposition)
        elif op == "verify":
            event.update(bizStep="inspecting")
        else:  # observe
            event.update(bizStep=extra)
        events.append(event)
    return events


def export_document(reader: StateReader | Overlay, refs: list[str], now_ms: int, contents: bool = True,
                    query_name: str | None = None) -> dict[str, Any]:
    """An EPCISDocument (or, with ``query_name``, an EPCISQueryDocument) of the items' histories.

    With ``contents``, a container's contents are included, recursively. Events are in time order.
    """
    urn = _Urns(reader)
    seen: set[str] = set()
    events: list[dict[str, Any]] = []
    stack = list(reversed(refs))
    while stack:
        ref = stack.pop()
        if ref in seen:
            continue
        seen.add(ref)
        events.extend(history_events(reader, ref, urn))
        if contents:
            item = get_item(reader, ref)
            if item is not None and item.children:
                stack.extend(reversed(item.children))
    events.sort(key=lambda e: (e["eventTime"], _ORDER.get(e["type"], 2)))
    body: dict[str, Any]
    if query_name is None:
        body = {"eventList": events}
        kind = "EPCISDocument"
    else:
        body = {"queryResults": {"queryName": query_name, "resultsBody": {"eventList": events}}}
        kind = "EPCISQueryDocument"
    return {"@context": CONTEXT, "type": kind, "schemaVersion": "2.0", "creationDate": format_time(now_ms),
            "epcisBody": body}


def filter_events(events: list[dict[str, Any]], biz_step: str | None = None, ge_time: str | None = None,
                  lt_time: str | None = None, event_type: str | None = None) -> list[dict[str, Any]]:
    """EPCIS query filters EQ_bizStep, GE_eventTime, LT_eventTime and eventType (times as ISO strings, UTC)."""
    out = []
    for event in events:
        if biz_step is not None and event.get("bizStep") != biz_step:
            continue
        if event_type is not None and event["type"] != event_type:
            continue
        if ge_time is not None and event["eventTime"] < ge_time:
            continue
        if lt_time is not None and event["eventTime"] >= lt_time:
            continue
        out.append(event)
    return out


def check_document(doc: dict[str, Any]) -> list[str]:
    """Schema problems of an exported document (empty when valid); used by tests and the API."""
    return schema_errors(doc)
