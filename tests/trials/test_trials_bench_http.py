"""``careledger bench --workload trials`` in miniature: the Go generator anchors every visit through a
real node's HTTP API (its own process, real SQLite), counted from the blocks, beside consent.grant.

Needs the Go load generator (scripts/build-loadgen.sh, which needs Go): skipped without it, except
under CI=true, where a missing generator fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from careledger.bench.harness import BenchSetupError, LoadShape, ensure_loadgen
from careledger.bench.trials_http import TrialsHttpBench, bench_trials_http, format_table
from careledger.contracts.trials.layout import get_tree, iter_statuses
from careledger.node.store import Store


@pytest.fixture(scope="module")
def loadgen() -> Path:
    try:
        return ensure_loadgen()
    except BenchSetupError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def test_every_visit_is_anchored_and_the_report_is_complete(loadgen: Path, tmp_path: Path) -> None:
    cfg = TrialsHttpBench.parse_size("3x6x2", baseline_txs=100, chunk=20, signers=4,
                                     shape=LoadShape(connections=8, lane_depth=0))
    report = bench_trials_http(cfg, home=tmp_path)
    assert report["size"]["anchors"] == 36
    a = report["anchoring"]
    assert a["committed"] + report["retries"]["committed"] == 36 and a["failed_receipts"] == 0
    assert [c["txs"] for c in report["anchoring_chunks"]] == [20, 16]
    for phase in report["baseline"].values():
        assert phase["committed"] > 0 and phase["tx_per_s"] > 0
    assert report["ratio_vs_consent_grant"] > 0 and report["cpu_ratio_vs_consent_grant"] > 0
    assert set(report["lock"]["lock_us"]) == {"10", "12"}  # the small trial, and 6 subjects x 2 visits
    assert set(report["targets"]) == {"anchoring_ge_0.8_of_consent_grant", "lock_large_within_2x_of_small"}
    assert "record_visits" in format_table(report)
    store = Store(tmp_path / "careledger" / "data" / "ledger.sqlite", create=False)
    try:
        view = store.view()
        sizes = sorted(get_tree(view, s.trial).size for s in iter_statuses(view))
        locked = [s.lock.size for s in iter_statuses(view) if s.lock is not None]
    finally:
        store.close()
    assert sizes == [10, 12, 12, 12] and sorted(locked) == [10, 12]


def test_sizes_parse_and_bad_ones_are_refused() -> None:
    cfg = TrialsHttpBench.parse_size("100x1000x10")
    assert (cfg.trials, cfg.subjects, cfg.visits, cfg.visits_per_tx, cfg.anchors) == (100, 1000, 10, 1, 1_000_000)
    assert TrialsHttpBench.parse_size("2x4x3/4").visits_per_tx == 4
    for bad in ("100x1000", "ax1x1", "1x1x1", "0x10x10", "2x4x3/300"):
        with pytest.raises(ValueError):
            TrialsHttpBench.parse_size(bad)
