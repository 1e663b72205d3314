"""`careledger bench --engine solo --via http` in miniature: the Go generator drives a real node (its own
process, real SQLite) and the bare-endpoint ceiling; the report's committed counts are the blocks'.

Needs the Go load generator (built by scripts/build-loadgen.sh, which needs Go): skipped without it,
except under CI=true, where a missing generator fails the run. The Hardhat peer runs only where its
npm dev dependencies are installed (bench/peers/hardhat/install.sh).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.bench.ceiling import create_asgi_ceiling, verify_wire
from careledger.bench.harness import (
    BenchSetupError,
    LoadShape,
    code_name,
    ensure_loadgen,
    hardhat_installed,
    process_tree,
    repo_root,
    start_ceiling,
    tree_cpu_seconds,
    tree_rss_bytes,
)
from careledger.bench.http import CHAIN_ID, HttpBench, Patients, bench_http, bench_scale, main
from careledger.core import codec
from careledger.core.errors import AuthError, Code
from careledger.node.store import Store


def _require(found: Path | None, message: str) -> Path:
    """tests/conftest.py's require_tool rule: skip without the part, fail under CI=true."""
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def loadgen() -> Path:
    try:
        return ensure_loadgen()
    except BenchSetupError as exc:
        return _require(None, str(exc))


def _grants_in_store(db_path: Path) -> dict[str, int]:
    """Committed consent.grant transactions by receipt code, read from the ledger's blocks."""
    store = Store(db_path, create=False)
    try:
        counts: dict[str, int] = {}
        for height in range(1, store.head().height + 1):
            for tx in store.block_txs(height):
                if codec.decode_trusted(tx.raw)["body"]["type"] == "consent.grant":
                    key = str(tx.receipt.code)
                    counts[key] = counts.get(key, 0) + 1
        return counts
    finally:
        store.close()


def _check_phase(phase: dict[str, Any], sent: int) -> None:
    assert phase["sent"] == sent
    assert phase["accepted"] + sum(phase["refused"].values()) == sent
    assert phase["committed"] + phase["dropped"] == phase["accepted"], phase
    assert phase["tx_per_s"] > 0 and 0 < phase["p50_ms"] <= phase["p99_ms"] and phase["cpu_us_per_tx"] > 0
    assert phase["cpu_s"]["generator"] > 0 and phase["generator"]["cpu_us_per_request"] > 0
    assert sum(phase["cpu_share"].values()) == pytest.approx(1.0, abs=0.01)


def test_the_benchmark_in_miniature_counts_commits_from_the_blocks(loadgen: Path, tmp_path: Path) -> None:
    steps: list[str] = []
    cfg = HttpBench(txs=200, signers=10, warmup=0, half_seconds=1, shape=LoadShape(connections=16, lane_depth=1))
    with_hardhat = hardhat_installed()
    report = bench_http(cfg, hardhat=with_hardhat, ceilings=("fastapi", "asgi"), home=tmp_path,
                        progress=steps.append)

    cl = report["careledger"]
    _check_phase(cl["peak"], 200)
    assert cl["peak"]["refused"] == {} and cl["peak"]["committed"] == 200  # in nonce order: nothing refused
    half_sent = cl["half"]["sent"]
    _check_phase(cl["half"], half_sent)
    assert half_sent >= 10 and cl["half"]["offered_per_s"] == pytest.approx(max(10.0, cl["peak"]["tx_per_s"] / 2),
                                                                              abs=0.1)
    in_blocks = _grants_in_store(tmp_path / "careledger" / "data" / "ledger.sqlite")
    assert in_blocks == {"0": cl["peak"]["committed"] + cl["half"]["committed"]}
    assert cl["peak"]["cpu_s"]["careledger"] > 0 and cl["rss_mb"] > 0 and cl["start_s"] > 0

    for app in ("fastapi", "asgi"):
        ceiling = report["ceiling"][app]
        assert ceiling["peak"]["sent"] == ceiling["peak"]["accepted"] == 200 and ceiling["req_per_s"] > 0
        assert ceiling["peak"]["cpu_s"][f"ceiling-{app}"] > 0

    assert report["tx_per_s"] == cl["peak"]["tx_per_s"] and report["p99_ms"] == cl["half"]["p99_ms"]
    ceiling_rate = report["ceiling"]["fastapi"]["req_per_s"]
    assert report["ratio_vs_ceiling"] == pytest.approx(cl["peak"]["tx_per_s"] / ceiling_rate, abs=0.001)
    assert report["ratio_vs_verify_limit"] == pytest.approx(cl["peak"]["tx_per_s"] / report["verify_limit_per_s"],
                                                            abs=0.001)
    assert report["targets"]["no_ordering_refusals"] is True
    assert report["cpu_ratio_vs_ceiling"] == pytest.approx(
        cl["peak"]["cpu_us_per_tx"] / report["ceiling"]["fastapi"]["peak"]["cpu_us_per_tx"], abs=0.001)
    if with_hardhat:
        hh = report["hardhat"]
        for name in ("peak", "half"):
            assert hh[name]["counted"]["committed"] == hh[name]["committed"] == hh[name]["sent"]  # blocks, twice
            assert hh[name]["counted"]["reverted"] == 0 and hh[name]["blocks_with_txs"] >= 1
        assert hh["peak"]["sent"] == 200
        assert report["ratio_vs_hardhat"] == pytest.approx(cl["peak"]["tx_per_s"] / hh["peak"]["tx_per_s"], abs=0.001)
    else:
        assert report["hardhat"] is None and report["targets"]["vs_hardhat_ge_2.5"] is None
    assert any("peak phase" in s for s in steps)


def test_out_of_order_arrivals_are_refused_by_code_and_never_counted(loadgen: Path, tmp_path: Path) -> None:
    """Two signers' consecutive nonces raced over 32 connections: today's node refuses the early
    arrivals (NONCE_OUT_OF_ORDER), and only what reached a block is counted as committed."""
    cfg = HttpBench(txs=200, signers=2, warmup=0, half_seconds=0.5, stall_s=2,
                    shape=LoadShape(connections=32, lane_depth=0))
    report = bench_http(cfg, hardhat=False, ceilings=(), home=tmp_path)
    peak = report["careledger"]["peak"]
    assert peak["sent"] == 200 and peak["accepted"] + sum(peak["refused"].values()) == 200
    assert set(peak["refused"]) <= {"NONCE_OUT_OF_ORDER", "NONCE_REPLAYED"}
    in_blocks = _grants_in_store(tmp_path / "careledger" / "data" / "ledger.sqlite")
    committed = peak["committed"] + report["careledger"]["half"]["committed"]
    assert sum(in_blocks.values()) == committed
    assert report["ceiling"] == {} and report["ratio_vs_ceiling"] is None
    half = report["careledger"]["half"]
    assert report["targets"]["no_ordering_refusals"] == (not peak["refused"] and not half["refused"])


def test_the_scale_run_reports_each_chunk_and_the_start_on_a_grown_store(loadgen: Path, tmp_path: Path) -> None:
    cfg = HttpBench(txs=100, signers=10, warmup=50, shape=LoadShape(connections=8, lane_depth=1))
    report = bench_scale(200, chunk=100, cfg=cfg, home=tmp_path)
    assert [c["committed"] for c in report["chunks"]] == [100, 100] and report["committed"] == 200
    assert all(c["tx_per_s"] > 0 and c["node_rss_mb"] > c["node_anon_mb"] > 0 for c in report["chunks"])
    assert report["last_vs_first"] == pytest.approx(report["chunks"][1]["tx_per_s"] / report["chunks"][0]["tx_per_s"],
                                                    abs=0.001)
    assert report["start_s_grown"] > 0 and report["start_s_empty"] > 0 and report["db_mb"] > 0
    assert _grants_in_store(tmp_path / "careledger" / "data" / "ledger.sqlite") == {"0": 250}  # with the warm-up


def test_the_ceiling_verifies_one_signature_and_refuses_a_bad_one(tmp_path: Path) -> None:
    patients = Patients.make(1, 3)
    (_, _, raw), = patients.grants(1, 2_000_000_000_000)[0]
    verify_wire(raw, CHAIN_ID)
    flipped = raw[:-10] + (b"0" if raw[-10:-9] != b"0" else b"1") + raw[-9:]
    for bad, chain in ((flipped, CHAIN_ID), (raw, "another-chain"), (b'{"body":{}}', CHAIN_ID), (b"", CHAIN_ID)):
        with pytest.raises(AuthError) as info:
            verify_wire(bad, chain)
        assert info.value.code == Code.BAD_SIGNATURE
    for app in ("fastapi", "asgi"):  # over real HTTP, as the benchmark serves them
        server = start_ceiling(tmp_path, CHAIN_ID, app)
        try:
            with httpx.Client(base_url=server.url) as client:
                ok = client.post("/v1/txs", content=raw)
                assert ok.status_code == 202 and ok.json() == {"status": "pending"}
                refused = client.post("/v1/txs", content=flipped)
                assert refused.status_code == 401 and refused.json()["error"]["name"] == "BAD_SIGNATURE"
                assert client.get("/v1/txs").status_code in (404, 405)
        finally:
            server.stop()
    sent: list[dict[str, Any]] = []  # the bare app also answers the ASGI lifespan protocol
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(create_asgi_ceiling(CHAIN_ID)({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_refusals_are_named_by_their_stable_codes() -> None:
    assert code_name(int(Code.NONCE_OUT_OF_ORDER), jsonrpc=False) == "NONCE_OUT_OF_ORDER"
    assert code_name(99_999, jsonrpc=False) == "CODE_99999"
    assert code_name(-32000, jsonrpc=True) == "JSONRPC_-32000"
    assert code_name(-2, jsonrpc=True) == "TRANSPORT_ERROR" and code_name(-1, jsonrpc=False) == "UNREADABLE_ERROR"


def test_cpu_and_memory_are_read_for_a_whole_process_tree() -> None:
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert child.pid in process_tree(os.getpid())
        assert tree_cpu_seconds(os.getpid()) > 0 and tree_rss_bytes(os.getpid()) > tree_rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()


def test_bad_settings_are_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    for kwargs in ({"signers": 51}, {"signers": 0}, {"txs": 0}, {"half_seconds": 0}):
        with pytest.raises(ValueError):
            HttpBench(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        main(["--lane-depth", "x"])
    assert "invalid int value" in capsys.readouterr().err


def test_the_go_generator_passes_its_own_tests(loadgen: Path) -> None:
    go = _require(Path(p) if (p := shutil.which("go")) else None, "go not found: install Go >= 1.26")
    proc = subprocess.run([str(go), "test", "-count=1", "./..."], cwd=repo_root() / "bench" / "loadgen",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
