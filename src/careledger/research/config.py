"""De-identification configurations in the style of Microsoft's FHIR anonymizer (pure).

A configuration is JSON with the anonymizer's shape (``fhirVersion``, ``processingErrors``,
``fhirPathRules`` of ``{path, method}``, ``parameters``) plus a ``careledger`` block naming the rule
version, the ZIP3 list and the resource types it may release. ``data/safe-harbor-v1.json`` is the
HIPAA Safe Harbor profile; ``data/ms-anonymizer-configuration-sample.json`` is Microsoft's own
sample (MIT), kept to check that ours redacts at least what it redacts.

Rule semantics (as the anonymizer's): every node takes the method of the *first* rule, in list order,
that matches the node or one of its ancestors; a node no rule matches is kept. So ``keep`` rules
placed before a type-wide ``redact`` spare what they name (``nodesByType('Address').state``).

Paths understood (a subset of FHIRPath, enough for every Safe Harbor rule):

* ``Type.elem.elem`` (``Resource`` matches every resource type; a choice element by its base name,
  ``Condition.onset``), optionally followed by `` as Type`` to pick one choice type;
* ``nodesByType('T')`` and ``nodesByType('T').elem.elem``.

Methods: ``keep``, ``redact`` (with the partial-redaction parameters: dates to the year, ages over 89
removed, ZIP codes to three digits) and ``cryptoHash`` (HMAC-SHA256 under a key the custodian keeps).
``dateShift`` is refused: shifting dates is Expert Determination, not Safe Harbor; so are
``perturb``, ``generalize``, ``substitute`` and ``encrypt``. A configuration carrying a key is refused
(keys are never part of a hashed, shared configuration).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from careledger.core import codec
from careledger.core.crypto import sha256
from careledger.core.errors import Code, LedgerError
from careledger.research.zip3 import Zip3List, zip3_list

METHODS = ("keep", "redact", "cryptoHash")
SAFE_HARBOR = "safe-harbor-v1"
_BY_TYPE = re.compile(r"nodesByType\('([A-Za-z][A-Za-z0-9]*)'\)((?:\.[a-z][A-Za-z0-9]*)*)")
_BY_PATH = re.compile(r"([A-Z][A-Za-z]*)((?:\.[a-z][A-Za-z0-9]*)+)(?: as ([A-Za-z][A-Za-z0-9]*))?")
_KEY_PARAMETERS = ("cryptoHashKey", "dateShiftKey", "encryptKey")
_ANY_RESOURCE = ("Resource", "DomainResource")


class DeidConfigError(LedgerError):
    """A configuration this engine will not run (DEID_CONFIG_INVALID)."""

    default_code = Code.DEID_CONFIG_INVALID


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule: ``root`` (a resource type, or ``Resource``) or ``by_type``, then element names."""

    index: int
    path: str
    method: str
    root: str | None
    by_type: str | None
    segments: tuple[str, ...]
    as_type: str | None

    def matches(self, resource_type: str, names: tuple[str, ...], types: tuple[str, ...]) -> bool:
        """Does the rule match the node reached by element ``names`` (with FHIR ``types``, the last one
        the node's own) from a resource of ``resource_type``?"""
        if self.by_type is not None:
            s = len(self.segments)
            if len(names) < s or names[len(names) - s:] != self.segments:
                return False
            owner = resource_type if len(names) == s else types[len(names) - s - 1]
            return owner == self.by_type
        if self.root not in _ANY_RESOURCE and self.root != resource_type:
            return False
        if names != self.segments:
            return False
        return self.as_type is None or (bool(types) and types[-1] == self.as_type)


@dataclass(frozen=True, slots=True)
class DeidConfig:
    """A validated configuration. ``config_hash`` is SHA-256 of its canonical JSON (what releases cite)."""

    rules: tuple[Rule, ...]
    partial_dates: bool
    partial_ages: bool
    partial_zip: bool
    zip3: Zip3List
    rule_version: str
    releasable_types: tuple[str, ...]
    config_hash: str
    document: dict[str, Any]


def _parse_rule(i: int, doc: Any) -> Rule:
    if type(doc) is not dict or type(doc.get("path")) is not str or type(doc.get("method")) is not str:
        raise DeidConfigError(f"rule {i} must be an object with a path and a method")
    path, method = doc["path"].strip(), doc["method"]
    if method == "dateShift" or method.lower() == "dateshift":
        raise DeidConfigError(f"rule {i} ({path}) shifts dates: that is Expert Determination, not Safe Harbor")
    if method not in METHODS:
        raise DeidConfigError(f"rule {i} ({path}) uses method {method!r}; Safe Harbor allows {', '.join(METHODS)}")
    extra = sorted(set(doc) - {"path", "method"})
    if extra:
        raise DeidConfigError(f"rule {i} ({path}) carries parameters this engine does not apply: {extra}")
    m = _BY_TYPE.fullmatch(path)
    if m is not None:
        segs = tuple(s for s in m.group(2).split(".") if s)
        return Rule(i, path, method, None, m.group(1), segs, None)
    m = _BY_PATH.fullmatch(path)
    if m is not None:
        segs = tuple(s for s in m.group(2).split(".") if s)
        return Rule(i, path, method, m.group(1), None, segs, m.group(3))
    raise DeidConfigError(f"rule {i}: path {path[:80]!r} is not a supported FHIRPath form")


def parse_config(doc: Any) -> DeidConfig:
    """Validate a configuration document. Raises :class:`DeidConfigError` (DEID_CONFIG_INVALID) for an
    unsupported FHIR version or method, a path it cannot apply, a key inside it, an inline ZIP list
    (a list must be a vendored one with a vintage), an unknown ZIP3 list, or a missing ``careledger`` block."""
    if type(doc) is not dict:
        raise DeidConfigError("a configuration is a JSON object")
    if doc.get("fhirVersion") != "R4":
        raise DeidConfigError("only FHIR R4 configurations are supported")
    if doc.get("processingErrors", "raise") != "raise":
        raise DeidConfigError("processingErrors must be 'raise': a release never keeps what it could not process")
    params = doc.get("parameters") or {}
    if type(params) is not dict:
        raise DeidConfigError("parameters must be an object")
    for k in _KEY_PARAMETERS:
        if params.get(k):
            raise DeidConfigError(f"the configuration carries {k}; keys are supplied by the custodian, never shared")
    if "restrictedZipCodeTabulationAreas" in params:
        raise DeidConfigError("name a vendored ZIP3 list (careledger.zip3List) instead of an inline list")
    rules_doc = doc.get("fhirPathRules")
    if type(rules_doc) is not list or not rules_doc:
        raise DeidConfigError("fhirPathRules must be a non-empty list")
    rules = tuple(_parse_rule(i, r) for i, r in enumerate(rules_doc))
    ours = doc.get("careledger")
    if type(ours) is not dict or type(ours.get("ruleVersion")) is not str or type(ours.get("zip3List")) is not str:
        raise DeidConfigError("the careledger block names the ruleVersion and the zip3List")
    types = ours.get("releasableResourceTypes")
    if type(types) is not list or not types or not all(type(t) is str for t in types):
        raise DeidConfigError("careledger.releasableResourceTypes must list resource types")
    try:
        canonical = codec.encode(doc)
    except LedgerError as exc:
        raise DeidConfigError(f"the configuration has no canonical form: {exc.message}") from None
    try:
        zip3 = zip3_list(ours["zip3List"])
    except LedgerError as exc:
        raise DeidConfigError(exc.message) from None
    return DeidConfig(rules, bool(params.get("enablePartialDatesForRedact")),
                      bool(params.get("enablePartialAgesForRedact")),
                      bool(params.get("enablePartialZipCodesForRedact")), zip3,
                      ours["ruleVersion"], tuple(sorted(set(types))), sha256(canonical).hex(), doc)


def _read(name: str) -> Any:
    return json.loads(resources.files("careledger.research").joinpath(f"data/{name}").read_text())


@lru_cache(maxsize=4)
def vendored_config(name: str = SAFE_HARBOR) -> DeidConfig:
    """A configuration shipped in ``careledger/research/data`` (``safe-harbor-v1``)."""
    return parse_config(_read(f"{name}.json"))


def microsoft_sample() -> dict[str, Any]:
    """Microsoft's Safe Harbor sample configuration (MIT), as vendored (see data/SOURCES.md)."""
    doc: dict[str, Any] = _read("ms-anonymizer-configuration-sample.json")
    return doc
