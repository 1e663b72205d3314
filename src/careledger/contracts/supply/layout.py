"""The supply contract's state layout: keys, typed records, item references and errors (pure; no I/O).

State keys (values are canonical JSON; every key is built by one function below; pack records are
kept compact because there are millions)::

    supply/product/<gtin14>          ProductRecord  {gtin, name, strength, dosage_form, ndc, national_codes, owner,
                                                     company_prefix, status: active|withdrawn, since,
                                                     withdrawn_at?, withdrawn_by?, reason?}
    supply/lot/<gtin14>/<lot>        LotRecord      {gtin, lot, expiry: YYMMDD, expiry_day, owner, packs, status:
                                                     active|recalled, since, recalled_at?, recalled_by?, reason?}
    supply/pack/<gtin14>/<serial>    PackRecord     {s: state, h: holder org, l: lot,
                                                     e: [[op, at_ms, org, height, extra?]…],
                                                     t?: consignee org while in transit, p?: parent ref,
                                                     c?: [child refs], u?: [state, org, at_ms] of the last
                                                     decommission (for undo)}
    supply/unit/<sscc18>             PackRecord     a logistic unit (case or pallet): the same record without ``l``

Optional fields marked ``?`` are absent, not null, when unset (``c`` may be present and empty).
Products and lots are frozen dataclasses; the pack record is a named tuple (as immutable and typed,
and built at C speed: pack operations decode, update and encode up to 10,000 of them per transaction).

A *reference* (ref) names one item in payloads and records: ``<gtin14>/<serial>`` for a serialised
pack (the GTIN has a fixed length, so a ``/`` in the serial is harmless) or the 18-digit SSCC of a
logistic unit. Verification is therefore three point reads (pack, lot, product) whatever the number
of packs; a recall is one write to the lot; an operation on a container touches it and its contents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, TypeAlias

import orjson

from careledger.contracts.base import Reader
from careledger.contracts.supply import gs1
from careledger.core.errors import Code, InvalidTx, TxFailed
from careledger.core.state import Overlay

MAX_ITEMS_PER_TX = 10_000
"""Packs (including a container's contents) one transaction may touch."""

SERIAL_RE = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")
"""AI (21)/(10) value: 1-20 characters of GS1 character set 82."""


class SupplyError(TxFailed):
    """The supply contract refused a well-formed transaction (receipt code in 3000-3999)."""


class SupplyInvalid(InvalidTx):
    """A supply payload fails a stateless check (identifier syntax, check digit, EPCIS schema, CBV)."""


def product_key(gtin: str) -> str:
    return f"supply/product/{gtin}"


def lot_key(gtin: str, lot: str) -> str:
    return f"supply/lot/{gtin}/{lot}"


def pack_key(gtin: str, serial: str) -> str:
    return f"supply/pack/{gtin}/{serial}"


def unit_key(sscc: str) -> str:
    return f"supply/unit/{sscc}"


def is_unit_ref(ref: str) -> bool:
    return len(ref) == 18 and ref.isdigit()


def record_key(ref: str) -> str:
    """The state key of the item a ref names."""
    return unit_key(ref) if is_unit_ref(ref) else f"supply/pack/{ref}"


def product_prefix() -> str:
    """The prefix under which every product lies."""
    return "supply/product/"


def lot_prefix(gtin: str) -> str:
    """The prefix under which every lot of a GTIN lies (a lot number follows it)."""
    return f"supply/lot/{gtin}/"


def pack_prefix(gtin: str) -> str:
    """The prefix under which every pack of a GTIN lies (a serial follows it)."""
    return f"supply/pack/{gtin}/"


def split_pack_ref(ref: str) -> tuple[str, str]:
    return ref[:14], ref[15:]


def pack_ref(gtin: str, serial: str) -> str:
    return f"{gtin}/{serial}"


def check_serial(value: str, what: str = "serial") -> str:
    if type(value) is not str or not SERIAL_RE.fullmatch(value):
        if isinstance(value, str) and len(value) > 20:
            raise SupplyInvalid(f"{what} {value[:24]!r}… is longer than 20 characters", Code.FIELD_TOO_LONG)
        raise SupplyInvalid(f"{what} {str(value)[:24]!r} is not 1-20 characters of GS1 set 82",
                            Code.ILLEGAL_CHARACTER)
    return value


def parse_gtin(text: str) -> str:
    try:
        return gs1.parse_gtin(text)
    except gs1.GS1Error as exc:
        raise SupplyInvalid(exc.message, exc.code) from None


def parse_ref(text: str) -> str:
    """Normalise any item identifier to a ref.

    Accepts a ref (``<gtin14>/<serial>`` or an 18-digit SSCC), an SGTIN or SSCC EPC URN, or a GS1
    Digital Link (``/01/<gtin>/21/<serial>`` or ``/00/<sscc>``). Raises :class:`SupplyInvalid` with a
    GS1 code (bad check digit, malformed URN or Digital Link, …).
    """
    try:
        if type(text) is not str or not text:
            raise SupplyInvalid("an item identifier must be a non-empty string", Code.MALFORMED_IDENTIFIER)
        if text.startswith(("urn:", "URN:")):
            if text[:17].lower() == "urn:epc:id:sgtin:":
                sgtin = gs1.parse_sgtin_urn(text)
                return pack_ref(sgtin.gtin, sgtin.serial)
            if text[:16].lower() == "urn:epc:id:sscc:":
                return gs1.parse_sscc_urn(text).sscc
            raise SupplyInvalid(f"{text[:60]!r} is not an SGTIN or SSCC EPC URN", Code.MALFORMED_URN)
        if text.startswith(("http://", "https://")):
            match = re.search(r"/00/([0-9]{18})/?$", text)
            if match:
                return gs1.parse_sscc(match[1])
            pi = gs1.parse_digital_link(text)
            if pi.serial is None:
                raise SupplyInvalid(f"Digital Link {text[:80]!r} has no serial (21)", Code.MALFORMED_DIGITAL_LINK)
            return pack_ref(pi.gtin, pi.serial)
        if len(text) == 18 and text.isdigit():
            return gs1.parse_sscc(text)
        if len(text) >= 16 and text[14] == "/":
            return pack_ref(gs1.parse_gtin(text[:14]), check_serial(text[15:]))
        raise SupplyInvalid(f"{text[:60]!r} is not a ref, EPC URN or Digital Link", Code.MALFORMED_IDENTIFIER)
    except gs1.GS1Error as exc:
        raise SupplyInvalid(exc.message, exc.code) from None


def parse_refs(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    refs = tuple(parse_ref(x) for x in items)
    if len(set(refs)) != len(refs):
        raise SupplyInvalid("an item is named twice", Code.INVALID_PAYLOAD)
    if len(refs) > MAX_ITEMS_PER_TX:
        raise SupplyInvalid(f"{len(refs)} items; at most {MAX_ITEMS_PER_TX} per transaction", Code.TOO_MANY_ITEMS)
    return refs


def ref_urn(ref: str, company_prefix_length: int) -> str:
    """The EPC URN of a ref (SGTIN URNs need the GS1 Company Prefix length; SSCC URNs too)."""
    if is_unit_ref(ref):
        return gs1.SSCC.from_sscc(ref, company_prefix_length).urn
    gtin, serial = split_pack_ref(ref)
    return gs1.gtin_to_sgtin_urn(gtin, serial, company_prefix_length)


# --- records --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProductRecord:
    """A product's master data (GTIN, name, strength, form, codes), its owner and its market status."""

    gtin: str
    name: str
    strength: str | None
    dosage_form: str | None
    ndc: str | None
    national_codes: tuple[tuple[str, str], ...]  # (scheme, code), sorted by scheme
    owner: str
    company_prefix: str
    status: str  # "active" | "withdrawn"
    since: int
    withdrawn_at: int | None = None  # block time (ms)
    withdrawn_by: str | None = None
    reason: str | None = None

    @property
    def is_withdrawn(self) -> bool:
        return self.status == "withdrawn"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"company_prefix": self.company_prefix, "dosage_form": self.dosage_form,
                               "gtin": self.gtin, "name": self.name, "national_codes": dict(self.national_codes),
                               "ndc": self.ndc, "owner": self.owner, "since": self.since, "status": self.status,
                               "strength": self.strength}
        if self.withdrawn_at is not None:
            doc["withdrawn_at"] = self.withdrawn_at
        if self.withdrawn_by is not None:
            doc["withdrawn_by"] = self.withdrawn_by
        if self.reason is not None:
            doc["reason"] = self.reason
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ProductRecord:
        return cls(doc["gtin"], doc["name"], doc["strength"], doc["dosage_form"], doc["ndc"],
                   tuple(sorted(doc["national_codes"].items())), doc["owner"], doc["company_prefix"], doc["status"],
                   doc["since"], doc.get("withdrawn_at"), doc.get("withdrawn_by"), doc.get("reason"))


@dataclass(frozen=True, slots=True)
class LotRecord:
    """A batch: its expiry (YYMMDD and as a UTC day), owner, number of packs and recall status."""

    gtin: str
    lot: str
    expiry: str  # YYMMDD (DD may be 00: the end of the month)
    expiry_day: int  # the last UTC day (since 1970-01-01) on which packs of the lot are usable
    owner: str
    packs: int
    status: str  # "active" | "recalled"
    since: int
    recalled_at: int | None = None  # block time (ms)
    recalled_by: str | None = None
    reason: str | None = None

    @property
    def is_recalled(self) -> bool:
        return self.status == "recalled"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"expiry": self.expiry, "expiry_day": self.expiry_day, "gtin": self.gtin,
                               "lot": self.lot, "owner": self.owner, "packs": self.packs, "since": self.since,
                               "status": self.status}
        if self.recalled_at is not None:
            doc["recalled_at"] = self.recalled_at
        if self.recalled_by is not None:
            doc["recalled_by"] = self.recalled_by
        if self.reason is not None:
            doc["reason"] = self.reason
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LotRecord:
        return cls(doc["gtin"], doc["lot"], doc["expiry"], doc["expiry_day"], doc["owner"], doc["packs"],
                   doc["status"], doc["since"], doc.get("recalled_at"), doc.get("recalled_by"), doc.get("reason"))


PackEvent: TypeAlias = tuple[str, int, str, int] | tuple[str, int, str, int, str | int]
"""One entry of an item's history: ``(op, at_ms, org, height[, extra])``. ``extra`` is the consignee
(ship), the sender (receive), the parent ref (aggregate, disaggregate), the number of items (pack,
unpack), the state (decommission, undo), the verdict (verify) or the business step (observe)."""


def event_extra(event: PackEvent) -> str | int | None:
    return event[4] if len(event) > 4 else None


def history_entry(op: str, at_ms: int, org: str, height: int, extra: str | int | None = None) -> PackEvent:
    return (op, at_ms, org, height) if extra is None else (op, at_ms, org, height, extra)


class PackRecord(NamedTuple):
    """A serialised pack, or a logistic unit (case or pallet; ``lot`` is None), stored compactly.

    Immutable and typed like the other records, but a named tuple rather than a frozen dataclass: pack
    operations decode, update and encode up to 10,000 of these per transaction, and a named tuple is
    built at C speed (a frozen dataclass sets each field through ``object.__setattr__``).
    """

    state: str  # s: a CBV state: active, supplied, destroyed, stolen, ...
    holder: str  # h: the organisation holding it
    events: tuple[PackEvent, ...]  # e: its history, oldest first
    lot: str | None = None  # l: the lot of a pack (None for a logistic unit)
    in_transit_to: str | None = None  # t: the consignee while shipped and not yet received
    parent: str | None = None  # p: the ref of the container it is packed in
    children: tuple[str, ...] | None = None  # c: the refs it contains (None: never held any)
    undo: tuple[str, str, int] | None = None  # u: (state, org, at_ms) of the last decommission

    # transitions: each returns the record with ``event`` appended to its history (written out field by
    # field: they run for every pack an operation touches)
    def logged(self, event: PackEvent) -> PackRecord:
        return PackRecord(self.state, self.holder, (*self.events, event), self.lot, self.in_transit_to,
                          self.parent, self.children, self.undo)

    def shipped(self, event: PackEvent, to: str) -> PackRecord:
        return PackRecord(self.state, self.holder, (*self.events, event), self.lot, to, self.parent,
                          self.children, self.undo)

    def received(self, event: PackEvent) -> PackRecord:
        """Now held by the consignee, no longer in transit."""
        assert self.in_transit_to is not None
        return PackRecord(self.state, self.in_transit_to, (*self.events, event), self.lot, None, self.parent,
                          self.children, self.undo)

    def with_state(self, event: PackEvent, state: str, undo: tuple[str, str, int] | None) -> PackRecord:
        """Decommissioned (``undo`` says how to revert it) or, with ``undo`` None, restored."""
        return PackRecord(state, self.holder, (*self.events, event), self.lot, self.in_transit_to, self.parent,
                          self.children, undo)

    def with_parent(self, event: PackEvent, parent: str | None) -> PackRecord:
        """Packed in ``parent``, or unpacked (None)."""
        return PackRecord(self.state, self.holder, (*self.events, event), self.lot, self.in_transit_to, parent,
                          self.children, self.undo)

    def with_children(self, event: PackEvent, children: tuple[str, ...] | None) -> PackRecord:
        """Holding ``children`` (None: nothing left)."""
        return PackRecord(self.state, self.holder, (*self.events, event), self.lot, self.in_transit_to,
                          self.parent, children, self.undo)

    def to_json(self) -> dict[str, Any]:
        """The stored form (its arrays are tuples, which the canonical encoding writes as JSON arrays)."""
        doc: dict[str, Any] = {"e": self.events, "h": self.holder, "s": self.state}
        if self.lot is not None:
            doc["l"] = self.lot
        if self.in_transit_to is not None:
            doc["t"] = self.in_transit_to
        if self.parent is not None:
            doc["p"] = self.parent
        if self.children is not None:
            doc["c"] = self.children
        if self.undo is not None:
            doc["u"] = self.undo
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PackRecord:
        c, u = doc.get("c"), doc.get("u")
        return cls(doc["s"], doc["h"], tuple(map(tuple, doc["e"])), doc.get("l"), doc.get("t"),
                   doc.get("p"), None if c is None else tuple(c), None if u is None else (u[0], u[1], u[2]))


def decode_pack(raw: bytes) -> PackRecord:
    return PackRecord.from_json(orjson.loads(raw))


def custody_chain(record: PackRecord) -> list[dict[str, Any]]:
    """Who held the item, in order: the commissioner, then each receiver (with the shipment that led there)."""
    chain: list[dict[str, Any]] = []
    pending_ship: PackEvent | None = None
    for entry in record.events:
        op, at, org = entry[0], entry[1], entry[2]
        if op == "commission" or (op == "aggregate" and not chain):
            if not chain:
                chain.append({"org": org, "since_ms": at, "height": entry[3], "how": "commissioned"})
        elif op == "ship":
            pending_ship = entry
        elif op == "receive":
            item: dict[str, Any] = {"org": org, "since_ms": at, "height": entry[3], "how": "received"}
            if pending_ship is not None:
                item["shipped_by"] = pending_ship[2]
                item["shipped_ms"] = pending_ship[1]
            chain.append(item)
            pending_ship = None
    return chain


# --- accessors --------------------------------------------------------------------------------------------

# Products and lots are read for every pack a verification or an operation touches, and there are few
# of them: decoded records are immutable, so they are shared, memoised by their stored bytes.

@lru_cache(maxsize=4096)
def decode_product(raw: bytes) -> ProductRecord:
    return ProductRecord.from_json(orjson.loads(raw))


@lru_cache(maxsize=4096)
def decode_lot(raw: bytes) -> LotRecord:
    return LotRecord.from_json(orjson.loads(raw))


def get_product(state: Reader, gtin: str) -> ProductRecord | None:
    raw = state.get_raw(product_key(gtin))
    return None if raw is None else decode_product(raw)


def put_product(state: Overlay, record: ProductRecord) -> None:
    state.put(product_key(record.gtin), record.to_json())


def products(state: Reader) -> Iterator[ProductRecord]:
    """Every registered product, active or withdrawn, by GTIN."""
    for _, raw in state.scan_raw(product_prefix()):
        yield decode_product(raw)


def lots_of(state: Reader, gtin: str) -> Iterator[LotRecord]:
    """Every lot of the GTIN, by lot number."""
    for _, raw in state.scan_raw(lot_prefix(gtin)):
        yield decode_lot(raw)


def get_lot(state: Reader, gtin: str, lot: str) -> LotRecord | None:
    raw = state.get_raw(lot_key(gtin, lot))
    return None if raw is None else decode_lot(raw)


def put_lot(state: Overlay, record: LotRecord) -> None:
    state.put(lot_key(record.gtin, record.lot), record.to_json())


def get_item(state: Reader, ref: str) -> PackRecord | None:
    """The record of the pack or logistic unit ``ref`` names, or None."""
    raw = state.get_raw(record_key(ref))
    return None if raw is None else decode_pack(raw)


def get_pack(state: Reader, gtin: str, serial: str) -> PackRecord | None:
    raw = state.get_raw(pack_key(gtin, serial))
    return None if raw is None else decode_pack(raw)


def put_item(state: Overlay, ref: str, record: PackRecord) -> None:
    state.put(record_key(ref), record.to_json())


# --- locations, captured events and multi-party captures ----------------------------------------------------
#
#     supply/location/<gln>        LocationRecord  {gln, org, name, role, address, status: active|retired, since,
#                                                   updated}
#     supply/event/<event>         EventRecord     {capture, index, org, status: applied|pending, height}
#     supply/capture/<capture>     CaptureRecord   {id, by, height, time_ms, document_sha256, events, confirmed,
#                                                   pending: [{index, org, ops, refs}], status: pending|complete|
#                                                   rejected, closed?}
#
# ``<event>`` is the hex SHA-256 of the event's identity (its eventID, or the GS1 canonical event hash when it has
# none: :mod:`careledger.contracts.supply.event_hash`); ``<capture>`` is the capturing transaction's hash.

ADDRESS_FIELDS = ("street", "city", "postal_code", "region", "country")
"""The address fields a location may carry: business data about a site, never about a person."""


def location_key(gln: str) -> str:
    return f"supply/location/{gln}"


def location_prefix() -> str:
    """The prefix under which every registered location lies (a GLN follows it)."""
    return "supply/location/"


def event_key(event: str) -> str:
    return f"supply/event/{event}"


def capture_key(capture: str) -> str:
    return f"supply/capture/{capture}"


def capture_prefix() -> str:
    """The prefix under which every multi-party capture's record lies (a capture id follows it)."""
    return "supply/capture/"


@dataclass(frozen=True, slots=True)
class LocationRecord:
    """A registered location (GLN): the organisation it belongs to, its name, role and address."""

    gln: str
    org: str
    name: str
    role: str
    address: tuple[tuple[str, str], ...]  # (field, value), in ADDRESS_FIELDS order; empty: no address
    status: str  # "active" | "retired"
    since: int  # height of the first registration
    updated: int  # height of the last change

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        return {"address": dict(self.address) if self.address else None, "gln": self.gln, "name": self.name,
                "org": self.org, "role": self.role, "since": self.since, "status": self.status,
                "updated": self.updated}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LocationRecord:
        address = doc["address"] or {}
        return cls(doc["gln"], doc["org"], doc["name"], doc["role"],
                   tuple((f, address[f]) for f in ADDRESS_FIELDS if f in address), doc["status"], doc["since"],
                   doc["updated"])


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A captured EPCIS event: the capture that carried it, its place there, the organisation it is attributed
    to, and whether it has been applied or awaits that organisation's confirmation."""

    capture: str  # the capturing transaction's hash (hex)
    index: int  # its position in the document's event list
    org: str  # the organisation the event is attributed to
    status: str  # "applied" | "pending"
    height: int  # the height it was captured at, or applied at once confirmed

    def to_json(self) -> dict[str, Any]:
        return {"capture": self.capture, "height": self.height, "index": self.index, "org": self.org,
                "status": self.status}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EventRecord:
        return cls(doc["capture"], doc["index"], doc["org"], doc["status"], doc["height"])


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event of a capture that waits: for its organisation's confirmation, or for an earlier pending event
    on the same items. ``ops`` are the stored forms of its operations (:func:`careledger.contracts.supply.packs.
    op_to_json`), ``refs`` the items it names."""

    index: int
    org: str
    event: str  # its event key (hex)
    ops: tuple[dict[str, Any], ...]
    refs: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "index": self.index, "ops": list(self.ops), "org": self.org,
                "refs": list(self.refs)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PendingEvent:
        return cls(doc["index"], doc["org"], doc["event"], tuple(doc["ops"]), tuple(doc["refs"]))


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """A multi-party capture with events still pending: who captured it, which organisations have confirmed
    (the capturer always has), and the events that wait, in document order."""

    id: str  # the capturing transaction's hash (hex)
    by: str  # the capturing organisation
    height: int
    time_ms: int
    document_sha256: str
    events: int
    confirmed: tuple[str, ...]  # sorted
    pending: tuple[PendingEvent, ...]
    status: str  # "pending" | "complete" | "rejected"
    closed: int | None = None  # the height it became complete or was rejected

    @property
    def pending_orgs(self) -> list[str]:
        """The organisations some pending event is attributed to, sorted."""
        return sorted({p.org for p in self.pending})

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"by": self.by, "confirmed": list(self.confirmed),
                               "document_sha256": self.document_sha256, "events": self.events, "height": self.height,
                               "id": self.id, "pending": [p.to_json() for p in self.pending], "status": self.status,
                               "time_ms": self.time_ms}
        if self.closed is not None:
            doc["closed"] = self.closed
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CaptureRecord:
        return cls(doc["id"], doc["by"], doc["height"], doc["time_ms"], doc["document_sha256"], doc["events"],
                   tuple(doc["confirmed"]), tuple(PendingEvent.from_json(p) for p in doc["pending"]), doc["status"],
                   doc.get("closed"))


def get_location(state: Reader, gln: str) -> LocationRecord | None:
    raw = state.get_raw(location_key(gln))
    return None if raw is None else LocationRecord.from_json(orjson.loads(raw))


def put_location(state: Overlay, record: LocationRecord) -> None:
    state.put(location_key(record.gln), record.to_json())


def locations(state: Reader) -> Iterator[LocationRecord]:
    """Every registered location, by GLN."""
    for _, raw in state.scan_raw(location_prefix()):
        yield LocationRecord.from_json(orjson.loads(raw))


def get_event(state: Reader, event: str) -> EventRecord | None:
    raw = state.get_raw(event_key(event))
    return None if raw is None else EventRecord.from_json(orjson.loads(raw))


def put_event(state: Overlay, event: str, record: EventRecord) -> None:
    state.put(event_key(event), record.to_json())


def delete_event(state: Overlay, event: str) -> None:
    state.delete(event_key(event))


def get_capture(state: Reader, capture: str) -> CaptureRecord | None:
    raw = state.get_raw(capture_key(capture))
    return None if raw is None else CaptureRecord.from_json(orjson.loads(raw))


def put_capture(state: Overlay, record: CaptureRecord) -> None:
    state.put(capture_key(record.id), record.to_json())


def captures(state: Reader) -> Iterator[CaptureRecord]:
    """Every multi-party capture's record (pending, complete or rejected), by capture id."""
    for _, raw in state.scan_raw(capture_prefix()):
        yield CaptureRecord.from_json(orjson.loads(raw))
