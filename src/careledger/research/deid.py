"""HIPAA Safe Harbor de-identification of FHIR R4 resources, driven by a configuration (pure).

:class:`Deidentifier` applies a :class:`~careledger.research.config.DeidConfig` to resources in the
vault's exact form (decimals as ``{"$decimal": text}``, see :mod:`careledger.vault.canonical`). For
each node it finds the first matching rule (see :mod:`.config`) and:

* ``keep``: leaves the value as it is;
* ``cryptoHash``: replaces it with HMAC-SHA256(key, value) in hex; a ``Reference.reference`` keeps
  its resource type (``Patient/<hash>``; an ``urn:uuid:`` reference is resolved to its type through
  the patient's own records), so references still join inside the release;
* ``redact``: removes it, except, with the partial-redaction parameters, that a ``date`` or
  ``dateTime`` keeps its year (and is removed when that date shows an age over 89, §164.514(b)(2)(i)(C)),
  an ``instant`` is removed (it cannot be partial), an ``Age`` of 89 years or less is kept, and an
  ``Address.postalCode`` becomes its ZIP3 or ``000`` (:mod:`.zip3`).

Keys that are not elements of their type (``_birthDate`` primitive extensions, anything unknown) are
removed. Empty objects and lists left behind are removed. No clock: the reference date for ages is
the release's ``as_of`` day, passed in.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from careledger.research.config import DeidConfig
from careledger.research.fhirtypes import elements_of

AGE_LIMIT = 89
"""Ages above this, and dates that show them, are removed (Safe Harbor's "90 or older")."""
_DROP = object()
_MISSING = object()
_CACHE_LIMIT = 65_536
_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_AGE_YEARS_PER_UNIT = {"a": Decimal(1), "mo": Decimal(1) / 12, "wk": Decimal(1) / 52, "d": Decimal(1) / 365,
                       "h": Decimal(0), "min": Decimal(0)}
_REF = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
NORMAL, DATE, POSTAL, REFERENCE, AGE = range(5)


def date_of_day(day: int) -> datetime.date:
    """The calendar date of an integer UTC day number (days since 1970-01-01)."""
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=day)


def age_on(text: str, as_of: datetime.date) -> int | None:
    """Full years from the FHIR date/dateTime ``text`` to ``as_of``; with only a year (or year and
    month) known, the largest age it could mean. None when ``text`` is not a FHIR date."""
    m = _DATE.match(text)
    if m is None:
        return None
    year = int(m.group(1))
    month = int(m.group(2)) if m.group(2) else 1
    day = int(m.group(3)) if m.group(3) else 1
    return as_of.year - year - (1 if (as_of.month, as_of.day) < (month, day) else 0)


def is_age_over_limit(text: str, as_of: datetime.date) -> bool:
    """Does the date ``text`` show an age over 89 on ``as_of`` (or is it not a date at all)?"""
    age = age_on(text, as_of)
    return age is None or age > AGE_LIMIT


def decimal_of(value: Any) -> Decimal | None:
    """The number of an exact-form JSON value (an int or a tagged decimal), else None."""
    if type(value) is int:
        return Decimal(value)
    if type(value) is dict and len(value) == 1 and "$decimal" in value:
        try:
            return Decimal(value["$decimal"])
        except InvalidOperation:
            return None
    return None


class _Plan:
    """What to do at one element path of one resource type (built once, reused for every resource)."""

    __slots__ = ("children", "kind", "method", "names", "rule", "type", "types", "unsafe")

    def __init__(self, fhir_type: str, names: tuple[str, ...], types: tuple[str, ...], rule: int, method: str,
                 kind: int) -> None:
        self.type = fhir_type
        self.names = names
        self.types = types
        self.rule = rule
        self.method = method
        self.kind = kind
        self.children: dict[str, _Plan | None] = {}
        self.unsafe = unsafe_reason(names, types, method)

    def path(self, resource_type: str) -> str:
        return ".".join((resource_type, *self.names))


FORBIDDEN_TYPES = frozenset({"HumanName", "ContactPoint", "Identifier", "Attachment", "Narrative", "Annotation",
                             "base64Binary", "instant", "url", "uuid", "oid", "markdown", "Signature", "Extension",
                             "xhtml"})
"""Types whose content no release may carry (Safe Harbor A, D-K, M, N, Q, R; free text)."""
QUANTITY_TYPES = frozenset({"Quantity", "SimpleQuantity", "Age", "Duration", "Distance", "Count", "Money"})


def unsafe_reason(names: tuple[str, ...], types: tuple[str, ...], method: str) -> str | None:
    """Why keeping a value at this element (with this method) would break Safe Harbor, or None.

    Judged once per element path, whatever the configuration says: content of a forbidden type kept,
    a date or postal code or age kept whole, free text kept, an address part below a State, an
    unpseudonymised reference or resource id.
    """
    if not types:
        return None
    own, parent = types[-1], (types[-2] if len(types) > 1 else "")
    name = names[-1]
    if method == "cryptoHash":
        return None
    if method == "redact":
        return None  # removed, or partially redacted by the rules for dates, ages and postal codes
    forbidden = next((t for t in types if t in FORBIDDEN_TYPES), None)
    if forbidden is not None:
        return f"{forbidden} content kept"
    if own in ("date", "dateTime"):
        return "a whole date kept"
    if "Age" in types:
        return "an age kept whole"
    if parent == "Address" and name not in ("state", "country"):
        return "an address part smaller than a State kept"
    if parent == "Reference" and name == "reference":
        return "a reference kept unpseudonymised"
    if len(names) == 1 and name == "id":
        return "a resource id kept"
    if own == "string" and not (parent in QUANTITY_TYPES or parent == "Address" or name == "version"):
        return "free text kept"
    return None


class Deidentifier:
    """Applies one configuration with one cryptoHash key, ages counted on ``as_of_day`` (UTC day number).

    Stateless apart from caches: the same input always gives the same output. Not thread-safe (one
    instance per thread or process).
    """

    def __init__(self, config: DeidConfig, hash_key: bytes, as_of_day: int) -> None:
        if len(hash_key) < 32:
            raise ValueError("the cryptoHash key must be at least 32 bytes")
        self.config = config
        self.as_of = date_of_day(as_of_day)
        self._key = hash_key
        self._roots: dict[str, _Plan] = {}
        self._hashes: dict[str, str] = {}
        self._n_rules = len(config.rules)
        self._texts: list[str] = []
        self._unsafe: list[str] = []
        self._years: dict[str, Any] = {}

    # -- plans --------------------------------------------------------------------------------------------
    def _root(self, resource_type: str) -> _Plan:
        plan = self._roots.get(resource_type)
        if plan is None:
            rule = self._own_rule(resource_type, (), ())
            plan = self._roots[resource_type] = _Plan(resource_type, (), (), rule, self._method(rule), NORMAL)
        return plan

    def _own_rule(self, resource_type: str, names: tuple[str, ...], types: tuple[str, ...]) -> int:
        for r in self.config.rules:
            if r.matches(resource_type, names, types):
                return r.index
        return self._n_rules

    def _method(self, rule: int) -> str:
        return "keep" if rule >= self._n_rules else self.config.rules[rule].method

    def _child(self, parent: _Plan, key: str, resource_type: str) -> _Plan | None:
        try:
            return parent.children[key]
        except KeyError:
            pass
        info = elements_of(parent.type).get(key)
        plan: _Plan | None = None
        if info is not None:
            names, types = (*parent.names, info.name), (*parent.types, info.type)
            rule = min(parent.rule, self._own_rule(resource_type, names, types))
            kind = NORMAL
            if info.type in ("date", "dateTime", "instant"):
                kind = DATE
            elif info.name == "postalCode" and parent.type == "Address":
                kind = POSTAL
            elif info.name == "reference" and parent.type == "Reference":
                kind = REFERENCE
            elif info.type == "Age":
                kind = AGE
            plan = _Plan(info.type, names, types, rule, self._method(rule), kind)
        parent.children[key] = plan
        return plan

    # -- values -------------------------------------------------------------------------------------------
    def crypto_hash(self, value: str) -> str:
        """HMAC-SHA256(key, value) in hex: the release's stand-in for an identifier."""
        h = self._hashes.get(value)
        if h is None:
            if len(self._hashes) >= _CACHE_LIMIT:
                self._hashes.clear()
            h = self._hashes[value] = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return h

    def _reference(self, value: str, id_types: Mapping[str, str]) -> Any:
        if value.startswith("#"):
            return _DROP  # a contained resource: contained resources are never released
        if value.startswith("urn:uuid:"):
            target = value[9:]
            rtype = id_types.get(target)
            return f"{rtype}/{self.crypto_hash(target)}" if rtype else self.crypto_hash(target)
        m = _REF.fullmatch(value)
        if m is not None:
            return f"{m.group(1)}/{self.crypto_hash(m.group(2))}"
        return self.crypto_hash(value)

    def _redacted(self, value: Any, plan: _Plan) -> Any:
        if plan.kind == DATE and self.config.partial_dates and plan.type != "instant" and type(value) is str:
            year = self._years.get(value)
            if year is None:
                if len(self._years) >= _CACHE_LIMIT:
                    self._years.clear()
                year = self._years[value] = _DROP if is_age_over_limit(value, self.as_of) else value[:4]
            return year
        if plan.kind == POSTAL and self.config.partial_zip and type(value) is str:
            z = self.config.zip3.generalise(value)
            return _DROP if z is None else z
        return _DROP

    def _age(self, value: dict[str, Any]) -> Any:
        """An ``Age`` under partial redaction: kept (value, unit, system, code) when it is 89 years or less."""
        number = decimal_of(value.get("value"))
        code = value.get("code")
        per = _AGE_YEARS_PER_UNIT.get(code) if type(code) is str else None
        if number is None or per is None or number * per > AGE_LIMIT:
            return _DROP
        return {k: value[k] for k in ("code", "comparator", "system", "unit", "value") if k in value}

    def _walk(self, value: Any, plan: _Plan, resource_type: str, id_types: Mapping[str, str]) -> Any:
        if type(value) is dict and not (len(value) == 1 and "$decimal" in value):
            if plan.kind == AGE and plan.method == "redact":
                return self._age(value) if self.config.partial_ages else _DROP
            out: dict[str, Any] = {}
            children = plan.children
            for key, item in value.items():
                child = children.get(key, _MISSING)
                if child is _MISSING:
                    child = self._child(plan, key, resource_type)
                if child is None:
                    continue
                assert isinstance(child, _Plan)
                kind = type(item)
                if kind is list:
                    kept = []
                    for x in item:
                        w = self._walk(x, child, resource_type, id_types)
                        if w is not _DROP:
                            kept.append(w)
                    if kept:
                        out[key] = kept
                    continue
                if kind is not dict:  # a leaf, handled here without a call
                    method = child.method
                    if method == "keep":
                        out[key] = item
                        if child.unsafe is not None:
                            self._unsafe.append(f"{child.path(resource_type)}: {child.unsafe}")
                        if kind is str:
                            self._texts.append(item)
                        continue
                    if method == "redact" and child.kind == NORMAL:
                        continue
                w = self._walk(item, child, resource_type, id_types)
                if w is not _DROP:
                    out[key] = w
            return out if out else _DROP
        method = plan.method
        if method == "keep":
            if plan.unsafe is not None:
                self._unsafe.append(f"{plan.path(resource_type)}: {plan.unsafe}")
            if type(value) is str:
                self._texts.append(value)
            return value
        if method == "cryptoHash" and type(value) is str:
            return self._reference(value, id_types) if plan.kind == REFERENCE else self.crypto_hash(value)
        return self._redacted(value, plan)

    def deidentify(self, resource: dict[str, Any], id_types: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The de-identified copy of one resource, or None when its type may not be released (or nothing
        of it survives). ``id_types`` maps the patient's resource ids to their types, to resolve
        ``urn:uuid:`` references."""
        return self.inspect(resource, id_types)[0]

    def inspect(self, resource: dict[str, Any], id_types: Mapping[str, str] | None = None
                ) -> tuple[dict[str, Any] | None, list[str], list[str]]:
        """:meth:`deidentify`, plus the strings the copy keeps (to scan for identifiers) and the element
        paths where the configuration kept what Safe Harbor forbids (see :func:`unsafe_reason`)."""
        rtype = resource.get("resourceType")
        if type(rtype) is not str or rtype not in self.config.releasable_types:
            return None, [], []
        self._texts, self._unsafe = [], []
        root = self._root(rtype)
        out = self._walk({k: v for k, v in resource.items() if k != "resourceType"}, root, rtype, id_types or {})
        texts, unsafe = self._texts, self._unsafe
        if out is _DROP:
            return None, texts, unsafe
        return {"resourceType": rtype, **out}, texts, unsafe
