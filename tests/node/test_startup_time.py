"""Start-up in constant time (issue 16, item 2): opening a store does not grow with the ledger.

Two homes are grown through the very ``Store.commit_block`` the engines call (``careledger bench
--workload startup``'s builder), one ten times larger than the other. Opening the larger must not
take much longer than opening the smaller, while the full check (what ``careledger verify`` starts
with) does grow with it: the control that shows the comparison can fail. The million-transaction
figure is the benchmark's (docs/architecture.md section 4).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from careledger.bench.startup import bench_startup, build_ledger
from careledger.demo.consortium import create_consortium
from careledger.node.home import Home
from careledger.node.integrity import check_integrity
from careledger.node.startup import open_store
from careledger.node.store import Store


def grown(root: Path, txs: int) -> Home:
    home = create_consortium(root / f"node-{txs}", 1_767_225_600_000, chain_id="careledger-startup-test").home
    build_ledger(home, txs, 1_000)
    return home


def median_seconds(action: object, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, Home]:
    root = tmp_path_factory.mktemp("startup")
    return grown(root, 3_000), grown(root, 30_000)


def open_close(home: Home) -> None:
    open_store(home.db_path, home.genesis())[0].close()


def full_check(home: Home) -> None:
    store = Store(home.db_path, create=False)
    try:
        check_integrity(store)
    finally:
        store.close()


def test_opening_does_not_grow_with_the_ledger(homes: tuple[Home, Home]) -> None:
    small, large = homes
    open_small = median_seconds(lambda: open_close(small))
    open_large = median_seconds(lambda: open_close(large))
    full_small = median_seconds(lambda: full_check(small), runs=3)
    full_large = median_seconds(lambda: full_check(large), runs=3)
    assert full_large > 4 * full_small, (full_small, full_large)  # the control: a full scan does grow
    assert open_large < 2.5 * open_small + 0.01, (open_small, open_large)
    assert open_large < full_large / 20, (open_large, full_large)
    node = large.open_node()  # what `careledger node start` does before serving, last signature included
    try:
        assert node.head.height == 30 and node.health()["engine"] == "stopped"
    finally:
        node.close()


def test_the_startup_benchmark_reports_its_figures(tmp_path: Path) -> None:
    result = bench_startup(txs=4_000, block_txs=1_000, workdir=tmp_path)
    assert (result["txs"], result["blocks"], result["state_rows"]) == (4_000, 4, 12_000 + 19)
    assert result["target_open_lt_2_s"] is True
    for key in ("open_store_s", "open_store_cold_s", "open_node_s", "count_rows_s", "count_rows_cold_s"):
        assert 0 <= result[key] < 2, (key, result)
    again = bench_startup(txs=4_000, workdir=tmp_path)  # a grown home is reused, not rebuilt
    assert again["build_s"] is None and again["blocks"] == 4
