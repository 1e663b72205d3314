"""Exact FHIR JSON, its canonical bytes and the record commitment.

FHIR decimals carry their precision in their text (``1.50`` is not ``1.5``), and the ledger's
canonical encoding (:mod:`careledger.core.codec`) has no floats. So a resource is read with every
non-integer number, and every integer outside the safe range ±(2**53-1), kept as its exact source
text in a one-key object::

    4.2          ->  {"$decimal": "4.2"}
    1.50e3       ->  {"$decimal": "1.50e3"}

FHIR element names never start with ``$`` (and validated resources admit no unknown elements), so
the form is unambiguous. The *canonical resource bytes* are :func:`careledger.core.codec.encode` of
that value (RFC 8785 profile: sorted keys, no whitespace), and the commitment anchored on the ledger
is::

    commitment = SHA-256(salt ‖ canonical resource bytes)       salt: 32 random bytes kept in the vault
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import orjson

from careledger.core import codec
from careledger.core.errors import Code, LedgerError

DECIMAL_TAG = "$decimal"
SALT_BYTES = 32
_MAX_SAFE = 2**53 - 1


class FhirJsonError(LedgerError):
    default_code = Code.FHIR_INVALID


def _parse_int(text: str) -> Any:
    value = int(text)
    return value if -_MAX_SAFE <= value <= _MAX_SAFE else {DECIMAL_TAG: text}


def _parse_float(text: str) -> Any:
    return {DECIMAL_TAG: text}


def _no_constant(text: str) -> Any:
    raise FhirJsonError(f"{text} is not valid FHIR JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise FhirJsonError("duplicate JSON object key")
    return result


_decoder = json.JSONDecoder(parse_float=_parse_float, parse_int=_parse_int, parse_constant=_no_constant,
                            object_pairs_hook=_no_duplicates)


def parse_exact(data: bytes | str) -> Any:
    """Parse JSON keeping every decimal's exact text; raises FhirJsonError (FHIR_INVALID).

    Fast path: the C scanner with only the decimal hook (no per-object or per-integer Python call),
    then two C-speed checks that it built the same value the strict parser would: no integer that
    could lie outside the safe range, and no member lost to a duplicate key (the members counted in
    the input equal those in the re-encoded value, less the decimal tags). Anything else takes the
    strict parser, which gives the precise error.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _parse_fast(data if isinstance(data, bytes) else None, text)
        return _decoder.decode(text) if value is _SLOW else value
    except FhirJsonError:
        raise
    except (ValueError, RecursionError) as exc:
        raise FhirJsonError(f"not valid JSON: {str(exc)[:120]}") from None


_SLOW = object()
_BIG_INT = re.compile(rb"[0-9]{16,}")


def _strings_removed(data: bytes) -> bytes:
    return codec._STRINGS.sub(b"", data)


def _parse_fast(data: bytes | None, text: str) -> Any:
    """The exact form of valid JSON ``text`` by the fast path, or ``_SLOW`` when it cannot vouch for it."""
    tags = 0

    def tag(number: str) -> Any:
        nonlocal tags
        tags += 1
        return {DECIMAL_TAG: number}

    value = json.JSONDecoder(parse_float=tag, parse_constant=_no_constant).decode(text)
    try:
        source = _strings_removed(text.encode("utf-8") if data is None else data)
        out = _strings_removed(orjson.dumps(value))
    except (orjson.JSONEncodeError, UnicodeEncodeError):  # huge integers, lone surrogates
        return _SLOW
    if _BIG_INT.search(out) or out.count(b":") - tags != source.count(b":"):
        return _SLOW
    return value


def from_python(value: Any) -> Any:
    """The exact form of a Python JSON value: floats and Decimals become tagged decimal text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE <= value <= _MAX_SAFE else {DECIMAL_TAG: str(value)}
    if isinstance(value, float):
        return {DECIMAL_TAG: repr(value)}
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: str(value)}
    if isinstance(value, dict):
        return {k: from_python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_python(v) for v in value]
    raise FhirJsonError(f"value of type {type(value).__name__} is not JSON")


def _is_decimal(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and DECIMAL_TAG in value


def to_python(value: Any) -> Any:
    """The exact form as plain Python: tagged decimals become :class:`decimal.Decimal`."""
    if type(value) is dict:
        if _is_decimal(value):
            return Decimal(value[DECIMAL_TAG])
        return {k: to_python(v) for k, v in value.items()}
    if type(value) is list:
        return [to_python(v) for v in value]
    return value


def to_json_text(value: Any) -> str:
    """FHIR JSON text of the exact form, decimals written back exactly as they were read."""
    if type(value) is dict:
        if _is_decimal(value):
            return str(value[DECIMAL_TAG])
        return "{" + ",".join(json.dumps(k) + ":" + to_json_text(v) for k, v in value.items()) + "}"
    if type(value) is list:
        return "[" + ",".join(to_json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# A tagged decimal as it appears in canonical bytes. Inside a JSON string every '"' is escaped, so
# '{"' never occurs there: each match is a real tag object. Only JSON number text is untagged.
_TAGGED = re.compile(rb'\{"\$decimal":"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"\}')


def json_of_canonical(canonical: bytes) -> bytes:
    """FHIR JSON of canonical resource bytes: each tagged decimal written back as its exact number text.

    One C-speed substitution over the canonical bytes (keys stay sorted, strings stay as the codec
    escaped them); it parses to the same resource as :func:`to_json_text` of the exact form.
    """
    return _TAGGED.sub(rb"\1", canonical)


_NON_ASCII = re.compile(rb"[\x80-\xff]+")
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"')
_BRACKET_PAIR = re.compile(rb"\{\}|\[\]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"{}[]")
_ORJSON_OPTS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_PASSTHROUGH_SUBCLASS)


def canonical_bytes(value: Any) -> bytes:
    """The canonical resource bytes that the commitment covers: exactly :func:`careledger.core.codec.encode`.

    The codec re-checks large or non-ASCII values in Python; a FHIR resource or bundle is both. Here
    the same profile is checked on orjson's output at C speed — no float, NaN or unsafe integer (a
    scan with strings removed), nesting within the codec's limit (bracket pairs peeled level by
    level), ASCII keys (every non-ASCII run must lie in a string not followed by ``:``) — and any
    doubt goes to the codec itself, which then decides and names the problem.
    """
    try:
        out = orjson.dumps(value, option=_ORJSON_OPTS)
    except (orjson.JSONEncodeError, TypeError):
        return codec.encode(value)
    bare = _strings_removed(out)
    if codec._FLOATISH.search(bare) or b"null" in bare:
        return codec.encode(value)
    brackets = bare.translate(None, _NOT_BRACKET)
    for _ in range(codec.MAX_DEPTH - 1):
        if not brackets:
            break
        brackets = _BRACKET_PAIR.sub(b"", brackets)
    if brackets:
        return codec.encode(value)
    for run in _NON_ASCII.finditer(out):
        end = _STRING_REST.match(out, run.end())
        if end is None or out[end.end():end.end() + 1] == b":":
            return codec.encode(value)  # a non-ASCII key: the codec refuses it
    return out


def compute_commitment(salt: bytes, canonical: bytes) -> str:
    """``SHA-256(salt ‖ canonical)`` as lower-case hex."""
    if len(salt) != SALT_BYTES:
        raise ValueError("a record salt is 32 bytes")
    return hashlib.sha256(salt + canonical).hexdigest()


def content_hash(value: Any) -> str:
    """SHA-256 of the canonical bytes (a store request signs this for the resource it carries)."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()
