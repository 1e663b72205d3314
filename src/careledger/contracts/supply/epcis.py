"""EPCIS 2.0 capture: validate a JSON-LD document, key its events, attribute them to members and apply them.

A document is captured by one signed ``supply.epcis_capture`` transaction whose payload carries the
document *text* (EPCIS 2.0 JSON-LD; XML is not read yet). The stateless step
(run at admission and again by every node that executes the block) validates the text against the
official GS1 EPCIS 2.0 JSON Schema (vendored in ``supply/schema``, compiled with ``fastjsonschema``)
and the CBV 2.0 vocabularies, keys every event (its ``eventID``, or the GS1 canonical event hash:
:mod:`.event_hash`) and maps it to pack operations.

**Idempotency.** Every event is recorded once, under its key (``supply/event/<sha256(id)>``). A
document whose events were all captured before is refused at admission with ``EPCIS_ALREADY_CAPTURED``
(the API answers "already captured" with the original captures); one that repeats some of them is
refused with ``EPCIS_DUPLICATE_EVENTS`` naming them. Nothing is ever recorded twice.

**Multi-party documents.** Each event is attributed to the member that performed it: the owner of
its ``bizLocation`` (else ``readPoint``) GLN; without either, the shipping source or receiving
destination party; without those, the capturing organisation. Every location and party identifier
must resolve (:mod:`.locations`: ``LOCATION_UNKNOWN`` / ``PARTY_UNKNOWN`` otherwise). The capturer's
own events apply at once, in document order; an event of another member is *pending* until that
member confirms the capture (``supply.epcis_confirm``), and so is every later event that names an
item a pending event names (order is kept per item). Confirmation applies, in document order, every
pending event whose member has confirmed and that nothing earlier holds back. The capturer must be a
party, source or destination of at least one event (``UNAUTHORISED`` otherwise). Any refusal of an
event that applies fails the whole transaction (message ``event <index>: ...``): the EU FMD and DSCSA
rules of :mod:`.packs` hold whichever way an event arrives (a receipt by a party that is not the
consignee is refused, and alerted).

Event mapping (the attributed member is the operation's party):

======================================  ===============================================================
EPCIS event                             op
======================================  ===============================================================
ObjectEvent ADD commissioning           commission per GTIN (ILMD ``cbvmda:lotNumber`` and
                                        ``cbvmda:itemExpirationDate`` required); an SSCC: a new unit
Object/TransactionEvent shipping        ship to the destination ``owning_party``, else
                                        ``possessing_party``, else ``location``
Object/TransactionEvent receiving       receive
dispensing / destroying / sampling      decommission to supplied / destroyed / sample
disposition ``stolen``                  decommission to stolen
decommissioning                         by disposition: dispensed, destroyed or stolen
AggregationEvent ADD / DELETE           aggregate / disaggregate (``parentID`` required)
any other OBSERVE event                 observe (recorded in the items' history)
======================================  ===============================================================

Refused (``EPCIS_UNSUPPORTED``): quantity-only (class-level) events, Transformation and Association
events, error declarations, and anything outside these mappings.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, TypedDict

import fastjsonschema
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError as SchemaError  # type: ignore[import-untyped]
from pydantic import Field

from careledger.contracts.base import Handler, Reader, TxContext
from careledger.contracts.supply import cbv, event_hash, gs1, packs
from careledger.contracts.supply.base import SupplyPayload, require_supply_member
from careledger.contracts.supply.layout import (
    MAX_ITEMS_PER_TX,
    CaptureRecord,
    EventRecord,
    PendingEvent,
    SupplyError,
    SupplyInvalid,
    capture_key,
    check_serial,
    delete_event,
    event_key,
    get_capture,
    get_event,
    get_item,
    is_unit_ref,
    parse_ref,
    put_capture,
    put_event,
    split_pack_ref,
)
from careledger.contracts.supply.locations import ORG_URN, Resolver
from careledger.core.errors import Code
from careledger.core.state import Overlay

MAX_DOCUMENT_CHARS = 4_194_304
CAPTURE_ITEM_LIMIT = 5 * MAX_ITEMS_PER_TX
MAX_NAMED_DUPLICATES = 5
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_EVENT_PREFIX = re.compile(r"^event (\d+)[ :]")

__all__ = ["ORG_URN", "Capture", "CapturedEvent", "normalise_document"]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The official GS1 EPCIS 2.0 JSON Schema (vendored, see ``supply/schema/SOURCE.md``)."""
    text = resources.files("careledger.contracts.supply").joinpath("schema/EPCIS-JSON-Schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@lru_cache(maxsize=1)
def validator() -> Draft7Validator:
    """The interpreted validator: slow, but it lists every violation; used only to explain a refusal."""
    return Draft7Validator(schema())


@lru_cache(maxsize=1)
def compiled_validator() -> Callable[[Any], Any]:
    """The schema compiled to Python by ``fastjsonschema`` (the fast verdict). Like the interpreted one it
    checks no ``format`` and fills in no defaults, so both give the same verdict (tests hold them to it)."""
    check: Callable[[Any], Any] = fastjsonschema.compile(schema(), use_default=False, use_formats=False)
    return check


def is_schema_valid(doc: Any) -> bool:
    """The compiled schema's verdict on ``doc``."""
    try:
        compiled_validator()(doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _where(error: SchemaError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(document)"


def schema_errors(doc: Any, limit: int = 5) -> list[str]:
    """Human-readable schema violations of ``doc`` (empty when it validates), deepest first.

    The compiled validator decides; only a document it refuses is explained by the interpreted one (when
    the interpreted one finds nothing to say, the compiled validator's own message is given)."""
    try:
        compiled_validator()(doc)
        return []
    except fastjsonschema.JsonSchemaValueException as exc:
        fallback = f"{(exc.name or 'data').removeprefix('data').lstrip('.') or '(document)'}: {exc.message}"
    errors = sorted(validator().iter_errors(doc), key=lambda e: (-len(e.absolute_path), _where(e)))
    out: list[str] = []
    for error in errors:
        leaves = [error]
        while leaves[0].context:  # if/then/anyOf wrappers: report the innermost reasons
            leaves = sorted(leaves[0].context, key=lambda e: -len(e.absolute_path))
        message = f"{_where(leaves[0])}: {leaves[0].message}"
        if message not in out:
            out.append(message[:300])
        if len(out) >= limit:
            break
    return out or [fallback[:300]]


def parse_document(text: str) -> dict[str, Any]:
    """Parse and schema-validate an EPCIS document; raises SupplyInvalid (EPCIS_SCHEMA_INVALID)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SupplyInvalid(f"EPCIS document is not JSON: {str(exc)[:120]}", Code.EPCIS_SCHEMA_INVALID) from None
    if not isinstance(doc, dict):
        raise SupplyInvalid("an EPCIS document is a JSON object", Code.EPCIS_SCHEMA_INVALID)
    problems = schema_errors(doc)
    if problems:
        raise SupplyInvalid("EPCIS document fails the EPCIS 2.0 JSON Schema: " + "; ".join(problems),
                            Code.EPCIS_SCHEMA_INVALID)
    if doc.get("type") != "EPCISDocument":
        raise SupplyInvalid(f"only an EPCISDocument can be captured, not {doc.get('type')!r}", Code.EPCIS_UNSUPPORTED)
    return doc


def event_time_ms(text: str) -> int:
    """An EPCIS date-time as integer milliseconds since 1970-01-01T00:00:00Z."""
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise SupplyInvalid(f"eventTime {text!r} is not an ISO 8601 date-time", Code.EPCIS_SCHEMA_INVALID) from None
    if moment.tzinfo is None:
        raise SupplyInvalid(f"eventTime {text!r} has no time zone", Code.EPCIS_SCHEMA_INVALID)
    return (moment - _EPOCH) // _dt.timedelta(milliseconds=1)


def format_time(ms: int) -> str:
    moment = _EPOCH + _dt.timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_vocabularies(event: dict[str, Any], where: str) -> dict[str, Any]:
    """The CBV checks the schema cannot make (a misspelt bare word passes it without a URI format checker).
    Returns the event with ``bizStep`` and ``disposition`` as bare CBV words (the caller's dict is untouched)."""
    out = event
    try:
        for key, kind in (("bizStep", "bizStep"), ("disposition", "disposition")):
            if key in event:
                word = cbv.normalise_term(kind, event[key])
                if word != event[key]:
                    out = {**out, key: word}
        persistent = event.get("persistentDisposition", {})
        for values in (persistent.get("set", []), persistent.get("unset", [])):
            for value in values:
                cbv.normalise_disposition(value)
        for item in event.get("bizTransactionList", []):
            if "type" in item:
                cbv.normalise_term("bizTransaction", item["type"])
        for item in [*event.get("sourceList", []), *event.get("destinationList", [])]:
            cbv.normalise_term("sourceDest", item["type"])
    except cbv.VocabularyError as exc:
        raise SupplyInvalid(f"{where}: {exc}", Code.EPCIS_CBV_INVALID) from None
    return out


def _refs(values: list[str], where: str) -> tuple[str, ...]:
    try:
        return tuple(parse_ref(v) for v in values)
    except SupplyInvalid as exc:
        raise SupplyInvalid(f"{where}: {exc.message}", exc.code) from None


def _commission(event: dict[str, Any], refs: tuple[str, ...], at: int, where: str) -> list[packs.Op]:
    ops: list[packs.Op] = [packs.CommissionUnit(r, at) for r in refs if is_unit_ref(r)]
    by_gtin: dict[str, list[str]] = {}
    for ref in refs:
        if not is_unit_ref(ref):
            gtin, serial = split_pack_ref(ref)
            by_gtin.setdefault(gtin, []).append(serial)
    if by_gtin:
        ilmd = event.get("ilmd", {})
        lot, expiry = ilmd.get("cbvmda:lotNumber"), ilmd.get("cbvmda:itemExpirationDate")
        if not isinstance(lot, str) or not isinstance(expiry, str):
            raise SupplyInvalid(f"{where}: commissioning packs needs ilmd cbvmda:lotNumber and "
                                "cbvmda:itemExpirationDate", Code.EPCIS_UNSUPPORTED)
        try:
            check_serial(lot, "lot")
            yymmdd = gs1.yymmd0_from_iso(expiry)
        except (gs1.GS1Error, SupplyInvalid) as exc:
            raise SupplyInvalid(f"{where}: {exc.message}", exc.code) from None
        ops.extend(packs.Commission(g, lot, yymmdd, tuple(s), at) for g, s in sorted(by_gtin.items()))
    return ops


_DECOMMISSION_STEPS = {"dispensing": "supplied", "destroying": "destroyed", "sampling": "sample"}
_DISPOSITION_STATES = {"dispensed": "supplied", "destroyed": "destroyed", "stolen": "stolen"}
_PARTY_ORDER = ("owning_party", "possessing_party", "location")


def _object_ops(event: dict[str, Any], refs: tuple[str, ...], at: int, where: str) -> list[packs.Op]:
    action, step, disposition = event["action"], event.get("bizStep"), event.get("disposition")
    if action == "ADD":
        if step in (None, "commissioning"):
            return _commission(event, refs, at, where)
        raise SupplyInvalid(f"{where}: ADD is supported for commissioning only", Code.EPCIS_UNSUPPORTED)
    if disposition == "stolen":
        return [packs.Decommission(refs, "stolen", at)]
    if step == "shipping":
        if not event.get("destinationList"):
            raise SupplyInvalid(f"{where}: a shipping event needs a destination (owning_party, possessing_party or "
                                "location)", Code.EPCIS_UNSUPPORTED)
        return [packs.Ship(refs, at=at)]  # the consignee is resolved from the destination at apply
    if step == "receiving":
        return [packs.Receive(refs, at)]
    if step in _DECOMMISSION_STEPS:
        return [packs.Decommission(refs, _DECOMMISSION_STEPS[step], at)]
    if step == "decommissioning" and disposition in _DISPOSITION_STATES:
        return [packs.Decommission(refs, _DISPOSITION_STATES[disposition], at)]
    if action == "OBSERVE":
        return [packs.Observe(refs, step or "other", at)]
    raise SupplyInvalid(f"{where}: {action} with bizStep {step!r} and disposition {disposition!r} has no ledger "
                        "meaning", Code.EPCIS_UNSUPPORTED)


def _ops_and_refs(event: dict[str, Any], where: str) -> tuple[list[packs.Op], tuple[str, ...]]:
    at = event_time_ms(event["eventTime"])
    kind = event["type"]
    if kind == "AggregationEvent":
        if "parentID" not in event:
            raise SupplyInvalid(f"{where}: parentID is required unless action is OBSERVE", Code.EPCIS_UNSUPPORTED)
        parent = _refs([event["parentID"]], where)[0]
        children = _refs(event.get("childEPCs", []), where)
        named = (parent, *children)
        if event["action"] == "ADD":
            return [packs.Aggregate(parent, children, at)], named
        if event["action"] == "DELETE":
            return [packs.Disaggregate(parent, children or None, at)], named
        return [packs.Observe(children or (parent,), event.get("bizStep") or "other", at)], named
    if kind not in ("ObjectEvent", "TransactionEvent"):
        raise SupplyInvalid(f"{where}: {kind} is not supported by the ledger", Code.EPCIS_UNSUPPORTED)
    refs = _refs(event.get("epcList", []), where)
    if not refs:
        raise SupplyInvalid(f"{where}: class-level (quantityList) events are not tracked; list EPCs",
                            Code.EPCIS_UNSUPPORTED)
    if len(set(refs)) != len(refs):
        raise SupplyInvalid(f"{where}: an EPC is listed twice", Code.EPCIS_SCHEMA_INVALID)
    if kind == "TransactionEvent" and event.get("bizStep") not in ("shipping", "receiving"):
        return [packs.Observe(refs, event.get("bizStep") or "other", at)], refs
    return _object_ops(event, refs, at, where), refs


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """One validated event: its identity and key, its ops, the items it names, and the location and party
    identifiers that attribute it (resolved against state at apply)."""

    index: int
    event_id: str  # its eventID, or the GS1 canonical event hash (ni:///sha-256;...)
    key: str  # hex SHA-256 of event_id: its state key
    ops: tuple[packs.Op, ...]
    refs: tuple[str, ...]
    biz_step: str | None
    biz_location: str | None
    read_point: str | None
    sources: tuple[tuple[str, str], ...]  # (type, id) in document order
    destinations: tuple[tuple[str, str], ...]


def event_identity(event: dict[str, Any], context: Any = None) -> str:
    """What keys an event: its ``eventID``, else its GS1 canonical event hash (``ni:///sha-256;…?ver=CBV2.0``)."""
    given = event.get("eventID")
    if isinstance(given, str) and given:
        return given
    return event_hash.event_hash(event, context)


def key_of(event_id: str) -> str:
    """The state key part of an event identity: hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(event_id.encode()).hexdigest()


def captured_event(event: dict[str, Any], index: int, context: Any = None) -> CapturedEvent:
    """One (schema-valid) event, checked and mapped; raises SupplyInvalid naming ``event <index>``."""
    where = f"event {index} ({event.get('type')})"
    event_id = event_identity(event, context)
    event = check_vocabularies(event, where)
    if "errorDeclaration" in event:
        raise SupplyInvalid(f"{where}: error declarations are not supported", Code.EPCIS_UNSUPPORTED)
    ops, refs = _ops_and_refs(event, where)
    read_point, biz_location = event.get("readPoint", {}).get("id"), event.get("bizLocation", {}).get("id")
    return CapturedEvent(index, event_id, key_of(event_id), tuple(ops), refs, event.get("bizStep"), biz_location,
                         read_point, tuple((s["type"], s["source"]) for s in event.get("sourceList", [])),
                         tuple((d["type"], d["destination"]) for d in event.get("destinationList", [])))


def event_ops(event: dict[str, Any], index: int) -> list[packs.Op]:
    """The ops of one (schema-valid) event; raises SupplyInvalid naming ``event <index>``."""
    return list(captured_event(event, index).ops)


@dataclass(frozen=True)
class Capture:
    """A validated document: its events (with their ops) and its SHA-256."""

    events: tuple[CapturedEvent, ...]
    document_sha256: str

    @property
    def ops(self) -> tuple[packs.Op, ...]:
        return tuple(op for ev in self.events for op in ev.ops)


def normalise_document(text: str) -> Capture:
    """Parse, validate and map a document. Raises SupplyInvalid: EPCIS_SCHEMA_INVALID, EPCIS_CBV_INVALID,
    EPCIS_UNSUPPORTED (including an empty event list), EPCIS_DUPLICATE_EVENTS (an event identity twice) and
    the GS1 identifier codes."""
    doc = parse_document(text)
    context = doc.get("@context")
    events = tuple(captured_event(e, i, context) for i, e in enumerate(doc["epcisBody"]["eventList"]))
    if not events:
        raise SupplyInvalid("the document has no events", Code.EPCIS_UNSUPPORTED)
    seen: dict[str, int] = {}
    for ev in events:
        if ev.key in seen:
            raise SupplyInvalid(f"event {ev.index} repeats event {seen[ev.key]} ({ev.event_id[:80]})",
                                Code.EPCIS_DUPLICATE_EVENTS)
        seen[ev.key] = ev.index
    return Capture(events, hashlib.sha256(text.encode()).hexdigest())


class CapturePayload(SupplyPayload):
    document: Annotated[str, Field(min_length=2, max_length=MAX_DOCUMENT_CHARS)]

    def normalise(self) -> Capture:
        return normalise_document(self.document)


# --- idempotency ------------------------------------------------------------------------------------------

def captured_before(state: Reader, events: Iterable[CapturedEvent]) -> list[tuple[CapturedEvent, EventRecord]]:
    """The events already on the ledger, with their records."""
    found = []
    for ev in events:
        rec = get_event(state, ev.key)
        if rec is not None:
            found.append((ev, rec))
    return found


def check_not_captured(state: Reader, capture: Capture) -> None:
    """Refuse a document whose events were captured before: EPCIS_ALREADY_CAPTURED when all were,
    EPCIS_DUPLICATE_EVENTS (naming them) when some were."""
    before = captured_before(state, capture.events)
    if not before:
        return
    if len(before) == len(capture.events):
        captures = sorted({rec.capture for _, rec in before})
        raise SupplyError(f"every event of this document was already captured (capture {', '.join(captures[:3])})",
                          Code.EPCIS_ALREADY_CAPTURED)
    named = ", ".join(f"event {ev.index} ({ev.event_id[:80]})" for ev, _ in before[:MAX_NAMED_DUPLICATES])
    more = len(before) - MAX_NAMED_DUPLICATES
    raise SupplyError(f"{len(before)} of {len(capture.events)} events were already captured: {named}"
                      + (f" and {more} more" if more > 0 else ""), Code.EPCIS_DUPLICATE_EVENTS)


def failed_event_index(message: str) -> int | None:
    """The index of the event a failed capture or confirmation names (``event <index>: ...``), if any."""
    match = _EVENT_PREFIX.match(message)
    return None if match is None else int(match[1])


# --- attribution and the pending queue ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Attributed:
    """An event ready to run: its index, attributed organisation, key, ops (consignees resolved) and items."""

    index: int
    org: str
    key: str
    ops: tuple[packs.Op, ...]
    refs: tuple[str, ...]

    def pending(self) -> PendingEvent:
        return PendingEvent(self.index, self.org, self.key, tuple(packs.op_to_json(op) for op in self.ops), self.refs)

    @classmethod
    def from_pending(cls, p: PendingEvent) -> Attributed:
        return cls(p.index, p.org, p.event, tuple(packs.op_from_json(op) for op in p.ops), p.refs)


def _first_party(resolved: list[tuple[str, str]]) -> str | None:
    for kind in _PARTY_ORDER:
        for t, org in resolved:
            if t == kind:
                return org
    return None


def attribute(resolver: Resolver, ev: CapturedEvent, capturer: str) -> tuple[Attributed, set[str]]:
    """The event attributed to its member, and every organisation it involves (its member, sources and
    destinations). Resolves every location and party identifier; raises SupplyError (LOCATION_UNKNOWN,
    PARTY_UNKNOWN, the GS1 codes) naming the event."""
    where = f"event {ev.index}"
    at_location = resolver.identifier(ev.biz_location, where) if ev.biz_location else None
    at_read_point = resolver.identifier(ev.read_point, where) if ev.read_point else None
    sources = [(t, resolver.identifier(v, where, party=t != "location")) for t, v in ev.sources]
    destinations = [(t, resolver.identifier(v, where, party=t != "location")) for t, v in ev.destinations]
    org = at_location or at_read_point
    if org is None:
        if ev.biz_step == "shipping":
            org = _first_party(sources)
        elif ev.biz_step == "receiving":
            org = _first_party(destinations)
    org = org or capturer
    ops = ev.ops
    if any(isinstance(op, packs.Ship) for op in ops):
        consignee = _first_party(destinations)
        ops = tuple(replace(op, to=consignee) if isinstance(op, packs.Ship) else op for op in ops)
    involved = {org, *(o for _, o in sources), *(o for _, o in destinations)}
    return Attributed(ev.index, org, ev.key, ops, ev.refs), involved


def _contents(run: packs.OpRun, refs: Iterable[str]) -> set[str]:
    """The items inside the named containers, recursively, as committed so far."""
    out: set[str] = set()
    stack = list(refs)
    while stack and len(out) < CAPTURE_ITEM_LIMIT:
        rec = get_item(run.state, stack.pop())
        for child in (rec.children or ()) if rec is not None else ():
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def run_queue(run: packs.OpRun, queue: Iterable[Attributed], confirmed: set[str],
              ) -> tuple[list[Attributed], list[Attributed]]:
    """Apply, in order, every event whose member has confirmed and that no earlier waiting event holds back
    (one naming the same items, or items inside them); the rest wait. Returns (applied, waiting). The first
    refusal raises SupplyError ``event <index>: ...``."""
    applied: list[Attributed] = []
    waiting: list[Attributed] = []
    blocked: set[str] = set()
    for item in queue:
        held = bool(blocked) and bool(blocked & ({*item.refs} | _contents(run, item.refs)))
        if item.org in confirmed and not held:
            run.org = item.org
            for op in item.ops:
                try:
                    packs.apply_op(run, op)
                except SupplyError as exc:
                    raise SupplyError(f"event {item.index}: {exc.message}", exc.code) from None
            applied.append(item)
        else:
            waiting.append(item)
            blocked |= {*item.refs} | _contents(run, item.refs)
    return applied, waiting


class CaptureResult(TypedDict):
    capture: str
    events: int
    applied: int
    pending: int
    pending_orgs: list[str]
    ops: int
    document_sha256: str


def apply_capture(state: Overlay, ctx: TxContext, capture: Capture) -> CaptureResult:
    """Capture a document (see the module docstring). Raises EPCIS_ALREADY_CAPTURED, EPCIS_DUPLICATE_EVENTS,
    LOCATION_UNKNOWN, PARTY_UNKNOWN, UNAUTHORISED (the capturer is in none of the events) and whatever an
    applied event's operation raises (``event <index>: ...``)."""
    capturer = require_supply_member(state, ctx)
    check_not_captured(state, capture)
    resolver = Resolver(state)
    queue: list[Attributed] = []
    involved: set[str] = set()
    for ev in capture.events:
        item, orgs = attribute(resolver, ev, capturer)
        queue.append(item)
        involved |= orgs
    if capturer not in involved:
        raise SupplyError(f"{capturer!r} is neither the party, a source nor a destination of any event of this "
                          "document", Code.UNAUTHORISED)
    run = packs.OpRun(state, ctx, capturer, limit=CAPTURE_ITEM_LIMIT)
    applied, waiting = run_queue(run, queue, {capturer})
    height = ctx.env.height
    for item in applied:
        put_event(state, item.key, EventRecord(ctx.tx_hash, item.index, item.org, "applied", height))
    for item in waiting:
        put_event(state, item.key, EventRecord(ctx.tx_hash, item.index, item.org, "pending", height))
    pending_orgs = sorted({item.org for item in waiting})
    if waiting:
        put_capture(state, CaptureRecord(ctx.tx_hash, capturer, height, ctx.env.time_ms, capture.document_sha256,
                                         len(capture.events), (capturer,), tuple(i.pending() for i in waiting),
                                         "pending"))
    ops = sum(len(i.ops) for i in applied)
    ctx.emit("epcis_captured", capture=ctx.tx_hash, events=len(capture.events), applied=len(applied),
             pending=len(waiting), pending_orgs=pending_orgs, document_sha256=capture.document_sha256)
    return {"capture": ctx.tx_hash, "events": len(capture.events), "applied": len(applied), "pending": len(waiting),
            "pending_orgs": pending_orgs, "ops": ops, "document_sha256": capture.document_sha256}


def _authorize_capture(state: Overlay, ctx: TxContext, capture: Capture) -> None:
    require_supply_member(state, ctx)
    check_not_captured(state, capture)


def _capture_hints(capture: Capture) -> list[str]:
    return [*(event_key(ev.key) for ev in capture.events), *(k for op in capture.ops for k in packs.op_hints(op))]


# --- confirmation -------------------------------------------------------------------------------------------

class ConfirmPayload(SupplyPayload):
    capture: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    approve: bool = True


class ConfirmResult(TypedDict):
    capture: str
    status: str
    applied: int
    pending: int
    pending_orgs: list[str]


def _pending_capture(state: Reader, capture: str) -> CaptureRecord:
    rec = get_capture(state, capture)
    if rec is None or rec.status != "pending":
        raise SupplyError(f"no capture {capture[:16]}… has events pending", Code.CAPTURE_UNKNOWN)
    return rec


def apply_confirm(state: Overlay, ctx: TxContext, p: ConfirmPayload) -> ConfirmResult:
    """Confirm (or, with ``approve`` false, reject) a capture's pending events attributed to the signer's
    organisation. Confirming applies, in document order, every pending event whose member has now confirmed
    and that nothing earlier holds back; rejecting drops every event still pending (their identities may be
    captured again). Raises CAPTURE_UNKNOWN, NOTHING_TO_CONFIRM (no pending event is the organisation's),
    and whatever an applied event's operation raises (``event <index>: ...``)."""
    org = require_supply_member(state, ctx)
    rec = _pending_capture(state, p.capture)
    if org not in {pe.org for pe in rec.pending}:
        raise SupplyError(f"no pending event of capture {p.capture[:16]}… is {org!r}'s", Code.NOTHING_TO_CONFIRM)
    height = ctx.env.height
    if not p.approve:
        for pe in rec.pending:
            delete_event(state, pe.event)
        put_capture(state, replace(rec, pending=(), status="rejected", closed=height))
        ctx.emit("epcis_rejected", capture=p.capture, by=org, dropped=len(rec.pending))
        return {"capture": p.capture, "status": "rejected", "applied": 0, "pending": 0, "pending_orgs": []}
    confirmed = {*rec.confirmed, org}
    run = packs.OpRun(state, ctx, org, limit=CAPTURE_ITEM_LIMIT)
    applied, waiting = run_queue(run, [Attributed.from_pending(pe) for pe in rec.pending], confirmed)
    for item in applied:
        put_event(state, item.key, EventRecord(p.capture, item.index, item.org, "applied", height))
    status = "pending" if waiting else "complete"
    put_capture(state, replace(rec, confirmed=tuple(sorted(confirmed)), pending=tuple(i.pending() for i in waiting),
                               status=status, closed=None if waiting else height))
    pending_orgs = sorted({i.org for i in waiting})
    ctx.emit("epcis_confirmed", capture=p.capture, by=org, applied=[i.index for i in applied], pending=len(waiting))
    return {"capture": p.capture, "status": status, "applied": len(applied), "pending": len(waiting),
            "pending_orgs": pending_orgs}


def _authorize_confirm(state: Overlay, ctx: TxContext, p: ConfirmPayload) -> None:
    require_supply_member(state, ctx)


HANDLERS: list[Handler[Any]] = [
    Handler("supply.epcis_capture", 1, CapturePayload, apply_capture, _authorize_capture,
            summary="Capture an EPCIS 2.0 document: each event attributed to its member; the capturer's apply, "
                    "other members' wait for their confirmation; a refusal rolls back the whole document.",
            read_hints=_capture_hints),
    Handler("supply.epcis_confirm", 1, ConfirmPayload, apply_confirm, _authorize_confirm,
            summary="A member confirms (or rejects) the events of a capture attributed to it.",
            read_hints=lambda p: [capture_key(p.capture)]),
]
