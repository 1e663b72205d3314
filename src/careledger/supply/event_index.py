"""The captured-event index: EPCIS events as their capturers sent them, queryable by the EPCIS 2.0 parameters.

Every event of a committed ``supply.epcis_capture`` is kept by the ledger twice over: its identity and status
in ``supply/event/<key>`` (:mod:`careledger.contracts.supply.layout`) and its full text in the capture
transaction, which the node keeps for ever. This index reads the committed captures block by block (like
:class:`careledger.supply.alerts.AlertIndex`, in memory, rebuilt after a restart) and answers the EPCIS
query parameters over the events *as captured*: every standard field (eventID, eventTime with its
offset, readPoint, bizLocation, bizTransactionList, source and destination lists with the original
identifiers, disposition, ILMD, sensor data, extensions) comes back verbatim, and aggregation events stay
aggregation events. An event's ``status`` is read from the ledger at query time: ``applied``, ``pending``
(waiting for a member's confirmation), or absent when its capture was rejected while it waited (then the
event is not answered).

Parameters (all optional, combined with AND; times ISO 8601 with an offset): ``eventType``,
``EQ_bizStep`` (bare word or CBV URN), ``GE_eventTime`` / ``LT_eventTime``, ``EQ_bizLocation`` /
``EQ_readPoint`` (the identifier as written, or any form of the same GLN), ``MATCH_epc`` (epcList,
childEPCs), ``MATCH_parentID``, ``MATCH_anyEPC`` (any of them); an EPC value is an EPC URN, Digital Link
or ref, or an SGTIN pattern ``urn:epc:idpat:sgtin:<prefix>.<item>.*`` (every serial of a GTIN).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from careledger.contracts.supply import cbv, epcis, gs1
from careledger.contracts.supply.layout import get_event, parse_ref
from careledger.core import codec
from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader
from careledger.node.store import Store, StoredTx

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """One captured event: where it was captured, its key, what it is queried by, and its text."""

    height: int
    capture: str  # the capture transaction's hash (hex)
    index: int  # its place in the document's event list
    key: str  # its state key part (hex SHA-256 of its identity)
    event_type: str
    biz_step: str | None  # the bare CBV word
    time_ms: int
    read_point: str | None  # normalised: a GLN when it names one, else the identifier as written
    biz_location: str | None
    epcs: frozenset[str]  # refs of epcList and childEPCs
    parent: str | None  # ref of parentID
    event: dict[str, Any]


def _place(identifier: str | None) -> str | None:
    if identifier is None:
        return None
    try:
        gln = gs1.gln_of(identifier)
    except LedgerError:
        gln = None
    return gln or identifier


def _ref(text: Any) -> str | None:
    try:
        return parse_ref(text)
    except LedgerError:
        return None


def _refs(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(r for r in (_ref(v) for v in values) if r is not None)


def _step(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(cbv.normalise_term("bizStep", value))
    except cbv.VocabularyError:
        return value


def events_of_capture(stored: StoredTx) -> Iterator[IndexedEvent]:
    """The events a committed, successful capture transaction carried (none for anything else)."""
    if stored.receipt.code != 0 or b'"supply.epcis_capture"' not in stored.raw:
        return
    body = codec.decode_trusted(stored.raw)["body"]
    if body["type"] != "supply.epcis_capture":
        return
    doc = json.loads(body["payload"]["document"])
    context = doc.get("@context")
    for index, event in enumerate(doc["epcisBody"]["eventList"]):
        yield IndexedEvent(
            height=stored.height, capture=stored.hash.hex(), index=index,
            key=epcis.key_of(epcis.event_identity(event, context)), event_type=str(event.get("type")),
            biz_step=_step(event.get("bizStep")), time_ms=epcis.event_time_ms(event["eventTime"]),
            read_point=_place((event.get("readPoint") or {}).get("id")),
            biz_location=_place((event.get("bizLocation") or {}).get("id")),
            epcs=_refs([*event.get("epcList", []), *event.get("childEPCs", [])]),
            parent=_ref(event["parentID"]) if "parentID" in event else None, event=event)


@dataclass(frozen=True)
class EventQuery:
    """The EPCIS query parameters the index answers (see the module docstring)."""

    event_type: str | None = None
    biz_step: str | None = None
    ge_time: str | None = None
    lt_time: str | None = None
    biz_location: str | None = None
    read_point: str | None = None
    match_epc: tuple[str, ...] = ()
    match_parent: tuple[str, ...] = ()
    match_any: tuple[str, ...] = ()


class _EpcMatch:
    """EPC values (URNs, Digital Links, refs) and SGTIN patterns (``urn:epc:idpat:sgtin:P.I.*``)."""

    def __init__(self, values: tuple[str, ...]) -> None:
        self.refs: set[str] = set()
        self.gtins: set[str] = set()
        for value in values:
            if value.lower().startswith("urn:epc:idpat:sgtin:") and value.endswith(".*"):
                self.gtins.add(gs1.parse_sgtin_urn("urn:epc:id:sgtin:" + value[20:-1] + "0").gtin)
            else:
                self.refs.add(parse_ref(value))

    def any_of(self, refs: Iterable[str]) -> bool:
        return any(r in self.refs or (len(r) > 15 and r[:14] in self.gtins) for r in refs)


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return epcis.event_time_ms(value)
    except (LedgerError, ValueError):
        raise LedgerError(f"{name} must be an ISO 8601 time with an offset", Code.BAD_REQUEST) from None


def matcher(q: EventQuery) -> Any:
    """A predicate over :class:`IndexedEvent` for ``q``; raises LedgerError (BAD_REQUEST, the GS1 codes) for a
    malformed parameter."""
    ge, lt = _time(q.ge_time, "GE_eventTime"), _time(q.lt_time, "LT_eventTime")
    step = _step(q.biz_step) if q.biz_step is not None else None
    location, read_point = _place(q.biz_location), _place(q.read_point)
    epc, parent, anyepc = (_EpcMatch(v) if v else None for v in (q.match_epc, q.match_parent, q.match_any))

    def accepts(ev: IndexedEvent) -> bool:
        return ((q.event_type is None or ev.event_type == q.event_type)
                and (step is None or ev.biz_step == step)
                and (ge is None or ev.time_ms >= ge) and (lt is None or ev.time_ms < lt)
                and (location is None or ev.biz_location == location)
                and (read_point is None or ev.read_point == read_point)
                and (epc is None or epc.any_of(ev.epcs))
                and (parent is None or (ev.parent is not None and parent.any_of([ev.parent])))
                and (anyepc is None or anyepc.any_of([*ev.epcs, *([ev.parent] if ev.parent else [])])))
    return accepts


class CapturedEventIndex:
    """The captured events of a store's chain, in commit order, derived block by block and kept in memory."""

    def __init__(self) -> None:
        self.height = 0
        self.events: list[IndexedEvent] = []
        self._lock = threading.Lock()

    def catch_up(self, store: Store) -> None:
        head = store.head().height
        with self._lock:
            for height in range(self.height + 1, head + 1):
                for stored in store.block_txs(height):
                    self.events.extend(events_of_capture(stored))
                self.height = height

    def query(self, store: Store, q: EventQuery, offset: int = 0, limit: int = 100,
              ) -> tuple[list[dict[str, Any]], int | None]:
        """The events matching ``q`` whose capture still holds them (applied or pending), in commit order,
        from ``offset``: (up to ``limit`` events, each with ``careledger:status`` and ``careledger:captureID``
        added, the offset of the next page or None)."""
        accepts = matcher(q)
        self.catch_up(store)
        reader: StateReader = store.view()
        with self._lock:
            events = list(self.events)
        out: list[dict[str, Any]] = []
        seen = 0
        for ev in events:
            if not accepts(ev):
                continue
            rec = get_event(reader, ev.key)
            if rec is None or rec.capture != ev.capture:
                continue  # dropped by a rejection, or captured again later by another capture
            if seen >= offset:
                if len(out) == limit:
                    return out, seen
                out.append({**ev.event, "careledger:status": rec.status, "careledger:captureID": ev.capture})
            seen += 1
        return out, None
