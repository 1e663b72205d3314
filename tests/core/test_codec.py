"""The canonical encoding (RFC 8785 profile): golden bytes, every rejection, and a round-trip property."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.core import codec
from careledger.core.errors import Code, EncodingError

MAX = 2**53 - 1


@dataclasses.dataclass
class Point:
    x: int
    y: int


# -- golden encodings ---------------------------------------------------------------------------------

GOLDEN = [
    (None, b"null"),
    (True, b"true"),
    (False, b"false"),
    (0, b"0"),
    (-1, b"-1"),
    (MAX, b"9007199254740991"),
    (-MAX, b"-9007199254740991"),
    ("", b'""'),
    ([], b"[]"),
    ({}, b"{}"),
    ([1, [2, [3, []]], {}], b"[1,[2,[3,[]]],{}]"),
    ({"b": 1, "a": 2, "c": {"z": [], "y": None}}, b'{"a":2,"b":1,"c":{"y":null,"z":[]}}'),
    # key order is by code point: upper case before lower case, "10" before "9", "" first
    ({"a": 0, "B": 0, "_": 0, "9": 0, "10": 0, "": 0, "aa": 0},
     b'{"":0,"10":0,"9":0,"B":0,"_":0,"a":0,"aa":0}'),
    # only '"', '\\' and control characters are escaped; short forms where RFC 8785 has them
    ("\"\\/", b'"\\"\\\\/"'),
    ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
    ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
    ("\x0b\x1e", b'"\\u000b\\u001e"'),  # lower-case hex
    ("\x7f", b'"\x7f"'),  # DEL is not a control character for JSON
    # non-ASCII travels as raw UTF-8, never as \\u escapes; U+2028/2029 are not escaped either
    ("\u00e9", b'"\xc3\xa9"'),
    ("\u20ac\u2028\u2029", b'"\xe2\x82\xac\xe2\x80\xa8\xe2\x80\xa9"'),
    ("\U0001f600", b'"\xf0\x9f\x98\x80"'),
    ("\u6cbb\u7597", b'"\xe6\xb2\xbb\xe7\x96\x97"'),
    ({"nested": {"list": [{"k": "v"}, {"a": -5}], "t": True}},
     b'{"nested":{"list":[{"k":"v"},{"a":-5}],"t":true}}'),
    ((1, 2), b"[1,2]"),  # a tuple encodes as an array
]


@pytest.mark.parametrize(("value", "expected"), GOLDEN, ids=[repr(v)[:30] for v, _ in GOLDEN])
def test_golden_encoding(value: object, expected: bytes) -> None:
    assert codec.encode(value) == expected
    decoded = codec.decode(expected)
    assert decoded == (list(value) if isinstance(value, tuple) else value)


def test_golden_document() -> None:
    doc = {"patient": "pt-00", "consent": {"scope": ["read", "share"], "until": 20_000}, "note": "caf\u00e9\n",
           "n": [MAX, -MAX, 0]}
    data = codec.encode(doc)
    assert data == (b'{"consent":{"scope":["read","share"],"until":20000},"n":[9007199254740991,'
                    b'-9007199254740991,0],"note":"caf\xc3\xa9\\n","patient":"pt-00"}')
    assert codec.decode(data) == doc


def test_booleans_are_not_integers() -> None:
    assert codec.encode([True, 1, False, 0]) == b"[true,1,false,0]"
    assert codec.decode(b"[true,1]") == [True, 1]
    assert type(codec.decode(b"[true,1]")[1]) is int


# -- values the profile refuses to encode -------------------------------------------------------------

UNENCODABLE = [
    1.0, 0.5, float("nan"), float("inf"), -float("inf"),
    MAX + 1, -MAX - 1, 2**64,
    b"bytes", {1, 2}, object(),
    {1: "non-string key"}, {"\u00e9": "non-ascii key"}, {None: 1},
    "\ud800", "a\udfffb",  # lone surrogates
    [1.5], {"a": [0.1]}, {"a": [float("nan")]}, [1, -float("inf")], {"t": True, "x": float("nan")},
    {"q": 'say "1.5"', "x": 2.5}, {"s": "back\\slash", "x": float("inf")},  # floats beside quotes or escapes
    datetime.datetime(2020, 1, 1), datetime.date(2020, 1, 1), Point(1, 2), [Point(0, 0)],
]


@pytest.mark.parametrize("value", UNENCODABLE, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(UNENCODABLE)])
def test_encode_refuses(value: object) -> None:
    with pytest.raises(EncodingError) as err:
        codec.encode(value)
    assert err.value.code == Code.MALFORMED_ENCODING


def test_float_like_text_inside_strings_is_fine() -> None:
    value = {"a": "1.5e10", "b": "null", "c": 'he said "NaN."', "d": "back\\slash 0.5", "e": ["E", "12345678901234567"]}
    assert codec.decode(codec.encode(value)) == value


def nest(depth: int, inner: object = 1) -> object:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit() -> None:
    ok = nest(codec.MAX_DEPTH)
    assert codec.decode(codec.encode(ok)) == ok
    with pytest.raises(EncodingError) as err:
        codec.encode(nest(codec.MAX_DEPTH + 1))
    assert err.value.code == Code.MALFORMED_ENCODING
    deep_obj: object = 1
    for _ in range(codec.MAX_DEPTH + 1):
        deep_obj = {"k": deep_obj}
    with pytest.raises(EncodingError):
        codec.encode(deep_obj)


# -- bytes the decoder refuses ------------------------------------------------------------------------

MALFORMED = [
    b"", b"{", b"[1,]", b"{'a':1}", b"nul", b"01", b"1 2",
    b"1.0", b"1e5", b"1E5", b"-1.5e-3", b"0.0", b"1e400",
    b"NaN", b"Infinity", b"-Infinity",
    b'{"a":1,"a":1}', b'{"a":1,"b":{"c":1,"c":2}}',  # duplicate keys, also nested
    b'{"\xc3\xa9":1}', b'{"\\u00e9":1}',  # non-ASCII keys, raw or escaped
    b'"\\ud800"', b'"\\udc00x"', b'["\\ud83d"]',  # lone surrogates
    b'"\x01"', b'"a\nb"',  # raw control characters inside a string
    b"\xff", b'"\xc3"', b'"\xed\xa0\x80"', b"\xef\xbb\xbf1",  # invalid UTF-8, encoded surrogate, BOM
    b"9007199254740992", b"-9007199254740992", b"[18446744073709551616]",  # outside the safe range
    b"[" * 40 + b"]" * 40, b"[" * 50_000 + b"]" * 50_000,  # too deep
]


@pytest.mark.parametrize("data", MALFORMED, ids=[repr(d[:24]) for d in MALFORMED])
def test_decode_malformed(data: bytes) -> None:
    with pytest.raises(EncodingError) as err:
        codec.decode(data)
    assert err.value.code == Code.MALFORMED_ENCODING


NON_CANONICAL = [
    b" 1", b"1 ", b"1\n", b"[1, 2]", b'{"a": 1}', b'{ "a":1}', b"[\t1]",  # whitespace
    b'{"b":1,"a":2}',  # key order
    b"-0",  # negative zero parses as 0, which prints as 0
    b'"\\u0041"', b'"\\/"', b'"\\u00e9"', b'"\\u001F"', b'"\\u000a"',  # needless or upper-case escapes
    b'"\\ud83d\\ude00"',  # escaped surrogate pair for a character that must travel as UTF-8
    b"true ", b'{"a":[1,{"c":0,"b":0}]}',
]


@pytest.mark.parametrize("data", NON_CANONICAL, ids=[repr(d[:24]) for d in NON_CANONICAL])
def test_decode_non_canonical(data: bytes) -> None:
    with pytest.raises(EncodingError) as err:
        codec.decode(data)
    assert err.value.code == Code.NON_CANONICAL_ENCODING


def test_decode_lenient_accepts_whitespace_but_same_value_rules() -> None:
    assert codec.decode_lenient(b'{ "b": 1,\n  "a": [true, null] }') == {"a": [True, None], "b": 1}
    for bad, code in [(b'{"a": 1.5}', Code.MALFORMED_ENCODING), (b'{"a":1, "a":2}', Code.MALFORMED_ENCODING),
                      (b'{"\\u00e9": 1}', Code.MALFORMED_ENCODING), (b"[9007199254740992]", Code.MALFORMED_ENCODING),
                      (b"{", Code.MALFORMED_ENCODING)]:
        with pytest.raises(EncodingError) as err:
            codec.decode_lenient(bad)
        assert err.value.code == code, bad


def test_decoded_values_are_fresh_objects() -> None:
    data = b'{"a":[1,2]}'
    first = codec.decode(data)
    first["a"].append(3)
    assert codec.decode(data) == {"a": [1, 2]}


# -- property: decode(encode(x)) == x, and encode is a fixed point ----------------------------------------

ascii_keys = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=8)
# any code point except lone surrogates (category Cs)
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
scalars = st.none() | st.booleans() | st.integers(min_value=-MAX, max_value=MAX) | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(ascii_keys, children, max_size=5),
    max_leaves=25,
)


@settings(derandomize=True, max_examples=400, deadline=None, database=None)
@given(json_values)
def test_roundtrip_property(value: object) -> None:
    data = codec.encode(value)
    assert codec.decode(data) == value
    assert codec.encode(codec.decode(data)) == data
    # no insignificant whitespace can appear outside strings: the bytes are the minimum JSON
    assert codec.decode_lenient(data) == value


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(st.dictionaries(ascii_keys, st.integers(min_value=-MAX, max_value=MAX), min_size=2, max_size=8))
def test_key_order_independent_of_insertion(value: dict[str, int]) -> None:
    reversed_value = dict(reversed(list(value.items())))
    assert codec.encode(value) == codec.encode(reversed_value)
    keys = list(codec.decode(codec.encode(value)))
    assert keys == sorted(keys)


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(json_values)
def test_pretty_printed_form_is_refused_unless_identical(value: object) -> None:
    import json

    pretty = json.dumps(value, indent=1, ensure_ascii=True).encode()
    if pretty == codec.encode(value):
        assert codec.decode(pretty) == value
    else:
        with pytest.raises(EncodingError) as err:
            codec.decode(pretty)
        assert err.value.code == Code.NON_CANONICAL_ENCODING
