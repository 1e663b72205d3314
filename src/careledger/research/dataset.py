"""A released dataset's shape: files, Merkle root, flat CSV, measured k and l, and its Safe Harbor check (pure).

Files of a release::

    <ResourceType>.ndjson   FHIR Bulk Data NDJSON: one resource a line, in canonical JSON (sorted keys,
                            no whitespace), lines ordered by resource id
    dataset.csv             one row a patient: subject, the quasi-identifiers, the sensitive codes
                            (when the study asks for l-diversity), the codes of each released type

The *records* are the NDJSON lines, taken in file-name order and line order; the dataset root is the
RFC 6962 Merkle root (:mod:`careledger.core.merkle`) of their canonical bytes. The CSV is a pure
function of the NDJSON files, so a verifier recomputes it rather than trusting it.

Every released Patient carries the release's quasi-identifier values in one extension
(:data:`QI_EXTENSION`), the single place they appear: k and l are measured on those.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from careledger.core.merkle import merkle_root
from careledger.research.deid import decimal_of
from careledger.research.fhirtypes import elements_of
from careledger.research.kanon import k_of, l_of
from careledger.vault.canonical import canonical_bytes, json_of_canonical, parse_exact

_SORTED = orjson.OPT_SORT_KEYS
QI_EXTENSION = "urn:careledger:fhir:extension:release-quasi-identifiers:v1"
CSV_NAME = "dataset.csv"
NDJSON_SUFFIX = ".ndjson"
SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
CODE_ELEMENT = {"AllergyIntolerance": "code", "CarePlan": "category", "Condition": "code", "DiagnosticReport": "code",
                "Encounter": "type", "Immunization": "vaccineCode", "MedicationRequest": "medicationCodeableConcept",
                "Observation": "code", "Procedure": "code"}
"""The coded element of each releasable type whose codes the flat CSV lists."""
PATIENT_REFERENCES = ("subject", "patient")
HASHED = re.compile(r"(?:[A-Z][A-Za-z]+/)?[0-9a-f]{64}")
"""A cryptoHash output (``Patient/<64 hex>`` or bare): never scanned for identifiers."""
FINER_THAN_YEAR = re.compile(r"\b(1[0-9]|20|21)[0-9]{2}-(0[1-9]|1[0-2])\b|T[0-2][0-9]:[0-5][0-9]")
QUANTITY_TYPES = frozenset({"Quantity", "SimpleQuantity", "Age", "Duration", "Distance", "Count"})
_LEAF_OK = frozenset({"boolean", "integer", "decimal", "positiveInt", "unsignedInt"})
"""Leaf types that can carry neither text nor a date."""
FORBIDDEN_TYPES = frozenset({"HumanName", "ContactPoint", "Identifier", "Attachment", "Narrative", "Annotation",
                             "base64Binary", "instant", "url", "uuid", "oid", "markdown", "Signature"})
"""Types no released resource may carry at all (Safe Harbor A, D-K, M, N, Q, R; free text)."""


class DatasetError(ValueError):
    """A dataset file that is not what a release produces (unparsable line, wrong order, ...)."""


def subject_of(resource: Mapping[str, Any]) -> str | None:
    """The released patient a resource belongs to (the Patient's own id for a Patient)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if type(rid) is str else None
    for key in PATIENT_REFERENCES:
        ref = resource.get(key)
        if type(ref) is dict and type(ref.get("reference")) is str and ref["reference"].startswith("Patient/"):
            return str(ref["reference"][8:])
    return None


def codes_of(resource: Mapping[str, Any]) -> list[str]:
    """``system|code`` of every coding in the type's coded element (:data:`CODE_ELEMENT`)."""
    element = CODE_ELEMENT.get(str(resource.get("resourceType")))
    value = resource.get(element) if element else None
    concepts = value if type(value) is list else [value] if value is not None else []
    out = []
    for concept in concepts:
        for coding in (concept.get("coding") or []) if type(concept) is dict else []:
            if type(coding) is dict and type(coding.get("code")) is str:
                out.append(f"{coding.get('system', '')}|{coding['code']}")
    return out


def sensitive_value(resources: Iterable[Mapping[str, Any]], sensitive_type: str, restrict: Sequence[str]) -> str:
    """A patient's sensitive attribute: the sorted distinct codes of ``sensitive_type`` (within
    ``restrict`` when given), space-separated; ``none`` when there are none."""
    allowed = set(restrict)
    codes = {c for r in resources if r.get("resourceType") == sensitive_type for c in codes_of(r)
             if not allowed or c in allowed}
    return " ".join(sorted(codes)) or "none"


def qi_extension(values: Mapping[str, str]) -> dict[str, Any]:
    return {"url": QI_EXTENSION,
            "extension": [{"url": name, "valueString": values[name]} for name in sorted(values)]}


def qi_values(patient: Mapping[str, Any]) -> dict[str, str]:
    """The quasi-identifier values a released Patient carries (empty if it carries none)."""
    for ext in patient.get("extension") or []:
        if type(ext) is dict and ext.get("url") == QI_EXTENSION:
            return {str(e["url"]): str(e["valueString"]) for e in ext.get("extension") or []
                    if type(e) is dict and type(e.get("valueString")) is str}
    return {}


# --- files and the root -----------------------------------------------------------------------------------

def ndjson_name(resource_type: str) -> str:
    return f"{resource_type}{NDJSON_SUFFIX}"


def encode_files(resources: Iterable[dict[str, Any]]) -> tuple[dict[str, bytes], list[bytes]]:
    """The NDJSON files of released resources and the record leaves (canonical bytes), in root order."""
    by_type: dict[str, list[tuple[str, bytes]]] = {}
    for r in resources:  # values in the exact form are inside the codec's profile: orjson writes its bytes
        by_type.setdefault(str(r["resourceType"]), []).append((str(r["id"]), orjson.dumps(r, option=_SORTED)))
    files: dict[str, bytes] = {}
    leaves: list[bytes] = []
    for rtype in sorted(by_type):
        lines = sorted(by_type[rtype])
        leaves.extend(b for _, b in lines)
        files[ndjson_name(rtype)] = b"".join(json_of_canonical(b) + b"\n" for _, b in lines)
    return files, leaves


def decode_files(files: Mapping[str, bytes]) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Parse received NDJSON files back into resources and leaves, checking the release's layout.

    Raises :class:`DatasetError` for a line that is not canonical JSON, a resource in the wrong file,
    or lines out of id order.
    """
    resources: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    for name in sorted(n for n in files if n.endswith(NDJSON_SUFFIX)):
        rtype = name[:-len(NDJSON_SUFFIX)]
        previous = ""
        for n, line in enumerate(files[name].split(b"\n")[:-1] if files[name].endswith(b"\n") else [b"?"]):
            try:
                value = parse_exact(line)
                leaf = canonical_bytes(value)
            except ValueError as exc:
                raise DatasetError(f"{name} line {n + 1} is not a FHIR resource in canonical JSON") from exc
            if json_of_canonical(leaf) != line:
                raise DatasetError(f"{name} line {n + 1} is not in canonical form")
            if type(value) is not dict or value.get("resourceType") != rtype or type(value.get("id")) is not str:
                raise DatasetError(f"{name} line {n + 1} is not a {rtype} with an id")
            if value["id"] <= previous:
                raise DatasetError(f"{name} is not ordered by resource id")
            previous = value["id"]
            resources.append(value)
            leaves.append(leaf)
    return resources, leaves


def dataset_root(leaves: Sequence[bytes]) -> str:
    return merkle_root(leaves).hex()


# --- the flat CSV and the measured k, l ---------------------------------------------------------------------

def flat_csv(resources: Sequence[Mapping[str, Any]], quasi_identifiers: Sequence[str], sensitive_type: str | None,
             sensitive_codes: Sequence[str], resource_types: Sequence[str]) -> bytes:
    """One row a released patient (ordered by subject): subject, quasi-identifiers, the sensitive value
    (when ``sensitive_type``), then the sorted distinct codes of each released type but Patient."""
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    patients: dict[str, Mapping[str, Any]] = {}
    for r in resources:
        s = subject_of(r)
        if s is None:
            continue
        by_subject.setdefault(s, []).append(r)
        if r.get("resourceType") == "Patient":
            patients[s] = r
    types = [t for t in sorted(resource_types) if t != "Patient"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["subject", *quasi_identifiers, *(["sensitive"] if sensitive_type else []), *types])
    for s in sorted(patients):
        qi = qi_values(patients[s])
        rows = by_subject[s]
        sens = [sensitive_value(rows, sensitive_type, sensitive_codes)] if sensitive_type else []
        per_type = [" ".join(sorted({c for r in rows if r.get("resourceType") == t for c in codes_of(r)}))
                    for t in types]
        w.writerow([s, *(qi.get(q, "") for q in quasi_identifiers), *sens, *per_type])
    return out.getvalue().encode()


def measure(resources: Sequence[Mapping[str, Any]], quasi_identifiers: Sequence[str], sensitive_type: str | None,
            sensitive_codes: Sequence[str]) -> tuple[int, int | None, int]:
    """(k, l or None, patients) measured on the released resources themselves."""
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    for r in resources:
        s = subject_of(r)
        if s is not None:
            by_subject.setdefault(s, []).append(r)
    rows: list[tuple[str, ...]] = []
    sens: list[str] = []
    for r in resources:
        if r.get("resourceType") != "Patient":
            continue
        qi = qi_values(r)
        rows.append(tuple(qi.get(q, "") for q in quasi_identifiers))
        if sensitive_type:
            sens.append(sensitive_value(by_subject.get(str(r["id"]), []), sensitive_type, sensitive_codes))
    return k_of(rows), (l_of(rows, sens) if sensitive_type else None), len(rows)


# --- the Safe Harbor check of released resources ------------------------------------------------------------

def safe_harbor_violations(resource: Mapping[str, Any], identifiers: IdentifierSet | None = None) -> list[str]:
    """Where a released resource breaks Safe Harbor: element paths only, never values.

    Structural: an element of a forbidden type (:data:`FORBIDDEN_TYPES`), an extension other than the
    quasi-identifier one on a Patient, an Address part other than state, country and a three-digit
    postal code, a date finer than its year, a free-text string other than a code unit, an Age over 89.
    With ``identifiers`` (a pattern of the source's names, addresses, phone numbers, identifiers and
    full dates), any string containing one of them.
    """
    problems: list[str] = []
    texts: list[tuple[str, str]] = []
    rtype = str(resource.get("resourceType"))

    def scan_text(value: str, where: str) -> None:
        if len(value) != 64 and len(value) > 3 and not HASHED.fullmatch(value):
            texts.append((value, where))

    def walk(value: Any, fhir_type: str, where: str, parent: str) -> None:
        if fhir_type in FORBIDDEN_TYPES:
            problems.append(f"{where}: a {fhir_type} element")
            return
        kind = type(value)
        if kind is list:
            for item in value:
                walk(item, fhir_type, where, parent)
            return
        if kind is dict and not (len(value) == 1 and "$decimal" in value):
            if fhir_type == "Age":
                number = decimal_of(value.get("value"))
                if number is None or (value.get("code") in (None, "a") and number > 89):
                    problems.append(f"{where}: an age over 89")
            known = elements_of(fhir_type)
            for key, item in value.items():
                if key == "resourceType" and where == rtype:
                    continue
                if key == "extension" and fhir_type == "Patient" and all(
                        type(e) is dict and e.get("url") == QI_EXTENSION for e in item):
                    for e in item:
                        for inner in e.get("extension") or []:
                            scan_text(str(inner.get("valueString", "")), f"{where}.extension")
                    continue
                info = known.get(key)
                if info is None:
                    problems.append(f"{where}.{key}: not an element of {fhir_type}")
                elif info.type == "Extension":
                    problems.append(f"{where}.{key}: an extension")
                elif fhir_type == "Address" and key not in ("state", "country", "postalCode"):
                    problems.append(f"{where}.{key}: an address part smaller than a State")
                elif info.type in _LEAF_OK and type(item) is not list:
                    continue  # codes, booleans, numbers, URIs: nothing to find in them
                else:
                    walk(item, info.type, f"{where}.{key}", fhir_type)
            return
        if kind is str:
            if fhir_type in ("date", "dateTime"):
                if len(value) > 4:
                    problems.append(f"{where}: a date finer than the year")
                return
            if parent == "Address" and where.endswith(".postalCode"):
                if not re.fullmatch(r"[0-9]{3}", value):
                    problems.append(f"{where}: a postal code that is not a ZIP3")
            elif parent == "Reference" and where.endswith(".reference"):
                if not HASHED.fullmatch(value):
                    problems.append(f"{where}: a reference that is not pseudonymised")
                return
            elif fhir_type == "string" and not (parent in QUANTITY_TYPES or parent == "Address"
                                               or where.endswith(".version")):
                problems.append(f"{where}: free text")
            scan_text(value, where)

    walk(resource, rtype, rtype, "")
    if texts:
        joined = "\n".join(t for t, _ in texts)
        if FINER_THAN_YEAR.search(joined):
            problems.extend(f"{w}: a date or time finer than the year" for t, w in texts if FINER_THAN_YEAR.search(t))
        if identifiers is not None and identifiers.found_in(joined):
            problems.extend(f"{w}: a value of the source's identifiers" for t, w in texts if identifiers.found_in(t))
    return problems


class IdentifierSet:
    """A patient's identifying strings, found case-insensitively as whole tokens (not inside a longer
    run of letters and digits, so a ZIP never matches inside a longer code)."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str]) -> None:
        self._values = tuple(sorted({v.lower() for v in values if v}))

    def __bool__(self) -> bool:
        return bool(self._values)

    def found_in(self, text: str) -> bool:
        low = text.lower()
        for v in self._values:
            start = low.find(v)
            while start >= 0:
                end = start + len(v)
                if (start == 0 or not low[start - 1].isalnum()) and (end == len(low) or not low[end].isalnum()):
                    return True
                start = low.find(v, start + 1)
        return False
