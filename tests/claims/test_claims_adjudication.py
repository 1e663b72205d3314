"""The adjudication kernel: every CARC path, NCCI and MUE with each indicator, coordination of benefits,
balancing (hypothesis), determinism, and a third party re-running it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.claims.adjudication import (
    Accumulators,
    AdjudicationDiffers,
    AdjudicationInputInvalid,
    AdjudicationResult,
    EncounterFacts,
    PriorLine,
    PriorPayer,
    YearTotals,
    adjudicate,
    diff_results,
    input_commitment,
    paid_lines,
    require_reproduced,
    verify_adjudication,
)
from careledger.claims.content import ClaimContent, date_of, day_of, parse_claim
from careledger.claims.coverage import PlanRules
from careledger.core.errors import Code
from support.claims_data import (
    CVX,
    DAY,
    ENCOUNTER_ID,
    HCPCS,
    LOCAL,
    SCT,
    content,
    coverage,
    example_plan,
    facts,
    line,
    plan_with,
    priced,
    synthea_encounters,
    synthea_resources,
    tables,
)

NO_DEDUCTIBLE = None


def no_deductible() -> PlanRules:
    return plan_with(deductible=0)


def run(c: ClaimContent, plan: PlanRules | None = None, **kw: Any) -> AdjudicationResult:
    cov = kw.pop("cov", coverage())
    result = adjudicate(c, cov, plan or example_plan(), kw.pop("edit_tables", tables()), facts(**kw))
    assert result.balances()
    return result


def codes(result: AdjudicationResult) -> list[list[str]]:
    return [line.codes() for line in result.lines]


# --- pricing ------------------------------------------------------------------------------------------------------

def test_approved_with_copay_deductible_and_coinsurance() -> None:
    r = run(content(line("G0438", system=HCPCS, net=200.0), line("ZZ002", net=1000.0)))
    assert r.outcome == "approved"
    first, second = r.lines
    assert (first.submitted, first.eligible, first.copay, first.deductible, first.benefit) == (20000, 20000, 2500, 0,
                                                                                               17500)
    assert [a.to_json() for a in first.adjustments] == [["PR", "3", 2500]]
    assert (second.deductible, second.coinsurance, second.benefit) == (50000, 10000, 40000)
    assert [a.to_json() for a in second.adjustments] == [["PR", "1", 50000], ["PR", "2", 10000]]
    assert r.accumulators == Accumulators("cov-1", (YearTotals(2024, 50000, 57500, (("office-visit", 17500),
                                                                                     ("procedure", 40000))),))
    assert (r.submitted, r.paid) == (120000, 57500)


def test_fee_schedule_reduction_is_contractual() -> None:
    r = run(content(line("ZZ001", net=150.0)), no_deductible())
    (x,) = r.lines
    assert [a.to_json() for a in x.adjustments] == [["CO", "45", 5000], ["PR", "2", 2000]]
    assert (x.eligible, x.benefit) == (10000, 8000)


@pytest.mark.parametrize(("cents", "coinsurance"), [(2, 1), (6, 2), (1, 0), (10, 3), (14, 4)])
def test_coinsurance_rounds_half_up_to_the_minor_unit(cents: int, coinsurance: int) -> None:
    doc = json.loads(json.dumps(example_plan().document))
    for cat in doc["categories"]:
        if cat["category"] == "procedure":
            cat["coinsurance_bps"] = 2500
    plan = PlanRules.from_document("insurer", "example-ppo", 1, 0, {**doc, "deductible": 0})
    (x,) = run(content(line("ZZ002", net=cents / 100)), plan).lines
    assert (x.coinsurance, x.benefit) == (coinsurance, cents - coinsurance)


def test_deductible_carries_across_lines_and_restarts_each_benefit_year() -> None:
    acc = Accumulators("cov-1", (YearTotals(2024, 45000, 0, ()),))
    r = run(content(line("ZZ002", net=100.0), line("ZZ009", net=100.0), line("ZZ011", net=100.0, date="2025-01-02")),
            accumulators=acc, received="2025-01-10",
            encounter=EncounterFacts("r-1", "verified", ENCOUNTER_ID, day_of(DAY), day_of("2025-01-02")))
    assert [x.deductible for x in r.lines] == [5000, 0, 10000]
    assert [y.deductible_met for y in r.accumulators.years] == [50000, 10000]


def test_annual_limits_of_plan_and_category_cap_the_benefit() -> None:
    acc = Accumulators("cov-1", (YearTotals(2024, 50000, 0, (("procedure", 495000),)),))
    (x,) = run(content(line("ZZ002", net=100.0)), accumulators=acc).lines
    assert (x.benefit, [a.to_json() for a in x.adjustments]) == (5000, [["PR", "2", 2000], ["PR", "119", 3000]])
    acc = Accumulators("cov-1", (YearTotals(2024, 50000, 1_999_000, ()),))
    (x,) = run(content(line("G0438", system=HCPCS, net=200.0)), accumulators=acc).lines
    assert (x.benefit, x.adjustments[-1].to_json()) == (1000, ["PR", "119", 16500])


def test_secondary_payer_pays_what_the_primary_left_within_its_own_benefit() -> None:
    c = content(line("G0438", system=HCPCS, net=200.0), line("ZZ002", net=1000.0))
    cov = coverage(order=2)
    r = run(c, cov=cov, prior_payer=PriorPayer("clm-0", "other-insurer", ((1, 15000), (2, 40000))))
    first, second = r.lines
    assert [a.to_json() for a in first.adjustments] == [["OA", "23", 15000]] and first.benefit == 5000
    assert [a.to_json() for a in second.adjustments] == [["OA", "23", 40000], ["PR", "1", 20000]]
    assert second.benefit == 40000 and r.accumulators.years[0].deductible_met == 20000


# --- claim-level decisions ----------------------------------------------------------------------------------------

def test_cancelled_coverage_denies_every_line_co31() -> None:
    r = run(content(line("ZZ002"), line("G0438", system=HCPCS)), cov=coverage(status="cancelled"))
    assert r.outcome == "denied" and codes(r) == [["CO-31"], ["CO-31"]]


def test_phantom_claim_is_denied_co16_with_m127_and_flagged() -> None:
    r = run(content(line("ZZ002"), line("G0438", system=HCPCS)), encounter=EncounterFacts("r-9", "absent"))
    assert r.outcome == "denied" and codes(r) == [["CO-16", "M127"], ["CO-16", "M127"]]
    assert r.flags == ("no-recorded-encounter",) and r.paid == 0 and r.accumulators.years == ()


def test_unreadable_encounter_pends_the_claim() -> None:
    r = run(content(line("ZZ002")), encounter=EncounterFacts("r-9", "unavailable"))
    assert r.outcome == "pended" and codes(r) == [["OA-133"]] and r.lines[0].outcome == "pended"


def test_secondary_without_the_primary_adjudication_is_denied_oa22() -> None:
    r = run(content(line("ZZ002"), line("G0438", system=HCPCS)), cov=coverage(order=2))
    assert r.outcome == "denied" and codes(r) == [["OA-22"], ["OA-22"]] and r.paid == 0


def test_provider_not_enrolled_in_the_plan_b7() -> None:
    plan = plan_with(enrolled_providers=["hospital"])
    assert codes(run(content(line("ZZ002")), plan)) == [["CO-B7"]]
    assert run(content(line("ZZ002")), plan, provider="hospital").outcome == "approved"


# --- line-level decisions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("item", "kw", "expected"), [
    (line("ZZ002", net=None), {}, ["CO-16", "M79"]),
    (line("ZZ002", encounter="urn:uuid:another-encounter"), {}, ["CO-16", "M127"]),
    (line("ZZ002", date="2024-03-02"), {}, ["CO-16", "M127"]),
    (line("ZZ002"), {"cov": coverage(start_day=day_of("2024-03-02"))}, ["PR-26"]),
    (line("ZZ002"), {"cov": coverage(end_day=day_of("2024-02-29"))}, ["PR-27"]),
    (line("ZZ002"), {"received": "2025-03-02"}, ["CO-29"]),
    (line("ZZ050"), {}, ["CO-96"]),
    (line("ZZ099"), {}, ["PR-204"]),
    (line("ZZ098"), {}, ["CO-197"]),
])
def test_each_line_denial(item: dict[str, Any], kw: dict[str, Any], expected: list[str]) -> None:
    r = run(content(item, line("G0438", system=HCPCS)), **kw)
    if kw:  # a coverage or filing condition: it holds for the other line too
        assert r.outcome == "denied" and codes(r) == [expected, expected]
    else:
        assert r.outcome == "partial" and codes(r)[0] == expected and r.lines[1].outcome == "approved"
    assert r.lines[0].benefit == 0 and r.lines[0].adjustments[0].amount == r.lines[0].submitted
    assert ("no-recorded-encounter" in r.flags) == ("M127" in expected)


def test_boundaries_of_coverage_filing_and_authorization() -> None:
    assert run(content(line("ZZ002")), received="2025-03-01").outcome == "approved"  # 365 days: in time
    assert run(content(line("ZZ002")), cov=coverage(start_day=day_of(DAY), end_day=day_of(DAY))).outcome == "approved"
    assert run(content(line("ZZ098"), preauth=["PA-1"])).outcome == "approved"
    assert run(content(line("ZZ002", encounter=f"urn:uuid:{ENCOUNTER_ID}"))).outcome == "approved"
    assert run(content(line("ZZ002", encounter=f"Encounter/{ENCOUNTER_ID}"))).outcome == "approved"


def test_exact_duplicates_within_the_claim_and_against_paid_lines() -> None:
    r = run(content(line("ZZ002"), line("ZZ002")))
    assert codes(r) == [["PR-1"], ["OA-18"]]
    assert codes(run(content(line("ZZ002"), line("ZZ002", modifiers=("RT",))))) == [["PR-1"], ["PR-1"]]
    prior = (PriorLine("clm-0", day_of(DAY), LOCAL, "ZZ002", (), 1),)
    assert codes(run(content(line("ZZ002")), prior_lines=prior)) == [["OA-18"]]


# --- NCCI procedure-to-procedure edits ----------------------------------------------------------------------------

def test_ptp_modifier_indicator_0_denies_column_two_whatever_the_modifier() -> None:
    r = run(content(line("ZZ002", modifiers=("59",)), line("ZZ001")), no_deductible())
    assert codes(r)[0] == ["CO-236"] and r.lines[1].outcome == "approved"


def test_ptp_against_a_paid_line_of_the_same_date_only() -> None:
    prior = (PriorLine("clm-0", day_of(DAY), LOCAL, "ZZ001", (), 1),)
    assert codes(run(content(line("ZZ002")), prior_lines=prior)) == [["CO-236"]]
    other_day = (PriorLine("clm-0", day_of("2024-02-29"), LOCAL, "ZZ001", (), 1),)
    assert run(content(line("ZZ002")), prior_lines=other_day).outcome == "approved"


@pytest.mark.parametrize(("mods2", "mods1", "denied"), [
    ((), (), True), (("59",), (), False), ((), ("XS",), False), (("GA",), (), True), (("25", "RT"), (), False),
])
def test_ptp_modifier_indicator_1_needs_an_ncci_modifier_on_either_line(mods2: tuple[str, ...],
                                                                       mods1: tuple[str, ...], denied: bool) -> None:
    r = run(content(line("ZZ003", modifiers=mods2), line("ZZ001", modifiers=mods1)), no_deductible())
    assert (codes(r)[0] == ["CO-236"]) == denied


def test_ptp_modifier_indicator_9_never_applies() -> None:
    assert run(content(line("ZZ004"), line("ZZ001")), no_deductible()).outcome == "approved"


@pytest.mark.parametrize(("pair", "date", "denied"), [
    (("ZZ005", "ZZ006"), "2025-06-30", True), (("ZZ005", "ZZ006"), "2025-07-01", False),
    (("ZZ007", "ZZ008"), "2025-06-30", False), (("ZZ007", "ZZ008"), "2025-07-01", True),
])
def test_ptp_effective_and_deletion_dates(pair: tuple[str, str], date: str, denied: bool) -> None:
    enc = EncounterFacts("r-1", "verified", ENCOUNTER_ID, day_of(date), day_of(date))
    r = run(content(line(pair[1], date=date), line(pair[0], date=date)), no_deductible(), encounter=enc,
            received=date)
    assert (codes(r)[0] == ["CO-236"]) == denied


def test_ptp_decisions_do_not_depend_on_line_order() -> None:
    a = content(line("ZZ001", sequence=1), line("ZZ002", sequence=2))
    b = parse_claim({**_claim_with_items([line("ZZ002", sequence=2), line("ZZ001", sequence=1)])})
    assert run(a).canonical() == run(b).canonical()


def _claim_with_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    from support.claims_data import fhir_claim

    claim = fhir_claim(line("ZZ001"))
    claim["item"] = items
    return claim


def test_edits_apply_only_to_the_code_systems_of_the_table() -> None:
    """The same code string under a system the table does not cover is not edited."""
    other = "urn:careledger:other-codes"
    plan = plan_with(code_categories=sorted([*example_plan().document["code_categories"],
                                             {"system": other, "code": "ZZ002", "category": "procedure"}],
                                            key=lambda r: (r["system"], r["code"])))
    assert run(content(line("ZZ002", system=other), line("ZZ001")), plan).outcome == "approved"


# --- MUE ----------------------------------------------------------------------------------------------------------

def test_mue_indicator_1_is_a_line_edit() -> None:
    assert codes(run(content(line("ZZ010", units=2)))) == [["CO-151"]]
    r = run(content(line("ZZ010", modifiers=("LT",)), line("ZZ010", modifiers=("RT",))))
    assert r.outcome == "approved"


def test_mue_indicator_2_adds_the_date_and_is_never_overridden() -> None:
    assert codes(run(content(line("ZZ011", units=3)))) == [["CO-151", "N362"]]
    r = run(content(line("ZZ011", modifiers=("LT",)), line("ZZ011", units=2, modifiers=("RT",))))
    assert codes(r) == [["CO-151", "N362"], ["CO-151", "N362"]]
    prior = (PriorLine("clm-0", day_of(DAY), LOCAL, "ZZ011", ("XS",), 1),)
    assert codes(run(content(line("ZZ011", units=2)), prior_lines=prior)) == [["CO-151", "N362"]]
    assert codes(run(content(line("ZZ011", units=3)), mue_overrides=("ZZ011",))) == [["CO-151", "N362"]]
    assert run(content(line("ZZ011", units=2))).outcome == "approved"


def test_mue_indicator_3_may_be_overridden_on_appeal() -> None:
    assert codes(run(content(line("ZZ012", units=4)))) == [["CO-151", "N362"]]
    assert run(content(line("ZZ012", units=4)), mue_overrides=("ZZ012",)).outcome == "approved"


def test_mue_of_real_vaccine_codes_per_date() -> None:
    r = run(content(line("140", system=CVX, net=40.0), line("140", system=CVX, net=40.0, modifiers=("RT",))))
    assert codes(r) == [["CO-151", "N362"], ["CO-151", "N362"]]


# --- remarks, inputs ----------------------------------------------------------------------------------------------

def test_declared_total_that_differs_gets_m54() -> None:
    assert run(content(line("ZZ002", net=10.0), total=11.0)).remarks == ("M54",)
    assert run(content(line("ZZ002", net=10.0), total=10.0)).remarks == ()


@pytest.mark.parametrize("mismatch", [
    lambda c: {"cov": coverage(plan="another-plan")},
    lambda c: {"cov": coverage(insurer="other-insurer")},
    lambda c: {"coverage_id": "cov-2"},
    lambda c: {"edit_tables": replace(tables(), name="other-set")},
    lambda c: {"prior_payer": PriorPayer("clm-0", "x", ())},
])
def test_inputs_that_do_not_belong_together(mismatch: Any) -> None:
    c = content(line("ZZ002"))
    kw = mismatch(c)
    cov = kw.pop("cov", coverage())
    t = kw.pop("edit_tables", tables())
    with pytest.raises(AdjudicationInputInvalid) as exc:
        adjudicate(c, cov, example_plan(), t, facts(**kw))
    assert exc.value.code == Code.ADJUDICATION_INPUT_MISMATCH


# --- real claims --------------------------------------------------------------------------------------------------

def test_every_synthea_institutional_claim_against_its_recorded_encounter() -> None:
    encounters = synthea_encounters()
    outcomes = set()
    acc = Accumulators("cov-1")
    for resource in synthea_resources("Claim"):
        c = parse_claim(priced(resource))
        if c.claim_type != "institutional":
            continue
        enc = encounters[c.lines[0].encounters[0].removeprefix("urn:uuid:")]
        period = enc["period"]
        ef = EncounterFacts("r-1", "verified", enc["id"], day_of(period["start"]), day_of(period["end"]))
        cov = coverage(start_day=day_of("1900-01-01"))
        r = adjudicate(c, cov, example_plan(), tables(), facts(encounter=ef, received="2030-01-01",
                                                               accumulators=acc))
        assert r.balances() and all(x.codes() == ["CO-29"] for x in r.lines)  # all filed decades late
        r = adjudicate(c, cov, plan_with(timely_filing_days=3650), tables(),
                       facts(encounter=ef, received=date_of(c.created_day + 30), accumulators=acc))
        assert r.balances() and "no-recorded-encounter" not in r.flags
        outcomes.add(r.outcome)
        acc = r.accumulators
        phantom = adjudicate(c, cov, example_plan(), tables(),
                             facts(encounter=EncounterFacts("r-1", "absent"), accumulators=acc))
        assert phantom.outcome == "denied" and phantom.flags == ("no-recorded-encounter",)
    assert outcomes == {"approved", "partial"}
    assert sum(y.benefit_paid for y in acc.years) > 0 and any(y.deductible_met == 50000 for y in acc.years)


# --- determinism, balancing (properties) --------------------------------------------------------------------------

CODES = [(LOCAL, f"ZZ{n:03d}") for n in (1, 2, 3, 4, 5, 6, 10, 11, 12, 50, 98, 99)] + \
    [(HCPCS, "G0438"), (HCPCS, "G0439"), (CVX, "140"), (SCT, "162673000"), (SCT, "430193006")]
line_strategy = st.tuples(st.sampled_from(CODES), st.one_of(st.none(), st.integers(0, 300_000)), st.integers(1, 4),
                          st.lists(st.sampled_from(["59", "LT", "RT", "GA", "25"]), max_size=2, unique=True),
                          st.integers(0, 2))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(lines=st.lists(line_strategy, min_size=1, max_size=8), order=st.integers(1, 2),
       prior=st.lists(st.integers(0, 200_000), max_size=8), ded_met=st.integers(0, 60_000),
       paid=st.integers(0, 2_100_000), encounter=st.sampled_from(["verified", "verified", "absent", "unavailable"]))
def test_every_result_balances_and_is_deterministic(lines: list[Any], order: int, prior: list[int], ded_met: int,
                                                    paid: int, encounter: str) -> None:
    items = [line(code, system=system, net=None if cents is None else cents / 100, units=units,
                  modifiers=tuple(mods), date=f"2024-03-0{1 + day}")
             for (system, code), cents, units, mods, day in lines]
    c = content(*items)
    spent = min(paid, 400_000)
    acc = Accumulators("cov-1", (YearTotals(2024, ded_met, paid, (("procedure", spent),) if spent else ()),))
    prior_payer = PriorPayer("clm-0", "other", tuple(enumerate(prior, start=1))) if order == 2 else None
    enc = EncounterFacts("r-1", encounter, ENCOUNTER_ID, day_of("2024-03-01"), day_of("2024-03-03"))  # type: ignore[arg-type]
    f = facts(encounter=enc, accumulators=acc, prior_payer=prior_payer)
    cov = coverage(order=order)
    result = adjudicate(c, cov, example_plan(), tables(), f)
    assert result.balances()
    for x in result.lines:
        assert min(x.submitted, x.eligible, x.deductible, x.copay, x.coinsurance, x.benefit) >= 0
        assert all(a.amount >= 0 and a.group in ("CO", "OA", "PI", "PR") for a in x.adjustments)
        assert x.benefit <= x.eligible <= x.submitted
        assert x.outcome != "denied" or (x.benefit == 0 and len(x.adjustments) == 1)
    assert adjudicate(c, cov, example_plan(), tables(), f).canonical() == result.canonical()
    before, after = acc.years[0], result.accumulators.years[0] if result.accumulators.years else None
    if after is not None:
        assert after.deductible_met >= before.deductible_met and after.benefit_paid >= before.benefit_paid
        assert result.accumulators.without(result) == acc


# --- a third party re-runs it -------------------------------------------------------------------------------------

SALT = bytes(range(32))


def test_golden_result_bytes() -> None:
    """Pin the canonical encoding of one result: any change to the rules' output must be deliberate."""
    r = run(content(line("G0438", system=HCPCS, net=200.0), line("ZZ002", net=1000.0), line("ZZ001", net=150.0)))
    assert codes(r) == [["PR-3"], ["CO-236"], ["CO-45", "PR-1"]]
    assert r.commitment(SALT) == GOLDEN_RESULT_COMMITMENT


GOLDEN_RESULT_COMMITMENT = "0a78ffc3bbea0cc8ddee4f56ab7cadad69e0301963451237a3818861a73ece00"


def test_verify_adjudication_matches_or_says_where_it_differs() -> None:
    c = content(line("G0438", system=HCPCS, net=200.0), line("ZZ002", net=1000.0))
    cov, plan, t, f = coverage(), example_plan(), tables(), facts()
    recorded = adjudicate(c, cov, plan, t, f)
    in_hex, out_hex = input_commitment(SALT, c, cov, plan, t, f), recorded.commitment(SALT)
    claimed = AdjudicationResult.from_json(json.loads(json.dumps(recorded.to_json())))
    v = verify_adjudication(c, cov, plan, t, f, salt=SALT, input_commitment_hex=in_hex,
                            result_commitment_hex=out_hex, claimed=claimed)
    assert v.ok and require_reproduced(v) == recorded
    # the insurer used other accumulators than it claims: both commitments and the amounts differ
    other = facts(accumulators=Accumulators("cov-1", (YearTotals(2024, 50000, 0, ()),)))
    v2 = verify_adjudication(c, cov, plan, t, other, salt=SALT, input_commitment_hex=in_hex,
                             result_commitment_hex=out_hex, claimed=claimed)
    assert not v2.input_matches and not v2.result_matches
    assert {d.path for d in v2.differences} >= {"lines[1].benefit", "lines[1].deductible", "totals.benefit"}
    with pytest.raises(AdjudicationDiffers) as exc:
        require_reproduced(v2)
    assert exc.value.code == Code.ADJUDICATION_DIFFERS
    assert diff_results(recorded, recorded) == ()


def test_result_documents_must_be_consistent() -> None:
    r = run(content(line("ZZ002")))
    doc = json.loads(json.dumps(r.to_json()))
    assert AdjudicationResult.from_json(doc) == r
    doc["totals"]["benefit"] += 1
    with pytest.raises(AdjudicationInputInvalid):
        AdjudicationResult.from_json(doc)


def test_paid_lines_become_prior_lines_for_later_claims() -> None:
    c = content(line("ZZ001"), line("ZZ099"))
    r = run(c)
    prior = tuple(paid_lines(c, r, "clm-1"))
    assert [p.code for p in prior] == ["ZZ001"]
    assert codes(run(content(line("ZZ002")), prior_lines=prior)) == [["CO-236"]]


def test_the_kernel_benchmark_runs_on_a_small_workload() -> None:
    """A smoke run of ``careledger bench --claims`` (kernel part): figures present, every result balanced."""
    from careledger.bench.claims_kernel import bench_claims_kernel

    report = bench_claims_kernel(claims=400, coverages=50, seed=3)
    assert report["all_balanced"] is True and report["claims"] == 400
    assert set(report["outcomes"]) == {"approved", "partial", "denied", "pended"}
    assert report["adjudications_per_s"] > 0 and report["ed25519_verify_per_s_1core"] > 0
