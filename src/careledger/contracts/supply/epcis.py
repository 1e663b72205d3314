"""EPCIS 2.0 capture: validate a JSON-LD document and turn it into pack-lifecycle ops, all or nothing.

A document is captured by one signed ``supply.epcis_capture`` transaction whose payload carries the
document *text*. Its stateless step (run at admission and again by every node that executes the
block) validates the text against the official GS1 EPCIS 2.0 JSON Schema (vendored in
``supply/schema``, Draft 7) and the CBV 2.0 vocabularies, and maps every event to ops; its apply
step runs those ops in order on the transaction's staged state. Any refusal fails the transaction and
rolls back every write, so a document is imported completely or not at all, and the ledger keeps the
exact document that was captured. A document is therefore bounded by the genesis ``max_tx_bytes``
(256 KiB by default, several thousand EPCs); split larger ones at the sender.

Event mapping (the capturing organisation acts as the event's party):

======================================  ===============================================================
EPCIS event                             op
======================================  ===============================================================
ObjectEvent ADD commissioning           commission per GTIN (ILMD ``cbvmda:lotNumber`` and
                                        ``cbvmda:itemExpirationDate`` required); an SSCC: a new unit
Object/TransactionEvent shipping        ship to the destination ``owning_party`` (else
                                        ``possessing_party``): the member holding that GS1 Company
                                        Prefix, or ``urn:careledger:org:<id>``
Object/TransactionEvent receiving       receive
dispensing / destroying / sampling      decommission to supplied / destroyed / sample
disposition ``stolen``                  decommission to stolen
decommissioning                         by disposition: dispensed, destroyed or stolen
AggregationEvent ADD / DELETE           aggregate / disaggregate (``parentID`` required)
any other OBSERVE event                 observe (recorded in the items' history)
======================================  ===============================================================

Refused: quantity-only (class-level) events, Transformation and Association events, error
declarations, and anything outside these mappings (``EPCIS_UNSUPPORTED``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, TypedDict

from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError as SchemaError  # type: ignore[import-untyped]
from pydantic import Field

from careledger.contracts.base import Handler, TxContext
from careledger.contracts.supply import cbv, gs1, packs
from careledger.contracts.supply.base import SupplyPayload, require_supply_member
from careledger.contracts.supply.layout import (
    MAX_ITEMS_PER_TX,
    SupplyInvalid,
    check_serial,
    is_unit_ref,
    parse_ref,
    split_pack_ref,
)
from careledger.core.errors import Code
from careledger.core.state import Overlay

MAX_DOCUMENT_CHARS = 4_194_304
CAPTURE_ITEM_LIMIT = 5 * MAX_ITEMS_PER_TX
ORG_URN = "urn:careledger:org:"
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The official GS1 EPCIS 2.0 JSON Schema (vendored, see ``supply/schema/SOURCE.md``)."""
    text = resources.files("careledger.contracts.supply").joinpath("schema/EPCIS-JSON-Schema.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@lru_cache(maxsize=1)
def validator() -> Draft7Validator:
    return Draft7Validator(schema())


def _where(error: SchemaError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(document)"


def schema_errors(doc: Any, limit: int = 5) -> list[str]:
    """Human-readable schema violations of ``doc`` (empty when it validates), deepest first."""
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
    return out


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


def check_vocabularies(event: dict[str, Any], where: str) -> None:
    """The CBV checks the schema cannot make (a misspelt bare word passes it without a URI format checker)."""
    try:
        for key, kind in (("bizStep", "bizStep"), ("disposition", "disposition")):
            if key in event:
                event[key] = cbv.normalise_term(kind, event[key])
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


def _party_digits(uri: str, where: str) -> tuple[str | None, str | None]:
    """(organisation id, GS1 digits) named by a party/location identifier."""
    if uri.startswith(ORG_URN):
        return uri[len(ORG_URN):], None
    lower = uri.lower()
    for scheme in ("urn:epc:id:sgln:", "urn:epc:id:pgln:"):
        if lower.startswith(scheme):
            return None, "".join(uri[len(scheme):].split(".")[:2])
    if uri.startswith(("http://", "https://")):
        for ai in ("/414/", "/417/"):
            if ai in uri:
                return None, uri.split(ai, 1)[1][:13]
    raise SupplyInvalid(f"{where}: cannot name a consortium member from {uri[:80]!r}", Code.PARTY_UNKNOWN)


def _consignee(event: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    destinations = {d["type"]: d["destination"] for d in event.get("destinationList", [])}
    for kind in ("owning_party", "possessing_party"):
        if kind in destinations:
            return _party_digits(destinations[kind], where)
    raise SupplyInvalid(f"{where}: a shipping event needs a destination owning_party or possessing_party",
                        Code.EPCIS_UNSUPPORTED)


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


def _object_ops(event: dict[str, Any], refs: tuple[str, ...], at: int, where: str) -> list[packs.Op]:
    action, step, disposition = event["action"], event.get("bizStep"), event.get("disposition")
    if action == "ADD":
        if step in (None, "commissioning"):
            return _commission(event, refs, at, where)
        raise SupplyInvalid(f"{where}: ADD is supported for commissioning only", Code.EPCIS_UNSUPPORTED)
    if disposition == "stolen":
        return [packs.Decommission(refs, "stolen", at)]
    if step == "shipping":
        to, digits = _consignee(event, where)
        return [packs.Ship(refs, to=to, to_party=digits, at=at)]
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


def event_ops(event: dict[str, Any], index: int) -> list[packs.Op]:
    """The ops of one (schema-valid) event; raises SupplyInvalid naming ``event <index>``."""
    where = f"event {index} ({event.get('type')})"
    check_vocabularies(event, where)
    if "errorDeclaration" in event:
        raise SupplyInvalid(f"{where}: error declarations are not supported", Code.EPCIS_UNSUPPORTED)
    at = event_time_ms(event["eventTime"])
    kind = event["type"]
    if kind == "AggregationEvent":
        if "parentID" not in event:
            raise SupplyInvalid(f"{where}: parentID is required unless action is OBSERVE", Code.EPCIS_UNSUPPORTED)
        parent = _refs([event["parentID"]], where)[0]
        children = _refs(event.get("childEPCs", []), where)
        if event["action"] == "ADD":
            return [packs.Aggregate(parent, children, at)]
        if event["action"] == "DELETE":
            return [packs.Disaggregate(parent, children or None, at)]
        return [packs.Observe(children or (parent,), event.get("bizStep") or "other", at)]
    if kind not in ("ObjectEvent", "TransactionEvent"):
        raise SupplyInvalid(f"{where}: {kind} is not supported by the ledger", Code.EPCIS_UNSUPPORTED)
    refs = _refs(event.get("epcList", []), where)
    if not refs:
        raise SupplyInvalid(f"{where}: class-level (quantityList) events are not tracked; list EPCs",
                            Code.EPCIS_UNSUPPORTED)
    if len(set(refs)) != len(refs):
        raise SupplyInvalid(f"{where}: an EPC is listed twice", Code.EPCIS_SCHEMA_INVALID)
    if kind == "TransactionEvent" and event.get("bizStep") not in ("shipping", "receiving"):
        return [packs.Observe(refs, event.get("bizStep") or "other", at)]
    return _object_ops(event, refs, at, where)


@dataclass(frozen=True)
class Capture:
    """A validated document: its ops, event count and SHA-256."""

    ops: tuple[packs.Op, ...]
    events: int
    document_sha256: str


def normalise_document(text: str) -> Capture:
    doc = parse_document(text)
    events = doc["epcisBody"]["eventList"]
    ops = [op for i, event in enumerate(events) for op in event_ops(event, i)]
    if not ops:
        raise SupplyInvalid("the document has no events", Code.EPCIS_UNSUPPORTED)
    return Capture(tuple(ops), len(events), hashlib.sha256(text.encode()).hexdigest())


class CapturePayload(SupplyPayload):
    document: Annotated[str, Field(min_length=2, max_length=MAX_DOCUMENT_CHARS)]

    def normalise(self) -> Capture:
        return normalise_document(self.document)


class CaptureResult(TypedDict):
    events: int
    ops: int
    document_sha256: str


def apply_capture(state: Overlay, ctx: TxContext, capture: Capture) -> CaptureResult:
    results = packs.apply_ops(state, ctx, capture.ops, limit=CAPTURE_ITEM_LIMIT)
    ctx.emit("epcis_captured", events=capture.events, document_sha256=capture.document_sha256)
    return {"events": capture.events, "ops": len(results), "document_sha256": capture.document_sha256}


def _authorize(state: Overlay, ctx: TxContext, p: object) -> None:
    require_supply_member(state, ctx)


HANDLERS: list[Handler[Any]] = [
    Handler("supply.epcis_capture", 1, CapturePayload, apply_capture, _authorize,
                  summary="Capture an EPCIS 2.0 document: every event applies, or none does.",
                  read_hints=lambda c: [k for op in c.ops for k in packs.op_hints(op)]),
]
