"""The vault's fast exact-JSON paths agree with the strict ones, byte for byte and error for error.

:func:`careledger.vault.canonical.parse_exact` and :func:`~careledger.vault.canonical.canonical_bytes`
take C-speed shortcuts (no per-object hooks, checks on orjson's output); these tests hold them to the
strict decoder and to :func:`careledger.core.codec.encode` on real Synthea bundles, on edge cases and
on seeded random documents, and check that untagging decimals for validation cannot inject JSON.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from careledger.core import codec
from careledger.core.errors import LedgerError
from careledger.vault import canonical
from careledger.vault.canonical import canonical_bytes, json_of_canonical, parse_exact, to_json_text
from support.records import SYNTHEA_FILES


def _outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except LedgerError as exc:
        return ("error", int(exc.code), exc.message[:40])


def _strict(text: str) -> Any:
    try:
        return canonical._decoder.decode(text)
    except LedgerError:
        raise
    except ValueError as exc:
        raise canonical.FhirJsonError(f"not valid JSON: {str(exc)[:120]}") from None


@pytest.mark.parametrize("path", SYNTHEA_FILES, ids=[p.stem[:20] for p in SYNTHEA_FILES])
def test_synthea_bundles_take_the_fast_paths_exactly(path: Path) -> None:
    data = path.read_bytes()
    value = parse_exact(data)
    assert value == _strict(data.decode())
    assert canonical_bytes(value) == codec.encode(value)
    for entry in value["entry"]:
        resource_bytes = canonical_bytes(entry["resource"])
        assert resource_bytes == codec.encode(entry["resource"])
        # the JSON validated is the same resource as the one committed to
        assert parse_exact(json_of_canonical(resource_bytes)) == entry["resource"]
        assert json.loads(json_of_canonical(resource_bytes)) == json.loads(to_json_text(entry["resource"]))


PARSE_CASES = ['{"a":1,"a":2}', '{"a":{"b":1,"b":1}}', '{"é":{"x":1,"x":"y"}}', '{"a":"x:y","b":1.50}',
               '{"a":12345678901234567890}', '{"a":9007199254740992}', '{"a":-9007199254740991}', '{"a":1e400}',
               '[1.0, -0, 0.10, 2E-3]', '{"a":"\\ud800"}', '{"a": NaN}', '{"a": Infinity}', '{"a":"\\":"}',
               '{"k":"v" , "k" : "w"}', '[{"a":1},{"a":1}]', '{"":1,"":2}', '{"a":[1,2,', '"x"', '']


@pytest.mark.parametrize("text", PARSE_CASES)
def test_parse_exact_matches_the_strict_parser(text: str) -> None:
    assert _outcome(parse_exact, text) == _outcome(_strict, text)
    assert _outcome(parse_exact, text.encode("utf-8", "surrogatepass")) == _outcome(_strict, text)


ENCODE_CASES: list[Any] = [
    {"é": 1}, {"a": "é", "b": {"ü": 2}}, {"a": 'é":'}, {"a": ["é", {"k": 'é"'}]}, {"a\u00e9": 1}, {"x": {"é\\": 1}},
    {"a": 1.5}, {"a": float("nan")}, {"a": 2**53}, {"a": -(2**53)}, {"a": None}, {"a": True}, {"x": "\ud800"},
    {1: 2}, {"a": (1, 2)}, [[[[]]]], {"a": "é", "n": None}, {"a": "é", "f": 0.5},
    *[json.loads("[" * n + "1" + "]" * n) for n in (30, 31, 32, 33, 40)],
    *[json.loads('{"é":' * n + "1" + "}" * n) for n in (31, 32, 33)],
]


@pytest.mark.parametrize("value", ENCODE_CASES, ids=range(len(ENCODE_CASES)))
def test_canonical_bytes_matches_the_codec(value: Any) -> None:
    assert _outcome(canonical_bytes, value) == _outcome(codec.encode, value)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 6 else 4)
    if kind == 0:
        return rng.choice(["", "a", "é", "€:", '"', "\\", "\n", "x\"y", "}{", "ü\"", "😀"])
    if kind == 1:
        return rng.choice([0, -1, 7, 2**53 - 1, -(2**53 - 1), 2**53, 10**20])
    if kind == 2:
        return {"$decimal": rng.choice(["1.50", "-0.0", "1e3", "2E-7", "12345678901234567890", "1, 2", "x"])}
    if kind == 3:
        return rng.choice([True, False, None])
    if kind in (4, 5):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["a", "b", "é", "k:", "$decimal", "z\"", "Ω"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_random_documents_agree_with_the_strict_paths() -> None:
    rng = random.Random(20240603)
    for _ in range(3000):
        value = _random_value(rng)
        got = _outcome(canonical_bytes, value)
        assert got == _outcome(codec.encode, value), value
        if got[0] == "ok":
            text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
            assert _outcome(parse_exact, text) == _outcome(_strict, text), text


def test_untagging_only_writes_back_numbers() -> None:
    """A ``$decimal`` object whose text is not a JSON number stays an object (and fails validation):
    it cannot splice keys or values into the JSON that is validated."""
    crafted = {"resourceType": "Observation", "valueQuantity": {"value": {"$decimal": '1,"status":"final"'}},
               "x": {"$decimal": "1}, {"}, "ok": {"$decimal": "-1.50e+3"}}
    out = json.loads(json_of_canonical(canonical_bytes(crafted)))
    assert out["valueQuantity"]["value"] == {"$decimal": '1,"status":"final"'} and "status" not in out
    assert out["x"] == {"$decimal": "1}, {"} and out["ok"] == -1500.0
