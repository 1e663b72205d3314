"""``careledger bench --sync``: the durable-versus-fast cost is measured in one run (issue 16, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

from careledger.bench.solo import compare_sync
from careledger.node.home import Home
from support.cli import run_cli


def test_both_modes_are_measured_on_the_same_load(tmp_path: Path) -> None:
    result = compare_sync(txs=300, seed=3, workdir=tmp_path, paced_rate=100.0, paced_seconds=1.0)
    for mode in ("full", "normal"):
        assert result[mode]["tx_per_s"] > 0 and result[mode]["paced_p50_ms"] > 0
        assert result[mode]["paced_blocks"] > 0
    assert result["full_vs_normal_tx_per_s"] == round(result["full"]["tx_per_s"] / result["normal"]["tx_per_s"], 3)
    # each mode ran twice, on homes configured for it
    modes = [Home(tmp_path / str(i) / f"node-{mode}").config().sync
             for i, mode in enumerate(("full", "normal", "normal", "full"))]
    assert modes == ["full", "normal", "normal", "full"]
    for i, mode in ((0, "full"), (1, "normal")):  # and the store's writer really commits in that mode
        node = Home(tmp_path / str(i) / f"node-{mode}").open_node()
        try:
            (level,) = node.store.writer_view.connection.execute("PRAGMA synchronous").fetchone()
        finally:
            node.close()
        assert level == {"full": 2, "normal": 1}[mode]


def test_an_unknown_sync_mode_is_refused() -> None:
    result = run_cli("bench", "--sync", "fast", "--json")
    assert result.exit_code == 1
    assert "--sync must be one of full, normal, both" in json.loads(result.stdout)["error"]["message"]
