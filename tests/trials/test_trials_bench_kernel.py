"""The trials kernel benchmark runs end to end at a small size (figures are not asserted: timings are noisy)."""

from __future__ import annotations

from careledger.bench.trials_kernel import bench_trials_kernel


def test_the_trials_kernel_benchmark_runs() -> None:
    lines: list[str] = []
    out = bench_trials_kernel(anchors=3_000, visits=40, subjects=4, progress=lines.append)
    assert set(out["lock_us"]) == {"10", "3000"}
    assert out["frontier_entries"] == {"10": 2, "3000": (3000).bit_count()}
    assert out["tree_record_bytes"]["3000"] < 1000
    assert all(v > 0 for v in (out["visit_anchor_tx_us"], out["visit_anchor_contract_us"], out["records_anchor_tx_us"]))
    assert any("lock at 3,000 anchors" in line for line in lines)
