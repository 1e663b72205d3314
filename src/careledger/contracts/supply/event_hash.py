"""The GS1 canonical EPCIS event hash: an event identity that does not depend on how the event was written.

EPCIS 2.0 (section 8.9.2, CBV 2.0 ``ni:///`` event IDs) identifies an event that carries no
``eventID`` by the SHA-256 of its *pre-hash string*, written ``ni:///sha-256;<hex>?ver=CBV2.0``. The
algorithm is GS1's (reference implementation: RalphTro/epcis-event-hash-generator, MIT; its test vectors
are vendored under ``tests/data/epcis/event-hash/``):

1. ``eventType=<type>``;
2. the standard fields in a fixed order (:data:`PROP_ORDER`), each ``name=value`` (a structure: its name,
   then its children's strings), the strings of repeated elements sorted;
3. every other field (bizTransactionList, sourceList, destinationList, ILMD, user extensions, …) written
   the same generic way, these strings sorted; ``recordTime``, ``eventID``, ``errorDeclaration`` and
   comments are left out.

Values are canonicalised: times to UTC with milliseconds (``2020-03-04T10:00:30.000Z``), CBV words and
EPCIS 1.x URNs to CBV Web URIs (``https://ref.gs1.org/cbv/BizStep-shipping``), numbers to their shortest
form, and GS1 identifiers (EPC URNs, Digital Links on any domain) to the canonical GS1 Digital Link on
``https://id.gs1.org`` at the finest level (a serial drops the lot; no query). A user-extension key
``prefix:name`` whose prefix the document's ``@context`` declares is written ``{namespace}name``.

Identifier schemes canonicalised here: SGTIN, SSCC, SGLN, PGLN, LGTIN, GTIN patterns, GRAI, GIAI, GSRN,
GDTI, and Digital Links of AIs 00, 01, 253, 254, 414, 417, 8003, 8004, 8017, 8018; any other value (CPI,
GINC, GSIN, ITIP, UPUI, SGCN URNs, for example) is kept as written, which gives a stable hash but not
GS1's for such events. Pure: no I/O.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from typing import Any

Order = list[tuple[str, "Order | None"]]

_QUANTITY: Order = [("epcClass", None), ("quantity", None), ("uom", None)]
PROP_ORDER: Order = [
    ("eventTime", None), ("eventTimeZoneOffset", None), ("certificationInfo", None), ("parentID", None),
    ("epcList", [("epc", None)]), ("inputEPCList", [("epc", None)]), ("childEPCs", [("epc", None)]),
    ("quantityList", [("quantityElement", _QUANTITY)]), ("childQuantityList", [("quantityElement", _QUANTITY)]),
    ("inputQuantityList", [("quantityElement", _QUANTITY)]), ("outputEPCList", [("epc", None)]),
    ("outputQuantityList", [("quantityElement", _QUANTITY)]), ("action", None), ("transformationID", None),
    ("bizStep", None), ("disposition", None), ("persistentDisposition", [("set", None), ("unset", None)]),
    ("readPoint", [("id", None)]), ("bizLocation", [("id", None)]),
    ("sensorElementList", [("sensorElement", [
        ("sensorMetadata", [("time", None), ("startTime", None), ("endTime", None), ("deviceID", None),
                            ("deviceMetadata", None), ("rawData", None), ("dataProcessingMethod", None),
                            ("bizRules", None)]),
        ("sensorReport", [("type", None), ("exception", None), ("deviceID", None), ("deviceMetadata", None),
                          ("rawData", None), ("dataProcessingMethod", None), ("time", None),
                          ("microorganism", None), ("chemicalSubstance", None), ("value", None),
                          ("component", None), ("stringValue", None), ("booleanValue", None),
                          ("hexBinaryValue", None), ("uriValue", None), ("minValue", None), ("maxValue", None),
                          ("meanValue", None), ("sDev", None), ("percRank", None), ("percValue", None),
                          ("uom", None), ("coordinateReferenceSystem", None)]),
    ])]),
]
"""The order of the standard fields (GS1's ``PROP_ORDER``); list members' element names as in XML."""

IGNORED = frozenset({"recordTime", "eventID", "type", "errorDeclaration", "rdfs:comment", "comment", "@context"})
_ELEMENT = {"epcList": "epc", "inputEPCList": "epc", "outputEPCList": "epc", "childEPCs": "epc",
            "quantityList": "quantityElement", "childQuantityList": "quantityElement",
            "inputQuantityList": "quantityElement", "outputQuantityList": "quantityElement",
            "sensorElementList": "sensorElement", "bizTransactionList": "bizTransaction",
            "sourceList": "source", "destinationList": "destination", "sensorReport": "sensorReport"}
_CBV_WORDS = {"bizStep": "BizStep-", "disposition": "Disp-", "set": "Disp-", "unset": "Disp-"}
_CBV_URNS = (("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-"),
             ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
             ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
             ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
             ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"))
_DL = "https://id.gs1.org/"
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_X = r"(?:%[0-9A-Fa-f]{2}|[!')(*+,.0-9:;=A-Za-z_-])"
_URN = {
    "sgtin": re.compile(rf"^urn:epc:id:sgtin:(\d{{6,12}})\.(\d{{1,7}})\.({_X}{{1,20}})$"),
    "sscc": re.compile(r"^urn:epc:id:sscc:(\d{6,12})\.(\d{5,11})$"),
    "sgln": re.compile(rf"^urn:epc:id:sgln:(\d{{6,12}})\.(\d{{0,6}})\.({_X}{{1,20}})$"),
    "pgln": re.compile(r"^urn:epc:id:pgln:(\d{6,12})\.(\d{0,6})$"),
    "lgtin": re.compile(rf"^urn:epc:class:lgtin:(\d{{6,12}})\.(\d{{1,7}})\.({_X}{{1,20}})$"),
    "idpat": re.compile(r"^urn:epc:idpat:sgtin:(\d{6,12})\.(\d{1,7})\.\*$"),
    "grai": re.compile(rf"^urn:epc:id:grai:(\d{{6,12}})\.(\d{{0,6}})\.({_X}{{1,16}})$"),
    "giai": re.compile(rf"^urn:epc:id:giai:(\d{{6,12}})\.({_X}{{1,24}})$"),
    "gsrn": re.compile(r"^urn:epc:id:gsrn:(\d{6,12})\.(\d{5,11})$"),
    "gdti": re.compile(rf"^urn:epc:id:gdti:(\d{{6,12}})\.(\d{{0,6}})\.({_X}{{0,17}})$"),
}
_DL_KEYS = ("/00/", "/01/", "/253/", "/414/", "/417/", "/8003/", "/8004/", "/8017/", "/8018/")


def _check_digit(body: str) -> str:
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def _web(text: str) -> str:
    """Percent-encode what a Digital Link must (GS1 Digital Link table 7-1, as GS1's reference does)."""
    for raw, esc in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C"),
                     (":", "%3A")):
        text = text.replace(raw, esc)
    return text


def _gtin(prefix: str, item_ref: str) -> str:
    body = item_ref[:1] + prefix + item_ref[1:]
    return body + _check_digit(body)


def _from_urn(uri: str) -> str | None:
    for scheme, pattern in _URN.items():
        m = pattern.match(uri)
        if m is None:
            continue
        cp = m[1]
        if scheme == "sgtin" and len(cp) + len(m[2]) == 13:
            return f"{_DL}01/{_gtin(cp, m[2])}/21/{_web(m[3])}"
        if scheme == "lgtin" and len(cp) + len(m[2]) == 13:
            return f"{_DL}01/{_gtin(cp, m[2])}/10/{_web(m[3])}"
        if scheme == "idpat" and len(cp) + len(m[2]) == 13:
            return f"{_DL}01/{_gtin(cp, m[2])}"
        if scheme == "sscc" and len(cp) + len(m[2]) == 17:
            body = m[2][0] + cp + m[2][1:]
            return f"{_DL}00/{body}{_check_digit(body)}"
        if scheme in ("sgln", "pgln", "grai", "gdti") and len(cp) + len(m[2]) == 12:
            body = cp + m[2]
            if scheme == "gdti":
                return f"{_DL}253/{body}{_check_digit(body)}{_web(m[3])}"
            if scheme == "pgln":
                return f"{_DL}417/{body}{_check_digit(body)}"
            if scheme == "grai":
                return f"{_DL}8003/0{body}{_check_digit('0' + body)}{_web(m[3])}"
            ext = "" if m[3] == "0" else f"/254/{_web(m[3])}"
            return f"{_DL}414/{body}{_check_digit(body)}{ext}"
        if scheme == "giai":
            return f"{_DL}8004/{cp}{_web(m[2])}"
        if scheme == "gsrn" and len(cp) + len(m[2]) == 17:
            body = cp + m[2]
            return f"{_DL}8018/{body}{_check_digit(body)}"
    return None


def _from_digital_link(uri: str) -> str | None:
    key = next((k for k in _DL_KEYS if k in uri), None)
    if key is None:
        return None
    path = uri[uri.find(key) + 1:].split("?", 1)[0].split("#", 1)[0].rstrip("/")
    parts = path.split("/")
    if len(parts) % 2:
        return None
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
    ai, value = pairs[0]
    if ai == "01":
        if not value.isdigit() or len(value) not in (8, 12, 13, 14):
            return None
        value = value.zfill(14)
        quals = {a: v for a, v in pairs[1:] if a in ("10", "21", "235")}
        if "21" in quals:
            return f"{_DL}01/{value}/21/{quals['21']}"
        if "235" in quals:
            return f"{_DL}01/{value}/235/{quals['235']}"
        if "10" in quals:
            return f"{_DL}01/{value}/10/{quals['10']}"
        return f"{_DL}01/{value}"
    if ai == "414" and len(pairs) == 2 and pairs[1][0] == "254":
        return f"{_DL}414/{value}/254/{pairs[1][1]}"
    return f"{_DL}{ai}/{value}"


def canonical_identifier(uri: str) -> str | None:
    """The canonical GS1 Digital Link of an EPC URN or Digital Link (None for anything else)."""
    if uri.startswith("urn:epc:"):
        return _from_urn(uri)
    if uri.startswith(("http://", "https://")):
        return _from_digital_link(uri)
    return None


def canonical_time(text: str) -> str:
    """An ISO 8601 date-time in UTC with milliseconds (microseconds rounded); left as is when not a time."""
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    moment = moment.astimezone(_dt.UTC)
    micro = round(moment.microsecond, -3)
    if micro == 1_000_000:
        moment, micro = moment.replace(microsecond=0) + _dt.timedelta(seconds=1), 0
    moment = moment.replace(microsecond=micro)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_number(text: str) -> str:
    """A numeral in its shortest form (``+1.50`` → ``1.5``, ``2.0`` → ``2``), as GS1's reference writes it.

    The reference parses the literal as an IEEE-754 double and prints it back; CPython's shortest
    round-trip ``repr`` of a double is exact and the same on every platform, so this hashes alike on
    every node. Nothing here is stored as a float.
    """
    if not _NUMBER.match(text):
        return text
    number = float(text)
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def canonical_value(text: str) -> str:
    for urn, web in _CBV_URNS:
        if text.startswith(urn):
            text = web + text[len(urn):]
            break
    text = canonical_number(text)
    return canonical_identifier(text) or text


class _Namespaces:
    def __init__(self, context: Any) -> None:
        self.map: dict[str, str] = {}
        for item in context if isinstance(context, list) else [context]:
            if isinstance(item, dict):
                for prefix, uri in item.items():
                    if isinstance(uri, str):
                        self.map[prefix] = uri

    def key(self, name: str) -> str:
        prefix, sep, local = name.partition(":")
        if sep and prefix in self.map:
            return "{" + self.map[prefix] + "}" + local
        return name

    def value(self, text: str) -> str:
        prefix, sep, local = text.partition(":")
        if sep and prefix in self.map and not local.startswith("//"):
            return self.map[prefix] + local
        return text


Node = tuple[str, str, list["Node"]]


def _tree(name: str, value: Any, ns: _Namespaces, parent: str = "") -> list[Node]:
    """The (name, text, children) nodes a JSON member becomes: a list gives one node per element."""
    if isinstance(value, list):
        element = _ELEMENT.get(name, name)
        nodes: list[Node] = []
        for item in value:
            nodes.extend(_tree(element, item, ns, name))
        return [(name, "", nodes)] if name in _ELEMENT and name != "sensorReport" else nodes
    if isinstance(value, dict):
        text = str(value.get("#text", ""))
        children: list[Node] = []
        for key, child in value.items():
            if key in ("#text", "rdfs:comment", "comment") or key.startswith("@"):
                continue
            children.extend(_tree(ns.key(key), child, ns, name))
        return [(name, text, children)]
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if name in _CBV_WORDS and ":" not in text:
        text = f"https://ref.gs1.org/cbv/{_CBV_WORDS[name]}{text}"
    elif name in ("type", "exception") and parent == "sensorReport" and ":" not in text:
        text = f"https://gs1.org/voc/{text}"
    elif name == "type" and parent in ("bizTransaction", "bizTransactionList") and ":" not in text:
        text = f"https://ref.gs1.org/cbv/BTT-{text}"
    elif name == "type" and parent in ("source", "destination", "sourceList", "destinationList") and ":" not in text:
        text = f"https://ref.gs1.org/cbv/SDT-{text}"
    else:
        text = ns.value(text)
    return [(name, text, [])]


def _leaf(name: str, text: str, times: bool = True) -> str:
    text = text.strip()
    if not text:
        return ""
    if times and "time" in name.lower() and "offset" not in name.lower():
        return "=" + canonical_time(text)
    return "=" + canonical_value(text)


def _ordered(children: list[Node], order: Order) -> tuple[str, list[Node]]:
    """The pre-hash string of the children named in ``order`` (in that order, repeats sorted), and the
    children it did not consume."""
    parts: list[str] = []
    consumed: set[int] = set()
    for name, sub in order:
        values = []
        for i, child in enumerate(children):
            if child[0] != name:
                continue
            text = _node(child, sub)
            if text:
                values.append(text)
            consumed.add(i)
        parts.extend(sorted(values))
    rest = [c for i, c in enumerate(children) if i not in consumed]
    return "".join(parts), rest


def _node(node: Node, order: Order | None) -> str:
    name, text, children = node
    inner = ""
    if order is not None:
        inner, rest = _ordered(children, order)
        extensions = [c for c in rest if c[0].startswith("{")]
        if extensions:
            inner += _generic(extensions)
    elif children:
        inner = _generic(children)
    value = _leaf(name, text)
    return name + value + inner if value or inner else ""


def _generic(children: list[Node]) -> str:
    """Fields outside the standard order: ``name=value`` then children, sorted unless a list of parties or
    business transactions (whose members keep type-then-value order)."""
    values = []
    for child in children:
        name, text, grand = child
        values.append(name + _leaf(name, text, times=False) + (_generic_pairs(grand) if name in (
            "bizTransactionList", "sourceList", "destinationList") else _generic(grand)))
    return "".join(sorted(values))


def _generic_pairs(elements: list[Node]) -> str:
    strings = []
    for _, _, members in elements:
        ordered = sorted(members, key=lambda m: 0 if m[0] == "type" else 1)
        strings.append("".join(m[0] + _leaf(m[0], m[1], times=False) for m in ordered))
    return "".join(sorted(strings))


def prehash(event: dict[str, Any], context: Any = None) -> str:
    """The pre-hash string of one EPCIS 2.0 JSON event (``context``: the document's ``@context``)."""
    ns = _Namespaces(context)
    children: list[Node] = []
    for key, value in event.items():
        if key in IGNORED:
            continue
        children.extend(_tree(ns.key(key), value, ns))
    ordered, rest = _ordered(children, PROP_ORDER)
    rest = [c for c in rest if c[0] not in ("bizTransactionList", "sourceList", "destinationList") or c[2]]
    return f"eventType={event.get('type', '')}" + ordered + _generic(rest)


def event_hash(event: dict[str, Any], context: Any = None) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` of the event's pre-hash string."""
    return "ni:///sha-256;" + hashlib.sha256(prehash(event, context).encode()).hexdigest() + "?ver=CBV2.0"
