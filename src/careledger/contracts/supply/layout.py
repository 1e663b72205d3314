"""The supply contract's state layout, item references and errors (pure; no I/O).

State keys (values are canonical JSON; pack records are kept compact because there are millions)::

    supply/product/<gtin14>          {gtin, name, strength, dosage_form, ndc, national_codes, owner,
                                      company_prefix, status: active|withdrawn, since, withdrawn_at?, reason?}
    supply/lot/<gtin14>/<lot>        {gtin, lot, expiry: YYMMDD, expiry_day, owner, packs, status:
                                      active|recalled, since, recalled_at?, recalled_by?, reason?}
    supply/pack/<gtin14>/<serial>    {s: state, h: holder org, l: lot, e: [[op, at_ms, org, height, extra?]…],
                                      t?: consignee org while in transit, p?: parent ref, c?: [child refs],
                                      u?: [state, org, at_ms] of the last decommission (for undo)}
    supply/unit/<sscc18>             a logistic unit (case or pallet): the same record without ``l``

A *reference* (ref) names one item in payloads and records: ``<gtin14>/<serial>`` for a serialised
pack (the GTIN has a fixed length, so a ``/`` in the serial is harmless) or the 18-digit SSCC of a
logistic unit. Verification is therefore three point reads (pack, lot, product) whatever the number
of packs; a recall is one write to the lot; an operation on a container touches it and its contents.
"""

from __future__ import annotations

import re
from typing import Any

from careledger.contracts.supply import gs1
from careledger.core.errors import Code, InvalidTx, TxFailed

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


def history_entry(op: str, at_ms: int, org: str, height: int, extra: Any = None) -> list[Any]:
    return [op, at_ms, org, height] if extra is None else [op, at_ms, org, height, extra]


def custody_chain(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Who held the item, in order: the commissioner, then each receiver (with the shipment that led there)."""
    chain: list[dict[str, Any]] = []
    pending_ship: list[Any] | None = None
    for entry in record.get("e", []):
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
