"""GS1 identifiers for the drug supply chain: pure parsing and formatting (no I/O, no clock).

Covers the GS1 mod-10 check digit (GTIN-8/12/13/14, GLN-13, SSCC-18), EPC pure-identity URNs
(SGTIN, SSCC, SGLN; EPC Tag Data Standard escaping), GS1 Digital Link URIs (primary keys 01, 00,
414; qualifiers 10, 21, 254; data attributes 17 and 10 in the query) and GS1 element strings as
scanned from a DataMatrix (``]d2``, FNC1 as GS ``\\x1d``) or written in the bracketed form.

Dates (AI 17, ``YYMMD0``) are kept exactly as encoded: the century of ``YY`` depends on the current
year (GS1 General Specifications, sliding window), so turning one into a calendar date takes an
explicit ``reference_year`` (on a ledger: the year of the block time), never the machine clock.
Without a reference year, 29 February is accepted when ``YY % 4 == 0``; the exact check happens
when the date is resolved.

Every refusal is a :class:`GS1Error` carrying one of the stable supply codes (3001-3009).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from dataclasses import dataclass
from typing import NoReturn

from careledger.core.errors import Code, LedgerError

DEFAULT_DL_DOMAIN = "https://id.gs1.org"
GS = "\x1d"
"""Group separator: how a scanner transmits FNC1 used as a field separator."""
SYMBOLOGY_IDENTIFIERS = ("]d2", "]Q3", "]C1", "]e0")
"""GS1 DataMatrix, GS1 QR Code, GS1-128, GS1 DataBar: the prefixes a scanner may send."""

CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
"""GS1 AI encodable character set 82 (the ``X`` format of AIs 10, 21, 254)."""
MAX_X_LENGTH = 20

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789ABCDEFabcdef")
_EPC_RESERVED = frozenset('"%&/<>?')  # must be percent-encoded in an EPC URN (TDS)
_EPC_RAW = CSET82 - _EPC_RESERVED
_DL_RAW = CSET82 - frozenset('"%/<>?')  # set 82 characters that are legal raw in a URI segment
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR = _UNRESERVED | frozenset("!$&'()*+,;=:@%")
_GTIN_LENGTHS = (8, 12, 13, 14)
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DL_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#.*)?", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?", re.ASCII)
_DL_ALIASES = {"gtin": "01", "lot": "10", "ser": "21", "exp": "17", "sscc": "00", "gln": "414", "glnx": "254"}
_DL_PRIMARY = frozenset({"01", "00", "414"})
_AI_LENGTH: dict[str, int | None] = {"01": 14, "17": 6, "10": None, "21": None}  # None: variable, X..20


class GS1Error(LedgerError):
    """A GS1 identifier, URI or element string was refused; ``code`` is one of the 3000 (supply) codes."""

    default_code = Code.MALFORMED_IDENTIFIER


def _fail(code: Code, message: str) -> NoReturn:
    raise GS1Error(message, code)


def _is_digits(text: object) -> bool:
    return isinstance(text, str) and bool(text) and all(c in _DIGITS for c in text)


def check_digit(body: str) -> int:
    """GS1 mod-10 check digit of ``body`` (every digit but the check digit; weights 3,1,3,… from the right)."""
    if not _is_digits(body):
        _fail(Code.MALFORMED_IDENTIFIER, f"check digit needs a non-empty string of digits 0-9, got {body!r}")
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def has_valid_check_digit(digits: str) -> bool:
    """True iff ``digits`` is at least two ASCII digits and its last one is the GS1 check digit of the rest."""
    return _is_digits(digits) and len(digits) >= 2 and check_digit(digits[:-1]) == int(digits[-1])


def _keyed(text: str, lengths: tuple[int, ...], name: str) -> str:
    if not _is_digits(text):
        _fail(Code.MALFORMED_IDENTIFIER, f"{name} must be digits 0-9 only, got {text!r}")
    if len(text) not in lengths:
        want = "/".join(str(n) for n in lengths)
        _fail(Code.MALFORMED_IDENTIFIER, f"{name} must have {want} digits, got {len(text)} in {text!r}")
    expected = check_digit(text[:-1])
    if int(text[-1]) != expected:
        _fail(Code.BAD_CHECK_DIGIT, f"{name} {text} ends in check digit {text[-1]}, expected {expected}")
    return text


def parse_gtin(text: str) -> str:
    """Validate a GTIN-8/12/13/14 (digits and check digit) and return it normalised to GTIN-14."""
    return _keyed(text, _GTIN_LENGTHS, "GTIN").zfill(14)


def parse_gln(text: str) -> str:
    """Validate a 13-digit GLN (digits and check digit) and return it."""
    return _keyed(text, (13,), "GLN")


def parse_sscc(text: str) -> str:
    """Validate an 18-digit SSCC (digits and check digit) and return it."""
    return _keyed(text, (18,), "SSCC")


def _check_x(value: object, what: str) -> str:
    """A value in AI format X..20: 1-20 characters of set 82."""
    if not isinstance(value, str) or not value:
        _fail(Code.MALFORMED_IDENTIFIER, f"{what} must be a non-empty string, got {value!r}")
    bad = next((c for c in value if c not in CSET82), None)
    if bad is not None:
        _fail(Code.ILLEGAL_CHARACTER, f"{what} {value!r} contains {bad!r}, outside the GS1 AI character set 82")
    if len(value) > MAX_X_LENGTH:
        _fail(Code.FIELD_TOO_LONG, f"{what} is {len(value)} characters long, the limit is {MAX_X_LENGTH}")
    return value


def _check_cpl(length: object) -> int:
    if isinstance(length, bool) or not isinstance(length, int) or not 6 <= length <= 12:
        _fail(Code.MALFORMED_IDENTIFIER, f"a GS1 Company Prefix length is an integer 6-12, got {length!r}")
    return length


def _check_split(prefix: str, ref: str, total: int, what: str, code: Code) -> None:
    if not _is_digits(prefix) or not 6 <= len(prefix) <= 12:
        _fail(code, f"{what} company prefix must be 6-12 digits, got {prefix!r}")
    if not (ref == "" or _is_digits(ref)) or len(prefix) + len(ref) != total:
        _fail(code, f"{what} company prefix + reference must be {total} digits, got {prefix!r} + {ref!r}")


def validate_yymmd0(text: str) -> str:
    """Check an AI (17) date ``YYMMDD`` (``DD`` = 00: day unspecified, i.e. end of month) and return it."""
    if not _is_digits(text) or len(text) != 6:
        _fail(Code.BAD_DATE, f"a GS1 date is 6 digits YYMMDD, got {text!r}")
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    if not 1 <= mm <= 12:
        _fail(Code.BAD_DATE, f"date {text}: month {mm:02d} is not 01-12")
    limit = 28 if mm == 2 and yy % 4 else _MONTH_DAYS[mm - 1]
    if dd > limit:
        _fail(Code.BAD_DATE, f"date {text}: day {dd:02d} does not exist in month {mm:02d}")
    return text


def resolve_century(yy: int, *, reference_year: int) -> int:
    """Four-digit year of ``YY`` per the GS1 General Specifications sliding window around ``reference_year``.

    ``YY`` 51 or more years ahead of the reference is in the previous century, 50 or more years behind it
    in the next one, otherwise in the reference's century.
    """
    if isinstance(reference_year, bool) or not isinstance(reference_year, int) or not 100 <= reference_year <= 9899:
        _fail(Code.BAD_DATE, f"reference year must be an integer 100-9899, got {reference_year!r}")
    if isinstance(yy, bool) or not isinstance(yy, int) or not 0 <= yy <= 99:
        _fail(Code.BAD_DATE, f"YY must be an integer 0-99, got {yy!r}")
    century = reference_year - reference_year % 100
    diff = yy - reference_year % 100
    if diff >= 51:
        century -= 100
    elif diff <= -50:
        century += 100
    return century + yy


def yymmd0_to_date(text: str, *, reference_year: int) -> _dt.date:
    """The calendar date of ``YYMMD0`` (day 00 → last day of the month), century per ``reference_year``."""
    validate_yymmd0(text)
    year = resolve_century(int(text[:2]), reference_year=reference_year)
    month, day = int(text[2:4]), int(text[4:])
    try:
        return _dt.date(year, month, day or calendar.monthrange(year, month)[1])
    except ValueError:
        _fail(Code.BAD_DATE, f"date {text} resolves to {year:04d}-{month:02d}-{day:02d}, which does not exist")


def yymmd0_to_iso(text: str, *, reference_year: int) -> str:
    """``YYMMD0`` as an ISO 8601 date ``YYYY-MM-DD``."""
    return yymmd0_to_date(text, reference_year=reference_year).isoformat()


def yymmd0_to_epoch_days(text: str, *, reference_year: int) -> int:
    """``YYMMD0`` as whole days since 1970-01-01 (UTC)."""
    return yymmd0_to_date(text, reference_year=reference_year).toordinal() - _EPOCH_ORDINAL


def yymmd0_from_iso(iso: str) -> str:
    """Encode an ISO date ``YYYY-MM-DD`` as ``YYMMDD`` (the century is dropped, as in the barcode)."""
    match = _ISO_DATE.fullmatch(iso) if isinstance(iso, str) else None
    if match is None:
        _fail(Code.BAD_DATE, f"expected an ISO date YYYY-MM-DD, got {iso!r}")
    try:
        day = _dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        _fail(Code.BAD_DATE, f"{iso} is not a calendar date")
    return f"{day.year % 100:02d}{day.month:02d}{day.day:02d}"


def yymmd0_from_epoch_days(days: int) -> str:
    """Encode a day count since 1970-01-01 (UTC) as ``YYMMDD``."""
    if isinstance(days, bool) or not isinstance(days, int):
        _fail(Code.BAD_DATE, f"epoch days must be an integer, got {days!r}")
    try:
        day = _dt.date.fromordinal(_EPOCH_ORDINAL + days)
    except (ValueError, OverflowError):
        _fail(Code.BAD_DATE, f"{days} days since 1970-01-01 is outside years 1-9999")
    return f"{day.year % 100:02d}{day.month:02d}{day.day:02d}"


def _unescape(text: str, raw_ok: frozenset[str], code: Code, what: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            hexpair = text[i + 1 : i + 3]
            if len(hexpair) != 2 or not all(h in _HEX for h in hexpair):
                _fail(code, f"{what} has a malformed percent-escape {text[i : i + 3]!r}")
            decoded = chr(int(hexpair, 16))
            if decoded not in CSET82:
                _fail(Code.ILLEGAL_CHARACTER, f"{what} escape %{hexpair} decodes to {decoded!r}, outside set 82")
            out.append(decoded)
            i += 3
        elif c in raw_ok:
            out.append(c)
            i += 1
        else:
            _fail(Code.ILLEGAL_CHARACTER, f"{what} {text!r} contains {c!r}, which is not allowed unescaped")
    if not out:
        _fail(code, f"{what} is empty")
    return _check_x("".join(out), what)


def escape_epc_component(value: str) -> str:
    """Percent-encode ``" % & / < > ?`` (EPC Tag Data Standard) in a set-82 serial or extension."""
    _check_x(value, "EPC URN component")
    return "".join(f"%{ord(c):02X}" if c in _EPC_RESERVED else c for c in value)


def unescape_epc_component(text: str) -> str:
    """Decode an EPC URN serial or extension: raw set-82 characters plus ``%XX`` escapes of set-82 characters."""
    return _unescape(text, _EPC_RAW, Code.MALFORMED_URN, "EPC URN component")


def _dl_encode(value: str) -> str:
    return "".join(c if c in _UNRESERVED else f"%{ord(c):02X}" for c in value)


def _dl_decode(text: str, ai: str) -> str:
    return _unescape(text, _DL_RAW, Code.MALFORMED_DIGITAL_LINK, f"Digital Link AI ({ai}) value")


def _urn_fields(text: str, scheme: str, count: int) -> list[str]:
    prefix = f"urn:epc:id:{scheme}:"
    if not isinstance(text, str) or text[: len(prefix)].lower() != prefix:
        _fail(Code.MALFORMED_URN, f"expected a URN starting with {prefix!r}, got {text!r}")
    fields = text[len(prefix) :].split(".", count - 1)
    if len(fields) != count:
        _fail(Code.MALFORMED_URN, f"{text!r} must have {count} dot-separated components after {prefix!r}")
    return fields


@dataclass(frozen=True, slots=True)
class SGTIN:
    """Serialised GTIN: ``urn:epc:id:sgtin:<company_prefix>.<item_ref>.<serial>``.

    ``item_ref`` is the indicator digit followed by the item reference (13 digits with the prefix);
    ``serial`` is the decoded AI (21) value.
    """

    company_prefix: str
    item_ref: str
    serial: str

    def __post_init__(self) -> None:
        _check_split(self.company_prefix, self.item_ref, 13, "SGTIN", Code.MALFORMED_IDENTIFIER)
        _check_x(self.serial, "SGTIN serial")

    @classmethod
    def from_gtin(cls, gtin: str, serial: str, company_prefix_length: int) -> SGTIN:
        g, n = parse_gtin(gtin), _check_cpl(company_prefix_length)
        return cls(g[1 : 1 + n], g[0] + g[1 + n : 13], serial)

    @property
    def company_prefix_length(self) -> int:
        return len(self.company_prefix)

    @property
    def gtin(self) -> str:
        body = self.item_ref[0] + self.company_prefix + self.item_ref[1:]
        return body + str(check_digit(body))

    @property
    def urn(self) -> str:
        return f"urn:epc:id:sgtin:{self.company_prefix}.{self.item_ref}.{escape_epc_component(self.serial)}"

    def product_identifier(self) -> ProductIdentifier:
        return ProductIdentifier(self.gtin, serial=self.serial)

    def digital_link(self, domain: str = DEFAULT_DL_DOMAIN) -> str:
        return self.product_identifier().digital_link(domain)


def parse_sgtin_urn(text: str) -> SGTIN:
    """Parse ``urn:epc:id:sgtin:CompanyPrefix.IndicatorItemRef.Serial``."""
    prefix, ref, serial = _urn_fields(text, "sgtin", 3)
    _check_split(prefix, ref, 13, "SGTIN URN", Code.MALFORMED_URN)
    return SGTIN(prefix, ref, unescape_epc_component(serial))


@dataclass(frozen=True, slots=True)
class SSCC:
    """Serial Shipping Container Code: ``urn:epc:id:sscc:<company_prefix>.<serial_ref>``.

    ``serial_ref`` is the extension digit followed by the serial reference (17 digits with the prefix).
    """

    company_prefix: str
    serial_ref: str

    def __post_init__(self) -> None:
        _check_split(self.company_prefix, self.serial_ref, 17, "SSCC", Code.MALFORMED_IDENTIFIER)

    @classmethod
    def from_sscc(cls, sscc: str, company_prefix_length: int) -> SSCC:
        s, n = parse_sscc(sscc), _check_cpl(company_prefix_length)
        return cls(s[1 : 1 + n], s[0] + s[1 + n : 17])

    @classmethod
    def from_digital_link(cls, uri: str, company_prefix_length: int) -> SSCC:
        path, query = _split_digital_link(uri)
        if path[0][0] != "00" or len(path) != 1:
            _fail(Code.MALFORMED_DIGITAL_LINK, f"{uri!r} is not an SSCC Digital Link (/00/<sscc>)")
        _no_query_ais(query, frozenset(), uri)
        return cls.from_sscc(path[0][1], company_prefix_length)

    @property
    def sscc(self) -> str:
        body = self.serial_ref[0] + self.company_prefix + self.serial_ref[1:]
        return body + str(check_digit(body))

    @property
    def urn(self) -> str:
        return f"urn:epc:id:sscc:{self.company_prefix}.{self.serial_ref}"

    def digital_link(self, domain: str = DEFAULT_DL_DOMAIN) -> str:
        return f"{_check_domain(domain)}/00/{self.sscc}"


def parse_sscc_urn(text: str) -> SSCC:
    """Parse ``urn:epc:id:sscc:CompanyPrefix.ExtensionSerialRef``."""
    prefix, ref = _urn_fields(text, "sscc", 2)
    _check_split(prefix, ref, 17, "SSCC URN", Code.MALFORMED_URN)
    return SSCC(prefix, ref)


@dataclass(frozen=True, slots=True)
class SGLN:
    """Location: ``urn:epc:id:sgln:<company_prefix>.<location_ref>.<extension>``; extension ``"0"`` = none."""

    company_prefix: str
    location_ref: str
    extension: str = "0"

    def __post_init__(self) -> None:
        _check_split(self.company_prefix, self.location_ref, 12, "SGLN", Code.MALFORMED_IDENTIFIER)
        _check_x(self.extension, "SGLN extension")

    @classmethod
    def from_gln(cls, gln: str, company_prefix_length: int, *, extension: str | None = None) -> SGLN:
        g, n = parse_gln(gln), _check_cpl(company_prefix_length)
        return cls(g[:n], g[n:12], "0" if extension is None else extension)

    @classmethod
    def from_digital_link(cls, uri: str, company_prefix_length: int) -> SGLN:
        path, query = _split_digital_link(uri)
        if path[0][0] != "414" or len(path) > 2 or (len(path) == 2 and path[1][0] != "254"):
            _fail(Code.MALFORMED_DIGITAL_LINK, f"{uri!r} is not a GLN Digital Link (/414/<gln>[/254/<ext>])")
        _no_query_ais(query, frozenset(), uri)
        ext = _dl_decode(path[1][1], "254") if len(path) == 2 else None
        return cls.from_gln(path[0][1], company_prefix_length, extension=ext)

    @property
    def gln(self) -> str:
        body = self.company_prefix + self.location_ref
        return body + str(check_digit(body))

    @property
    def urn(self) -> str:
        ext = escape_epc_component(self.extension)
        return f"urn:epc:id:sgln:{self.company_prefix}.{self.location_ref}.{ext}"

    def digital_link(self, domain: str = DEFAULT_DL_DOMAIN) -> str:
        ext = "" if self.extension == "0" else f"/254/{_dl_encode(self.extension)}"
        return f"{_check_domain(domain)}/414/{self.gln}{ext}"


def parse_sgln_urn(text: str) -> SGLN:
    """Parse ``urn:epc:id:sgln:CompanyPrefix.LocationRef.Extension`` (LocationRef may be empty)."""
    prefix, ref, ext = _urn_fields(text, "sgln", 3)
    _check_split(prefix, ref, 12, "SGLN URN", Code.MALFORMED_URN)
    return SGLN(prefix, ref, unescape_epc_component(ext))


def parse_pgln_urn(text: str) -> str:
    """The GLN-13 of a party URN ``urn:epc:id:pgln:CompanyPrefix.PartyRef`` (12 digits before the check digit)."""
    prefix, ref = _urn_fields(text, "pgln", 2)
    _check_split(prefix, ref, 12, "PGLN URN", Code.MALFORMED_URN)
    body = prefix + ref
    return body + str(check_digit(body))


_GLN_DL = re.compile(r"/(414|417)/([0-9]+)(?:/254/[^/?#]+)?/?(?:[?#].*)?$")


def gln_of(identifier: str) -> str | None:
    """The GLN (13 digits) a location or party identifier names: an SGLN or PGLN EPC URN (extension
    dropped) or a GS1 Digital Link ``/414/<gln>[/254/<ext>]`` or ``/417/<gln>``. None for any other
    kind of URI. Raises GS1Error for a malformed URN or GLN (wrong length, check digit)."""
    lower = identifier[:16].lower()
    if lower == "urn:epc:id:sgln:":
        return parse_sgln_urn(identifier).gln
    if lower == "urn:epc:id:pgln:":
        return parse_pgln_urn(identifier)
    if identifier.startswith(("http://", "https://")):
        match = _GLN_DL.search(identifier)
        if match is not None:
            return parse_gln(match[2])
    return None


_Pairs = tuple[tuple[str, str], ...]  # (AI, value still percent-encoded)


def _match_http(uri: str) -> re.Match[str]:
    match = _DL_URI.fullmatch(uri) if isinstance(uri, str) else None
    if match is None or match[1].lower() not in ("http", "https"):
        _fail(Code.MALFORMED_DIGITAL_LINK, f"a Digital Link is an http(s) URI, got {uri!r}")
    if not _HOST.fullmatch(match[2]):
        _fail(Code.MALFORMED_DIGITAL_LINK, f"bad host {match[2]!r} in {uri!r}")
    return match


def _check_domain(domain: str) -> str:
    """``http(s)://host[:port][/prefix…]`` without query or fragment; returned without a trailing slash."""
    match = _match_http(domain)
    if match[4] is not None or "#" in domain:
        _fail(Code.MALFORMED_DIGITAL_LINK, f"Digital Link domain must be http(s)://host[/prefix], got {domain!r}")
    path = match[3].rstrip("/")
    if path and not all(seg and set(seg) <= _PCHAR for seg in path[1:].split("/")):
        _fail(Code.MALFORMED_DIGITAL_LINK, f"bad path prefix {path!r} in {domain!r}")
    return f"{match[1].lower()}://{match[2]}{path}"


def _split_digital_link(uri: str) -> tuple[_Pairs, _Pairs]:
    """(path pairs from the primary key on, query pairs with numeric keys); convenience alphas mapped to AIs."""
    match = _match_http(uri)
    segments = match[3].split("/")[1:]
    # The primary key is the last /<00|01|414>/ with whole AI/value pairs after it: anything before it is a
    # path prefix (key qualifiers are never primary keys, so a prefix that looks like a key cannot win).
    starts = [
        i for i, seg in enumerate(segments) if _DL_ALIASES.get(seg, seg) in _DL_PRIMARY and (len(segments) - i) % 2 == 0
    ]
    start = starts[-1] if starts else None
    if start is None:
        _fail(Code.MALFORMED_DIGITAL_LINK, f"{uri!r} has no /01/, /00/ or /414/ primary key followed by AI/value pairs")
    if not all(seg and set(seg) <= _PCHAR for seg in segments[:start]):
        _fail(Code.MALFORMED_DIGITAL_LINK, f"bad path prefix before the primary key in {uri!r}")
    path: list[tuple[str, str]] = []
    for j in range(start, len(segments), 2):
        key, value = _DL_ALIASES.get(segments[j], segments[j]), segments[j + 1]
        if not _is_digits(key) or not value:
            _fail(Code.MALFORMED_DIGITAL_LINK, f"path pair /{segments[j]}/{value} in {uri!r} is not /<AI>/<value>")
        path.append((key, value))
    query: list[tuple[str, str]] = []
    for part in (match[4] or "").split("&"):
        name, sep, value = part.partition("=")
        key = _DL_ALIASES.get(name, name)
        if not _is_digits(key):
            continue  # empty parts and non-GS1 attributes (linkType, context, …) carry no identity
        if not sep or not value:
            _fail(Code.MALFORMED_DIGITAL_LINK, f"query parameter {part!r} in {uri!r} has no value")
        if any(k == key for k, _ in query) or any(k == key for k, _ in path):
            _fail(Code.MALFORMED_DIGITAL_LINK, f"AI ({key}) appears more than once in {uri!r}")
        query.append((key, value))
    return tuple(path), tuple(query)


def _no_query_ais(query: _Pairs, allowed: frozenset[str], uri: str) -> None:
    for key, _ in query:
        if key not in allowed:
            code = Code.MALFORMED_DIGITAL_LINK if key in {*_AI_LENGTH, *_DL_PRIMARY, "254"} else Code.UNSUPPORTED_AI
            _fail(code, f"AI ({key}) is not supported as a query attribute here: {uri!r}")


def parse_digital_link(uri: str) -> ProductIdentifier:
    """Parse a GS1 Digital Link on any domain: ``…/01/<gtin14>[/10/<lot>][/21/<serial>][?17=YYMMDD&10=<lot>]``.

    Convenience alphas (``gtin``, ``lot``, ``ser``, ``exp``) are accepted; non-AI query parameters are ignored.
    """
    path, query = _split_digital_link(uri)
    key, gtin = path[0]
    if key != "01":
        _fail(Code.MALFORMED_DIGITAL_LINK, f"{uri!r} identifies AI ({key}), not a trade item (01)")
    if not _is_digits(gtin) or len(gtin) != 14:
        _fail(Code.MALFORMED_DIGITAL_LINK, f"a Digital Link GTIN must be 14 digits, got {gtin!r} in {uri!r}")
    values: dict[str, str] = {}
    order = {"10": 1, "21": 2}
    last = 0
    for ai, raw in path[1:]:
        if ai not in order:
            code = Code.UNSUPPORTED_AI if ai in ("22", "235") else Code.MALFORMED_DIGITAL_LINK
            _fail(code, f"AI ({ai}) is not a supported key qualifier of (01) in {uri!r}")
        if order[ai] <= last:
            _fail(Code.MALFORMED_DIGITAL_LINK, f"key qualifiers must follow the order 10, 21, once each: {uri!r}")
        last = order[ai]
        values[ai] = _dl_decode(raw, ai)
    _no_query_ais(query, frozenset({"17", "10"}), uri)
    for ai, raw in query:
        values[ai] = validate_yymmd0(raw) if ai == "17" else _dl_decode(raw, ai)
    return ProductIdentifier(gtin, serial=values.get("21"), lot=values.get("10"), expiry=values.get("17"))


def _scan_raw(text: str) -> list[tuple[str, str]]:
    s = text
    if s.startswith("]"):
        if s[:3] not in SYMBOLOGY_IDENTIFIERS:
            _fail(Code.MALFORMED_ELEMENT_STRING, f"unknown symbology identifier {s[:3]!r}")
        s = s[3:]
    if s.startswith(GS):
        s = s[1:]  # FNC1 in first position, transmitted by some scanners
    if not s:
        _fail(Code.MALFORMED_ELEMENT_STRING, "element string has no data")
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(s):
        ai = s[pos : pos + 2]
        if ai not in _AI_LENGTH:
            if GS in ai:
                _fail(Code.MALFORMED_ELEMENT_STRING, f"unexpected separator at position {pos}")
            digits = _is_digits(ai) and len(ai) == 2
            _fail(
                Code.UNSUPPORTED_AI if digits else Code.MALFORMED_ELEMENT_STRING,
                f"unsupported or malformed AI starting {s[pos : pos + 4]!r} at position {pos}"
                " (supported: 01, 10, 17, 21)",
            )
        pos += 2
        length = _AI_LENGTH[ai]
        if length is not None:
            value = s[pos : pos + length]
            if len(value) < length or GS in value:
                _fail(Code.MALFORMED_ELEMENT_STRING, f"AI ({ai}) needs exactly {length} characters, got {value!r}")
            pos += length
            if s[pos : pos + 1] == GS:
                pos += 1  # a separator after a fixed-length field is superfluous but harmless
        else:
            end = s.find(GS, pos)
            end = len(s) if end < 0 else end
            value, pos = s[pos:end], end + 1
            if not value:
                _fail(Code.MALFORMED_ELEMENT_STRING, f"AI ({ai}) has an empty value")
        pairs.append((ai, value))
    return pairs


def _scan_bracketed(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        close = text.find(")", pos)
        if text[pos] != "(" or close < 0:
            _fail(Code.MALFORMED_ELEMENT_STRING, f"expected '(AI)' at position {pos} of {text!r}")
        ai = text[pos + 1 : close]
        if ai not in _AI_LENGTH:
            digits = _is_digits(ai) and 2 <= len(ai) <= 4
            _fail(Code.UNSUPPORTED_AI if digits else Code.MALFORMED_ELEMENT_STRING, f"unsupported AI ({ai})")
        buf: list[str] = []
        i = close + 1
        while i < len(text) and text[i] != "(":
            if text[i] == "\\":
                if text[i + 1 : i + 2] != "(":
                    _fail(Code.ILLEGAL_CHARACTER, f"AI ({ai}): a backslash may only escape '(' in {text!r}")
                i += 1
            buf.append(text[i])
            i += 1
        value, pos = "".join(buf), i
        length = _AI_LENGTH[ai]
        if not value or (length is not None and len(value) != length):
            want = "a non-empty value" if length is None else f"exactly {length} characters"
            _fail(Code.MALFORMED_ELEMENT_STRING, f"AI ({ai}) needs {want}, got {value!r}")
        pairs.append((ai, value))
    return pairs


def parse_element_string(text: str) -> ProductIdentifier:
    """Parse a scanned element string (optional ``]d2``/``]Q3``/``]C1``/``]e0``, GS as FNC1) or the
    bracketed human-readable form ``(01)…(17)…(10)…(21)…`` (``\\(`` escapes a literal parenthesis)."""
    if not isinstance(text, str) or not text:
        _fail(Code.MALFORMED_ELEMENT_STRING, f"element string must be a non-empty string, got {text!r}")
    pairs = _scan_bracketed(text) if text.startswith("(") else _scan_raw(text)
    values: dict[str, str] = {}
    for ai, value in pairs:
        if values.setdefault(ai, value) != value:
            _fail(Code.MALFORMED_ELEMENT_STRING, f"AI ({ai}) appears twice with different values")
    if "01" not in values:
        _fail(Code.MALFORMED_ELEMENT_STRING, f"element string {text!r} has no GTIN, AI (01)")
    return ProductIdentifier(values["01"], serial=values.get("21"), lot=values.get("10"), expiry=values.get("17"))


@dataclass(frozen=True, slots=True)
class ProductIdentifier:
    """A pack's GS1 data: GTIN (normalised to 14 digits), serial (21), lot (10), expiry (17, ``YYMMD0`` as encoded).

    The expiry keeps its barcode form so that day 00 and the century survive a round trip; use
    :meth:`expiry_iso` / :meth:`expiry_epoch_days` with an explicit reference year to read it as a date.
    """

    gtin: str
    serial: str | None = None
    lot: str | None = None
    expiry: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gtin", parse_gtin(self.gtin))
        if self.serial is not None:
            _check_x(self.serial, "serial (21)")
        if self.lot is not None:
            _check_x(self.lot, "lot (10)")
        if self.expiry is not None:
            validate_yymmd0(self.expiry)

    def expiry_iso(self, *, reference_year: int) -> str | None:
        """Expiry as ``YYYY-MM-DD`` (day 00 → last day of the month), or None."""
        return None if self.expiry is None else yymmd0_to_iso(self.expiry, reference_year=reference_year)

    def expiry_epoch_days(self, *, reference_year: int) -> int | None:
        """Expiry as whole days since 1970-01-01 UTC, or None."""
        return None if self.expiry is None else yymmd0_to_epoch_days(self.expiry, reference_year=reference_year)

    def element_string(self, *, symbology_identifier: bool = False) -> str:
        """Barcode data: fixed-length AIs first (01, 17), then 10, then 21; GS only between variable fields."""
        out = ["]d2" if symbology_identifier else "", "01", self.gtin]
        if self.expiry is not None:
            out += ["17", self.expiry]
        if self.lot is not None:
            out += ["10", self.lot, GS if self.serial is not None else ""]
        if self.serial is not None:
            out += ["21", self.serial]
        return "".join(out)

    def bracketed(self) -> str:
        """Human-readable form ``(01)…(17)…(10)…(21)…``, a literal ``(`` in a value written ``\\(``."""
        out = [f"(01){self.gtin}"]
        for ai, value in (("17", self.expiry), ("10", self.lot), ("21", self.serial)):
            if value is not None:
                out.append(f"({ai}){value.replace('(', chr(92) + '(')}")
        return "".join(out)

    def digital_link(self, domain: str = DEFAULT_DL_DOMAIN, *, lot_in_query: bool = False) -> str:
        """``{domain}/01/{gtin}[/10/{lot}][/21/{serial}][?17={expiry}[&10={lot}]]``, values percent-encoded."""
        path, query = [f"{_check_domain(domain)}/01/{self.gtin}"], []
        if self.lot is not None and not lot_in_query:
            path.append(f"/10/{_dl_encode(self.lot)}")
        if self.serial is not None:
            path.append(f"/21/{_dl_encode(self.serial)}")
        if self.expiry is not None:
            query.append(f"17={self.expiry}")
        if self.lot is not None and lot_in_query:
            query.append(f"10={_dl_encode(self.lot)}")
        return "".join(path) + ("?" + "&".join(query) if query else "")

    def sgtin(self, company_prefix_length: int) -> SGTIN:
        """The SGTIN of a serialised pack (lot and expiry are not part of an SGTIN)."""
        if self.serial is None:
            _fail(Code.MALFORMED_IDENTIFIER, f"GTIN {self.gtin} has no serial (21): it has no SGTIN")
        return SGTIN.from_gtin(self.gtin, self.serial, company_prefix_length)


def element_string_to_digital_link(text: str, domain: str = DEFAULT_DL_DOMAIN) -> str:
    return parse_element_string(text).digital_link(domain)


def digital_link_to_element_string(uri: str, *, symbology_identifier: bool = False) -> str:
    return parse_digital_link(uri).element_string(symbology_identifier=symbology_identifier)


def sgtin_urn_to_digital_link(urn: str, domain: str = DEFAULT_DL_DOMAIN) -> str:
    return parse_sgtin_urn(urn).digital_link(domain)


def digital_link_to_sgtin_urn(uri: str, company_prefix_length: int) -> str:
    return parse_digital_link(uri).sgtin(company_prefix_length).urn


def sgtin_urn_to_gtin(urn: str) -> tuple[str, str]:
    """``(GTIN-14, serial)`` of an SGTIN URN."""
    sgtin = parse_sgtin_urn(urn)
    return sgtin.gtin, sgtin.serial


def gtin_to_sgtin_urn(gtin: str, serial: str, company_prefix_length: int) -> str:
    return SGTIN.from_gtin(gtin, serial, company_prefix_length).urn
