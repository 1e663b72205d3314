"""A smoke run of the research kernel benchmarks (small sizes: the figures come from the bench command)."""

from __future__ import annotations

from careledger.bench.research_kernel import bench_aggregate, bench_release


def test_release_bench_runs_and_reports() -> None:
    r = bench_release(patients=30, encounters=2)
    assert r["resources_in"] > 30 * 10 and r["records_out"] <= r["resources_in"]
    assert r["subjects"] + r["suppressed"] == 30 and r["k_achieved"] >= 5
    assert r["release_resources_per_s"] > 0 and r["verify_records_per_s"] > 0
    assert set(r["levels"]) == {"birth_year", "sex", "zip3"}


def test_aggregate_bench_runs_and_reports() -> None:
    r = bench_aggregate(patients=300, custodians=3, rounds=5)
    assert r["queries"] == 5 and 0 < r["p50_s"] <= r["p99_s"]
    assert r["cells"] > 0 and isinstance(r["meets_target"], bool)
