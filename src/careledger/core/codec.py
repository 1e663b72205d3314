"""The one canonical encoding of CareLedger: a strict profile of RFC 8785 (JCS) JSON.

Every byte string that is hashed or signed is produced by :func:`encode`. The profile (orjson
produces exactly these bytes for values inside it; the standard library's ``json`` gives the
precise diagnosis when input is refused):

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
import re
from functools import lru_cache
from typing import Any

import orjson

from careledger.core.errors import Code, EncodingError

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32

JsonValue = Any  # None | bool | int | str | list[JsonValue] | dict[str, JsonValue]


def _check(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError("nesting deeper than 32 levels", Code.MALFORMED_ENCODING)
    if value is None or value is True or value is False or type(value) is str:
        return
    if type(value) is int:
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return
        raise EncodingError("integer outside the safe range ±(2**53-1)", Code.MALFORMED_ENCODING)
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                raise EncodingError("object keys must be ASCII strings", Code.MALFORMED_ENCODING)
            _check(item, depth + 1)
        return
    if type(value) is list or type(value) is tuple:
        for item in value:
            _check(item, depth + 1)
        return
    raise EncodingError(f"value of type {type(value).__name__} has no canonical encoding",
                        Code.MALFORMED_ENCODING)


_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_FLOATISH = re.compile(rb"[.eE]|[0-9]{16,}")


def encode(value: JsonValue) -> bytes:
    """Return the canonical bytes of ``value``; raises :class:`EncodingError` for values outside the profile.

    Fast path: the C encoder, then a scan of the output with strings removed for anything that is
    not an integer in the safe range. Output with non-ASCII bytes (or a suspicious number) gets the
    full recursive check, which also enforces ASCII keys.
    """
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                           | orjson.OPT_PASSTHROUGH_DATACLASS)
    except (orjson.JSONEncodeError, TypeError) as exc:
        _check(value, 0)
        raise EncodingError("value has no canonical encoding (lone surrogate?)",
                            Code.MALFORMED_ENCODING) from exc
    if not out.isascii():
        _check(value, 0)
        return out
    # what lies outside strings: without escapes every quote opens or closes one (split is C-fast)
    bare = b"".join(out.split(b'"')[::2]) if b"\\" not in out else _STRINGS.sub(b"", out)
    # orjson writes NaN and infinities as null and nests deeper than MAX_DEPTH: check whenever the
    # output could hide either (a null, or more containers than the depth limit allows)
    if _FLOATISH.search(bare) or b"null" in bare or bare.count(b"[") + bare.count(b"{") > MAX_DEPTH:
        _check(value, 0)
    return out


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
    """Parse canonical bytes; raises :class:`EncodingError` (MALFORMED_ENCODING or NON_CANONICAL_ENCODING).

    Fast path: a plain parse and a re-encode that must reproduce the input exactly. Only when that
    fails is the input parsed again with strict hooks, to name the precise problem.
    """
    try:
        value = orjson.loads(data)
        if encode(value) == data:
            return value
    except (ValueError, RecursionError, EncodingError, TypeError):  # UnicodeDecodeError is a ValueError
        pass
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
    encode(value)  # raises for values outside the profile (floats were refused by the hooks already)
    raise EncodingError("bytes are valid JSON but not in canonical form (RFC 8785 profile)",
                        Code.NON_CANONICAL_ENCODING)


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
    return orjson.loads(data)


@lru_cache(maxsize=16384)
def decode_shared(data: bytes) -> JsonValue:
    """Like :func:`decode_trusted`, memoised: the result is shared and must never be mutated."""
    return orjson.loads(data)
