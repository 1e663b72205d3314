"""FHIR search for the facade: parameters, their parsing and matching, resource providers, paging.

A **provider** serves one resource type (:class:`ResourceProvider`): it declares its search
parameters (:class:`SearchParam`, for the CapabilityStatement and for parsing), reads one resource
by id and answers a parsed :class:`Query` with one :class:`Page`. Most providers serve rows of
committed ledger state about one patient and subclass :class:`LedgerResources`, which supplies
read, search, filtering and paging from five small methods (find, patient_of, rows, to_fhir and,
optionally, the access rule). The facade (:mod:`.fhir_facade`) holds the providers by type.

Search parameters follow FHIR R4 search (http://hl7.org/fhir/R4/search.html):

* ``patient`` (reference): ``pt-…`` or ``Patient/pt-…``; a patient's own key may leave it out;
* date parameters: ``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]][Z|±hh:mm]]]]`` with the prefixes
  ``eq ne gt lt ge le sa eb`` (``ap`` is not supported); a value without a zone is UTC;
* token parameters: ``code``, ``system|code``, ``|code`` or ``system|``;
* reference parameters: ``Type/id`` or ``id``;
* a comma inside one parameter means *or*; repeating a parameter means *and*;
* ``_count`` (0 to :data:`MAX_COUNT`; larger asks get :data:`MAX_COUNT`), ``_offset`` (the paging
  links carry it) and ``_format`` (JSON forms only).

Anything else, and any modifier, is refused with FHIR_SEARCH_INVALID, unless the request asks for
lenient handling (``Prefer: handling=lenient``), which ignores it and leaves it out of the links.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar
from urllib.parse import quote, urlencode

from careledger.core.errors import Code, LedgerError
from careledger.core.state import StateReader
from careledger.vault.fhir_access import Access

R = TypeVar("R")
ParamType = Literal["date", "token", "reference"]
DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OFFSET = 10_000_000
JSON_FORMATS = ("json", "application/json", "application/fhir+json")
PSEUDONYM = re.compile(r"^pt-[0-9a-f]{32}$")
_DATE = re.compile(r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<y>[0-9]{4})(?:-(?P<m>[0-9]{2})(?:-(?P<d>[0-9]{2})"
                   r"(?:T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
                   r"(?P<tz>Z|[+\- ][0-9]{2}:[0-9]{2})?)?)?)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
DAY_MS = 86_400_000


def invalid(message: str) -> LedgerError:
    """A FHIR_SEARCH_INVALID refusal (never echoing more than a short prefix of the value)."""
    return LedgerError(message, Code.FHIR_SEARCH_INVALID)


# --- parameters ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchParam(Generic[R]):
    """One search parameter of a provider: its FHIR name, type and definition, and the value a row has
    for it (date: ms since the epoch or None; token: ``(system, code)`` pairs; reference: ``Type/id``
    strings)."""

    name: str
    type: ParamType
    definition: str
    documentation: str
    value: Callable[[R], Any] = field(compare=False, repr=False)


PATIENT = SearchParam[Any]("patient", "reference", "http://hl7.org/fhir/SearchParameter/clinical-patient",
                           "The patient's pseudonym (pt-…, or Patient/pt-…)", lambda row: ())


@dataclass(frozen=True)
class DateBound:
    """``prefix`` applied to the instant range [lo, hi) (ms) that a date value denotes."""

    prefix: str
    lo: int
    hi: int

    def matches(self, t: Any) -> bool:
        """Does the instant ``t`` (ms, or None for a row without one) satisfy the bound?"""
        if t is None:
            return False
        if self.prefix in ("gt", "sa"):
            return bool(t >= self.hi)
        if self.prefix == "ge":
            return bool(t >= self.lo)
        if self.prefix in ("lt", "eb"):
            return bool(t < self.lo)
        if self.prefix == "le":
            return bool(t < self.hi)
        inside = self.lo <= t < self.hi
        return not inside if self.prefix == "ne" else inside


@dataclass(frozen=True)
class TokenMatch:
    system: str | None  # None: any system
    code: str | None  # None: any code

    def matches(self, pairs: Any) -> bool:
        return any((self.system is None or s == self.system) and (self.code is None or c == self.code)
                   for s, c in pairs)


@dataclass(frozen=True)
class ReferenceMatch:
    reference: str

    def matches(self, refs: Any) -> bool:
        if "/" in self.reference:
            return self.reference in refs
        return any(r.rsplit("/", 1)[-1] == self.reference for r in refs)


Predicate = DateBound | TokenMatch | ReferenceMatch


@dataclass(frozen=True)
class Criterion:
    """One occurrence of a parameter: the row matches if any alternative does."""

    param: SearchParam[Any]
    alternatives: tuple[Predicate, ...]

    def matches(self, row: Any) -> bool:
        value = self.param.value(row)
        return any(p.matches(value) for p in self.alternatives)


@dataclass(frozen=True)
class Query:
    """A parsed search: the patient it names (if any), the criteria (all must hold), the page asked
    for, and the parameters as understood (what the paging links repeat)."""

    patient: str | None
    criteria: tuple[Criterion, ...]
    count: int = DEFAULT_COUNT
    offset: int = 0
    used: tuple[tuple[str, str], ...] = ()

    def matches(self, row: Any) -> bool:
        return all(c.matches(row) for c in self.criteria)


def _split_or(value: str) -> list[str]:
    """A parameter value's comma-separated alternatives (``\\,`` is a literal comma)."""
    parts, current, escaped = [], [], False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_date(name: str, text: str) -> DateBound:
    """A date search value as a prefix over the instant range it denotes; FHIR_SEARCH_INVALID otherwise."""
    m = _DATE.match(text)
    if m is None:
        raise invalid(f"{name}: {text[:40]!r} is not a FHIR date (e.g. ge2024-01-31 or 2024-01-31T10:00:00Z)")
    prefix = m["prefix"] or "eq"
    if prefix == "ap":
        raise invalid(f"{name}: the 'ap' (approximately) prefix is not supported")
    try:
        tz = UTC
        if m["tz"] and m["tz"] != "Z":
            sign = -1 if m["tz"][0] == "-" else 1  # a '+' sent unescaped in a query string arrives as ' '
            hours, minutes = int(m["tz"][1:3]), int(m["tz"][4:6])
            tz = timezone_of(sign * (hours * 60 + minutes))
        year, month = int(m["y"]), int(m["m"] or 1)
        fraction = (m["f"] or "").ljust(6, "0")[:6]
        lo = datetime(year, month, int(m["d"] or 1), int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0),
                      int(fraction or 0), tzinfo=tz)
    except (ValueError, OverflowError):
        raise invalid(f"{name}: {text[:40]!r} is not a valid date") from None
    # the width of the range the value names, in ms (integer arithmetic: year 9999 has an end too)
    if m["f"] is not None:
        width = 10 ** (3 - len(m["f"])) if len(m["f"]) <= 3 else 1
    elif m["S"] is not None:
        width = 1000
    elif m["M"] is not None:
        width = 60_000
    elif m["d"] is not None:
        width = DAY_MS
    elif m["m"] is not None:
        width = calendar.monthrange(year, month)[1] * DAY_MS
    else:
        width = (366 if calendar.isleap(year) else 365) * DAY_MS
    start = (lo - _EPOCH) // _MS
    return DateBound(prefix, start, start + width)


def timezone_of(minutes: int) -> timezone:
    """A fixed UTC offset of ``minutes``; ValueError beyond ±14 hours."""
    if not -14 * 60 <= minutes <= 14 * 60:
        raise ValueError("time zone offset out of range")
    return timezone(timedelta(minutes=minutes))


def _parse_token(text: str) -> TokenMatch:
    if "|" not in text:
        return TokenMatch(None, text or None)
    system, _, code = text.partition("|")
    return TokenMatch(system, code or None) if system else TokenMatch("", code or None)


def _parse_int(name: str, text: str, lo: int, hi: int) -> int:
    if not text.isdigit() or len(text) > 9 or not lo <= int(text) <= hi:
        raise invalid(f"{name} must be an integer from {lo} to {hi}")
    return int(text)


def parse_patient(text: str) -> str:
    """``pt-…`` or ``Patient/pt-…``; FHIR_SEARCH_INVALID otherwise."""
    value = text.removeprefix("Patient/")
    if not PSEUDONYM.match(value):
        raise invalid("patient must be a pseudonym: pt- and 32 hex digits, or Patient/pt-…")
    return value


def parse_query(params: Sequence[tuple[str, str]], search_params: Sequence[SearchParam[Any]],
                *, lenient: bool = False) -> Query:
    """Parse a search's query parameters against a provider's declared ones (see the module docstring).

    Raises FHIR_SEARCH_INVALID for an unknown or unsupported parameter or modifier (unless
    ``lenient``), a malformed value, or a second ``patient``.
    """
    declared = {p.name: p for p in search_params}
    patient: str | None = None
    criteria: list[Criterion] = []
    used: list[tuple[str, str]] = []
    count, offset = DEFAULT_COUNT, 0
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if name == "_count" and not modifier:
            count = min(_parse_int("_count", value, 0, 1_000_000_000), MAX_COUNT)
            continue
        if name == "_offset" and not modifier:
            offset = _parse_int("_offset", value, 0, MAX_OFFSET)
            continue
        if name == "_format" and not modifier:
            if value not in JSON_FORMATS:
                raise invalid("_format: this server speaks FHIR JSON only")
            continue
        param = declared.get(name)
        if param is None or modifier:
            if lenient:
                continue
            what = f"modifier :{modifier[:20]}" if param is not None else "parameter"
            known = ", ".join([*sorted(declared), "_count", "_offset"])
            raise invalid(f"search {what} {raw_name[:40]!r} is not supported here (supported: {known})")
        if param.name == "patient":
            if patient is not None:
                raise invalid("patient may be given once")
            patient = parse_patient(value)
            used.append((name, value))
            continue
        alternatives: list[Predicate] = []
        for alt in _split_or(value):
            if param.type == "date":
                alternatives.append(parse_date(name, alt))
            elif param.type == "token":
                alternatives.append(_parse_token(alt))
            else:
                if not alt or len(alt) > 200:
                    raise invalid(f"{name}: a reference is Type/id or id")
                alternatives.append(ReferenceMatch(alt))
        criteria.append(Criterion(param, tuple(alternatives)))
        used.append((name, value))
    return Query(patient, tuple(criteria), count, offset, tuple(used))


# --- pages and providers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    """One page of a search: how many matched in all, and the resources of this page (``outcomes``:
    OperationOutcome resources about entries that could not be included)."""

    total: int
    resources: list[dict[str, Any]]
    outcomes: list[dict[str, Any]] = field(default_factory=list)


class ResourceProvider(Protocol):
    """What the facade needs of the provider of one resource type."""

    @property
    def resource_type(self) -> str: ...

    @property
    def search_params(self) -> Sequence[SearchParam[Any]]: ...

    def read(self, access: Access, resource_id: str) -> dict[str, Any]:
        """The resource; raises a LedgerError (a not-found code, or the access refusal)."""
        ...

    def search(self, access: Access, query: Query) -> Page:
        """The page ``query`` asks for; raises a LedgerError (the access refusal)."""
        ...


def search_patient(access: Access, requested: str | None) -> str:
    """The patient a search is about: the one named, or the requester's own pseudonym when a patient's
    key leaves it out; FHIR_SEARCH_INVALID when anyone else leaves it out."""
    if requested is not None:
        return requested
    own = access.own_pseudonym
    if own is None:
        raise invalid("name the patient (patient=pt-…): searches are per patient")
    return own


class LedgerResources(Generic[R]):
    """A provider over rows of committed ledger state about one patient at a time.

    Subclasses set :attr:`resource_type`, :attr:`search_params` (``PATIENT`` first),
    :attr:`id_pattern`, :attr:`not_found` and implement :meth:`find`, :meth:`patient_of`,
    :meth:`rows` and :meth:`to_fhir`. By default only the patient or an active delegate sees the rows
    (:meth:`authorise`); a provider with another rule overrides :meth:`authorise` (per patient, before
    a search), :meth:`check_row` (a read by id) and :meth:`visible` (each row of a search).
    """

    resource_type: ClassVar[str]
    search_params: ClassVar[tuple[SearchParam[Any], ...]]
    id_pattern: ClassVar[re.Pattern[str]]
    not_found: ClassVar[Code] = Code.NOT_FOUND

    def find(self, view: StateReader, resource_id: str) -> R | None:
        raise NotImplementedError

    def patient_of(self, row: R) -> str:
        raise NotImplementedError

    def rows(self, access: Access, patient: str) -> Iterable[R]:
        """The patient's rows in a stable order (the order of the searchset)."""
        raise NotImplementedError

    def to_fhir(self, row: R) -> dict[str, Any]:
        raise NotImplementedError

    def authorise(self, access: Access, patient: str) -> None:
        """May the requester see this patient's rows at all? Raises NOT_PATIENT_OR_DELEGATE."""
        access.require_acts_for(patient)

    def check_row(self, access: Access, row: R) -> None:
        """May the requester read this row by id? Raises the refusal (default: :meth:`authorise`)."""
        self.authorise(access, self.patient_of(row))

    def visible(self, access: Access, row: R) -> bool:
        """Does a search show this row (after :meth:`authorise` passed for its patient)?"""
        return True

    def read(self, access: Access, resource_id: str) -> dict[str, Any]:
        """Raises :attr:`not_found` (an id of the wrong form, or nothing under it) and the access refusal."""
        row = self.find(access.view, resource_id) if self.id_pattern.match(resource_id) else None
        if row is None:
            raise LedgerError(f"no {self.resource_type} {resource_id[:80]}", self.not_found)
        self.check_row(access, row)
        return self.to_fhir(row)

    def search(self, access: Access, query: Query) -> Page:
        patient = search_patient(access, query.patient)
        self.authorise(access, patient)
        matched = [r for r in self.rows(access, patient) if query.matches(r) and self.visible(access, r)]
        page = matched[query.offset:query.offset + query.count]
        return Page(len(matched), [self.to_fhir(r) for r in page])


# --- the searchset Bundle -----------------------------------------------------------------------------------

def search_url(base: str, resource_type: str, query: Query, offset: int) -> str:
    """The URL of one page of ``query``: its understood parameters, then ``_count`` and ``_offset``."""
    params = [*query.used, ("_count", str(query.count)), ("_offset", str(offset))]
    return f"{base}/{resource_type}?{urlencode(params, quote_via=quote, safe='/:|')}"


def paging_links(base: str, resource_type: str, query: Query, total: int) -> list[dict[str, str]]:
    """self, first, previous, next and last links for the page ``query`` asked for."""
    count, offset = query.count, query.offset
    links = [("self", offset), ("first", 0)]
    if count > 0:
        if offset > 0:
            links.append(("previous", max(0, offset - count)))
        if offset + count < total:
            links.append(("next", offset + count))
        links.append(("last", max(0, (total - 1) // count * count)))
    return [{"relation": rel, "url": search_url(base, resource_type, query, at)} for rel, at in links]


def searchset(base: str, resource_type: str, query: Query, page: Page) -> dict[str, Any]:
    """A searchset Bundle: total, paging links, each match with its full URL, then any outcomes."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in page.resources]
    entries += [{"resource": o, "search": {"mode": "outcome"}} for o in page.outcomes]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": page.total,
                              "link": paging_links(base, resource_type, query, page.total)}
    if entries:
        bundle["entry"] = entries
    return bundle


__all__ = ["DEFAULT_COUNT", "MAX_COUNT", "PATIENT", "Criterion", "DateBound", "LedgerResources", "Page",
           "Query", "ReferenceMatch", "ResourceProvider", "SearchParam", "TokenMatch", "invalid", "paging_links",
           "parse_date", "parse_patient", "parse_query", "search_patient", "search_url", "searchset"]
