"""The FHIR type of every element, read from the ``fhir.resources`` R4B models (pure, cached).

De-identification rules name elements by path (``Patient.address``) and by type
(``nodesByType('HumanName')``, ``nodesByType('date')``), as Microsoft's FHIR anonymizer does. To match
them the walker needs, for each JSON key of an object of FHIR type T, the element's base name (choice
elements ``onsetDateTime`` / ``onsetAge`` share the base ``onset``) and its FHIR type. This module
derives that from the models' field annotations once per type and caches it.

Primitive types are named as FHIR names them (``date``, ``dateTime``, ``instant``, ``string``,
``markdown``, ``uri``, ``url``, ``canonical``, ``code``, ``id``, ``base64Binary``, ``boolean``,
``decimal``, ``integer`` …); complex types by their class (``HumanName``, ``Address``, ``Age``);
backbone elements by their class (``PatientContact``), which no rule names by type.
"""

from __future__ import annotations

import datetime
import decimal
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

RESOURCE = "Resource"


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """One JSON key of a FHIR type: its base element name and the FHIR type of its value."""

    name: str  # the base name (``onset`` for ``onsetAge``)
    type: str  # the FHIR type of the value (``Age``)


def _unwrap(annotation: Any) -> Any:
    """Strip Optional / List / Union-with-None down to the element's own annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
            continue
        if origin in (list, typing.List):  # noqa: UP006 (the models use typing.List)
            annotation = typing.get_args(annotation)[0]
            continue
        return annotation


_ODD_NAMES = {"encodedBytes": "base64Binary", "uuidVersion": "uuid"}
_PYTHON_PRIMITIVES = {bool: "boolean", int: "integer", str: "string", decimal.Decimal: "decimal",
                      datetime.date: "date", datetime.datetime: "dateTime", datetime.time: "time",
                      bytes: "base64Binary"}


def _type_name(annotation: Any) -> tuple[str, Any]:
    """(FHIR type name, model class or None) of one element annotation."""
    a = _unwrap(annotation)
    if typing.get_origin(a) is typing.Annotated:
        meta = typing.get_args(a)[1:]
        for m in meta:
            cls_name = type(m).__name__
            if cls_name and cls_name[0].isupper():
                name = cls_name[0].lower() + cls_name[1:]
                return _ODD_NAMES.get(name, name), None
        a = typing.get_args(a)[0]
    getter = getattr(a, "get_model_klass", None)
    if getter is not None:
        klass = getter()
        return str(klass.__name__), klass
    if a in _PYTHON_PRIMITIVES:
        return _PYTHON_PRIMITIVES[a], None
    return "unknown", None


@lru_cache(maxsize=1024)
def _model(type_name: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(type_name)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


@lru_cache(maxsize=4096)
def elements_of(type_name: str) -> dict[str, ElementInfo]:
    """The JSON keys an object of FHIR type ``type_name`` may carry, with their base names and types.

    Primitive-extension keys (``_birthDate``) are not listed: the walker drops them. An unknown type
    has no known elements (everything in it is dropped).
    """
    model = _model(type_name)
    if model is None:
        return {}
    out: dict[str, ElementInfo] = {}
    for field_name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        key = info.alias or field_name
        fhir_type, _ = _type_name(info.annotation)
        if fhir_type == "ResourceType" or (fhir_type.endswith("Resource") and key == "contained"):
            fhir_type = RESOURCE
        base = str(extra.get("one_of_many") or key)
        out[key] = ElementInfo(base, fhir_type)
    return out


def is_resource_type(type_name: str) -> bool:
    """Is ``type_name`` a FHIR R4B resource type (has a model with a ``resourceType``)?"""
    from fhir.resources.R4B.resource import Resource

    model = _model(type_name)
    return isinstance(model, type) and issubclass(model, Resource)
