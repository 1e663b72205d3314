"""The one canonical encoding of CareLedger: a strict profile of RFC 8785 (JCS) JSON.

Every byte string that is hashed or signed is produced by :func:`encode`. The profile:

* values are ``null``, ``true``, ``false``, integers, strings, arrays and objects; no floats,
  no NaN or infinities; integers lie in the IEEE-754 safe range ``[-(2**53-1), 2**53-1]`` so that
  every JCS implementation prints them identically;
* object keys are ASCII strings, sorted by code point, never repeated;
* no insignificant whitespace; separators are ``,`` and ``:``;
* strings are UTF-8, with only ``"``, ``\\`` and control characters escaped (``\\b \\f \\n \\r \\t``
  or ``\\u00xx`` in lower-case hex), exactly as RFC 8785 section 3.2.2.2 requires;
* binary data travels as lower-case hex strings.

:func:`decode` accepts only bytes that are already canonical: it parses, refuses duplicate keys,
floats and out-of-range integers, re-encodes, and requires the result to equal the input.
"""

from __future__ import annotations

import json
from typing import Any

from careledger.core.errors import Code, EncodingError

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32

JsonValue = Any  # None | bool | int | str | list[JsonValue] | dict[str, JsonValue]

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode


def _check(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError("nesting deeper than 32 levels", Code.MALFORMED_ENCODING)
    if value is None or value is True or value is False or type(value) is str:
        return
    if type(value) is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:  # type: ignore[operator]
            return
        raise EncodingError("integer outside the safe range ±(2**53-1)", Code.MALFORMED_ENCODING)
    if type(value) is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str or not key.isascii():
                raise EncodingError("object keys must be ASCII strings", Code.MALFORMED_ENCODING)
            _check(item, depth + 1)
        return
    if type(value) is list or type(value) is tuple:
        for item in value:  # type: ignore[attr-defined]
            _check(item, depth + 1)
        return
    raise EncodingError(f"value of type {type(value).__name__} has no canonical encoding",
                        Code.MALFORMED_ENCODING)


def encode(value: JsonValue) -> bytes:
    """Return the canonical bytes of ``value``; raises :class:`EncodingError` for values outside the profile."""
    _check(value, 0)
    try:
        return _dumps(value).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise EncodingError("value has no canonical encoding (lone surrogate?)",
                            Code.MALFORMED_ENCODING) from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise EncodingError("duplicate object key", Code.MALFORMED_ENCODING)
    return result


def _no_float(text: str) -> Any:
    raise EncodingError(f"floating-point number {text[:20]!r} is not allowed", Code.MALFORMED_ENCODING)


def _no_constant(text: str) -> Any:
    raise EncodingError(f"{text} is not allowed", Code.MALFORMED_ENCODING)


_loads = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_constant
).decode


def decode(data: bytes) -> JsonValue:
    """Parse canonical bytes; raises :class:`EncodingError` (MALFORMED_ENCODING or NON_CANONICAL_ENCODING)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError("not valid UTF-8", Code.MALFORMED_ENCODING) from exc
    try:
        value = _loads(text)
    except EncodingError:
        raise
    except (ValueError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {str(exc)[:120]}", Code.MALFORMED_ENCODING) from exc
    if encode(value) != data:
        raise EncodingError("bytes are valid JSON but not in canonical form (RFC 8785 profile)",
                            Code.NON_CANONICAL_ENCODING)
    return value


def decode_lenient(data: bytes) -> JsonValue:
    """Parse JSON that need not be canonical (e.g. a genesis file written by hand), same value rules."""
    try:
        value = _loads(data.decode("utf-8"))
    except EncodingError:
        raise
    except (ValueError, RecursionError) as exc:
        raise EncodingError(f"not valid JSON: {str(exc)[:120]}", Code.MALFORMED_ENCODING) from exc
    _check(value, 0)
    return value


def decode_trusted(data: bytes) -> JsonValue:
    """Parse bytes this node wrote itself (already canonical); skips the canonical-form check."""
    return json.loads(data)
