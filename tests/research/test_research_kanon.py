"""k-anonymity and l-diversity: a published table, the hierarchies, and properties against brute force."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.core.errors import Code
from careledger.research.kanon import HEIGHTS, AnonymityNotMet, anonymise, generalise, k_of, l_of
from support.research import DATA

QIS = ("birth_year", "sex", "zip3")


def test_ciriani_table_is_1_anonymous() -> None:
    example = json.loads((DATA / "gs1" / "standards-test-vectors.json").read_text())["k_anonymity_example"]
    rows = [tuple(r[:5]) for r in example["rows"]]
    assert k_of(rows) == example["expected_k"] == 1
    assert l_of([tuple(r[2:4]) for r in example["rows"]], [r[5] for r in example["rows"]]) == 1
    assert k_of([tuple(r[2:3]) for r in example["rows"]]) == 2  # sex alone: 2 men, 7 women


def test_hierarchies() -> None:
    assert [generalise("birth_year", "1957", lv) for lv in range(5)] == ["1957", "1955-1959", "1950-1959",
                                                                        "1940-1959", "*"]
    assert [generalise("birth_year", "90+", lv) for lv in range(5)] == ["90+"] * 4 + ["*"]
    assert [generalise("zip3", "980", lv) for lv in range(4)] == ["980", "98*", "9**", "*"]
    assert [generalise("zip3", "000", lv) for lv in range(4)] == ["000"] * 3 + ["*"]
    assert [generalise("sex", "female", lv) for lv in range(2)] == ["female", "*"]


def _loss(v: tuple[int, ...]) -> int:
    return sum(lv * (12 // HEIGHTS[q]) for lv, q in zip(v, QIS, strict=True))


def _feasible(base: list[tuple[str, ...]], v: tuple[int, ...], k: int, bp: int) -> int | None:
    rows = [tuple(generalise(q, x, lv) for q, x, lv in zip(QIS, r, v, strict=True)) for r in base]
    counts = Counter(rows)
    removed = sum(1 for r in rows if counts[r] < k)
    return removed if removed * 10_000 <= bp * len(base) and removed < len(base) else None


row = st.tuples(st.one_of(st.integers(1930, 2010).map(str), st.just("90+")), st.sampled_from(["female", "male"]),
                st.sampled_from(["980", "981", "021", "024", "000"]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(row, min_size=1, max_size=60), st.integers(5, 8), st.sampled_from([0, 500, 2000]))
def test_anonymise_meets_k_minimally_or_refuses(base: list[tuple[str, ...]], k: int, bp: int) -> None:
    vectors = list(itertools.product(*(range(HEIGHTS[q] + 1) for q in QIS)))
    feasible = {v: r for v in vectors if (r := _feasible(base, v, k, bp)) is not None}
    try:
        out = anonymise(QIS, base, k, max_suppression_bp=bp)
    except AnonymityNotMet as exc:
        assert not feasible and exc.code in (Code.DEID_K_NOT_MET, Code.DEID_EMPTY_RELEASE)
        return
    assert out.levels in feasible and out.suppressed == feasible[out.levels]
    assert min(_loss(v) for v in feasible) == _loss(out.levels)  # least generalisation
    released = [r for r in out.rows if r is not None]
    assert k_of(released) == out.k >= k and len(released) + out.suppressed == len(base)
    for original, generalised in zip(base, out.rows, strict=True):
        if generalised is not None:
            assert generalised == tuple(generalise(q, x, lv) for q, x, lv in zip(QIS, original, out.levels,
                                                                                  strict=True))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(row, st.sampled_from(["a", "b", "c"])), min_size=5, max_size=50))
def test_l_diversity_holds_on_every_released_class(data: list[tuple[tuple[str, ...], str]]) -> None:
    base, sensitive = [r for r, _ in data], [s for _, s in data]
    try:
        out = anonymise(QIS, base, 5, 2, sensitive, 2000)
    except AnonymityNotMet as exc:
        assert exc.code in (Code.DEID_K_NOT_MET, Code.DEID_L_NOT_MET)
        return
    kept = [(r, s) for r, s in zip(out.rows, sensitive, strict=True) if r is not None]
    assert out.l is not None and l_of([r for r, _ in kept], [s for _, s in kept]) == out.l >= 2
    assert k_of([r for r, _ in kept]) >= 5


def test_nobody_to_release() -> None:
    with pytest.raises(AnonymityNotMet) as err:
        anonymise(QIS, [], 5)
    assert err.value.code == Code.DEID_EMPTY_RELEASE
