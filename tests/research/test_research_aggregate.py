"""Aggregate count/sum queries: per-custodian answers over consenting patients, small cells suppressed, anchored."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

from careledger.contracts import research as rc
from careledger.research.aggregate import (
    SMALL_CELL,
    answer_hash,
    answer_query,
    complementary_suppression,
    extract_facts,
)
from careledger.research.config import vendored_config
from careledger.research.synthetic import AS_OF_DAY, generate_patient
from support.research import World

HEIGHT = "http://loinc.org|8302-2"
DIABETES = "http://snomed.info/sct|44054006"


def _facts(n: int) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(n):
        f = extract_facts(f"pt-{i:032x}", generate_patient("agg", i, encounters=2), vendored_config(), AS_OF_DAY)
        assert f is not None
        out.append(f)
    return out


def _spec(**over: object) -> dict[str, object]:
    spec: dict[str, object] = {"cohort": {"birth_year_max": None, "birth_year_min": None, "conditions_any": [],
                                          "sex": []},
                               "condition_codes": [], "group_by": ["sex", "zip3"], "measure": "count", "sum_of": None}
    spec.update(over)
    return spec


def test_small_cells_are_suppressed_and_the_rest_exact() -> None:
    facts = _facts(160)
    answer = answer_query(_spec(), "rq-" + "1" * 24, "hospital", facts)
    truth = Counter((f.sex, f.zip3) for f in facts)
    assert len(answer["cells"]) == len(truth)
    small = [c for c in answer["cells"] if c["suppressed"]]
    assert small and answer["suppressed_cells"] == len(small)  # 160 patients over 20 cells: some are small
    hidden = 0
    for cell in answer["cells"]:
        n = truth[(cell["group"]["sex"], cell["group"]["zip3"])]
        if n < SMALL_CELL:
            assert cell["count"] is None and cell["suppressed"] is True
        if cell["suppressed"]:
            hidden += n
        else:
            assert cell["count"] == n
    assert answer["contributors"] == 160
    assert all(c["count"] is None or c["count"] >= SMALL_CELL for c in answer["cells"])
    # the total minus the shown cells never reveals a small group
    assert answer["suppressed_cells"] >= 2 and hidden >= SMALL_CELL


def test_complementary_suppression() -> None:
    assert complementary_suppression({("f",): 16, ("m",): 7}) == {("f",), ("m",)}
    assert complementary_suppression({("a",): 30, ("b",): 12, ("c",): 3, ("d",): 4}) == {("b",), ("c",), ("d",)}
    assert complementary_suppression({("a",): 30, ("b",): 12, ("c",): 6, ("d",): 5}) == {("c",), ("d",)}
    assert complementary_suppression({("a",): 30, ("b",): 12}) == set()
    assert complementary_suppression({("a",): 3}) == {("a",)}


def test_sums_are_exact_decimals_and_suppressed_with_their_cell() -> None:
    facts = _facts(120)
    answer = answer_query(_spec(measure="sum", sum_of=f"observation:{HEIGHT}", group_by=["sex"]),
                          "rq-" + "2" * 24, "hospital", facts)
    for cell in answer["cells"]:
        members = [f for f in facts if f.sex == cell["group"]["sex"]]
        assert cell["count"] == len(members)
        assert Decimal(cell["sum"]) == sum((f.observations[HEIGHT] for f in members), Decimal(0))
    by_condition = answer_query(_spec(group_by=["condition"], condition_codes=[DIABETES]), "rq-" + "3" * 24,
                                "hospital", facts)
    cells = {c["group"]["condition"]: c for c in by_condition["cells"]}
    assert set(cells) <= {DIABETES, "none"}
    having = sum(1 for f in facts if DIABETES in f.conditions)
    assert cells[DIABETES]["count"] == (having if having >= SMALL_CELL else None)
    tiny = answer_query(_spec(cohort={"birth_year_max": None, "birth_year_min": None, "conditions_any": [],
                                      "sex": ["female"]}), "rq-" + "4" * 24, "hospital", facts[:12])
    assert tiny["contributors"] == 0 and all(c["suppressed"] for c in tiny["cells"])  # the cohort is small too


def test_a_custodian_answers_over_consenting_patients_and_anchors_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    sid = w.register_study()
    people = [w.add_patient(f"a{i}", generate_patient("agg-ledger", i, encounters=1)) for i in range(14)]
    consents = [w.opt_in(p, "study", sid) for p in people[:13]]  # the fourteenth never consents
    w.ok(people[0].study_key("study", sid), "research.revoke_consent", {"consent": consents[0]})  # one revokes
    qid = w.ok(w.researcher, "research.query", {"study": sid, "query": {"measure": "count", "group_by": ["sex"]}})[
        "query"]
    answer, payload = w.desk.answer(w.view, qid, w.as_of_day)
    assert answer["contributors"] == 12
    truth = Counter(p.resources[0]["gender"] for p in people[1:13])
    hidden = complementary_suppression({(sex,): n for sex, n in truth.items()})
    assert {c["group"]["sex"]: c["count"] for c in answer["cells"]} == {
        sex: (None if (sex,) in hidden else n) for sex, n in truth.items()}
    assert payload["answer_hash"] == answer_hash(answer) and payload["suppressed_cells"] == answer["suppressed_cells"]
    w.ok(w.vault.gateway_key, "research.answer", payload)
    anchored = rc.get_answer(w.view, qid, "hospital")
    assert anchored is not None and anchored.answer_hash == answer_hash(answer) and anchored.contributors == 12
