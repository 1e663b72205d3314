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


def test_the_bench_command_runs_the_research_workload_at_the_sizes_given() -> None:
    import json

    from support.cli import run_cli

    result = run_cli("--json", "bench", "--workload", "research", "--patients", "30", "--query-patients", "300")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["release"]["patients"] == 30 and doc["aggregate"]["patients"] == 300
    assert doc["aggregate"]["custodians"] == 3 and doc["at_target_sizes"] is False
    assert doc["targets"] == {"release_resources_per_s": 5_000, "release_patients": 10_000, "aggregate_p99_s": 2.0,
                              "aggregate_patients": 100_000, "aggregate_custodians": 3}
    refused = run_cli("bench", "--workload", "research", "--patients", "0")
    assert refused.exit_code == 1 and "sizes must be positive" in refused.stderr
