"""The claims benchmark's parts: prior claims written into a store are real state the contract reads (and the
node's start-up check accepts), and a miniature run end to end and of the kernel."""

from __future__ import annotations

from pathlib import Path

from careledger.bench.claims import ClaimsBench, bench_claims_http, seed_prior_claims
from careledger.bench.claims_kernel import bench_claims_kernel
from careledger.contracts.claims import claims_of_patient, get_claim
from careledger.contracts.claims.layout import claim_by_commitment, claims_with_fingerprint
from careledger.node.home import init_home
from careledger.node.store import Store
from support import GENESIS_TIME_MS


def test_prior_claims_are_state_the_contract_reads(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home", None, None, GENESIS_TIME_MS)
    seconds, cached = seed_prior_claims(home.db_path, 1_000, cache_dir=tmp_path / "cache")
    assert not cached and seconds > 0
    again = init_home(tmp_path / "again", None, None, GENESIS_TIME_MS)
    assert seed_prior_claims(again.db_path, 1_000, cache_dir=tmp_path / "cache")[1]  # built once, copied
    store = Store(home.db_path, create=False)
    try:
        store.check_integrity()  # what a node checks before it starts: every row's checksum
        view = store.view()
        claim = get_claim(view, f"clm-{999:024x}")
        assert claim is not None and claim.status == "paid" and len(claim.fingerprints) == 2
        assert claim_by_commitment(view, claim.content_commitment) == claim.id
        assert [e.claim for e in claims_with_fingerprint(view, claim.fingerprints[1])] == [claim.id]
        assert [c.id for c in claims_of_patient(view, claim.patient)] == [f"clm-{i:024x}" for i in range(995, 1000)]
        assert sum(1 for _ in view.scan_raw("claims/fingerprint/")) == 2_000
    finally:
        store.close()


def test_claims_end_to_end_in_miniature(tmp_path: Path) -> None:
    report = bench_claims_http(ClaimsBench(claims=42, prior=500, concurrency=2,
                                           cache_dir=tmp_path / "cache"), home=tmp_path / "run")
    assert report["adjudicated"] == 42 and report["errors"] == {}
    assert report["duplicates_sent"] == 2 and report["flagged"] >= 2  # every 20th claim of a lane re-bills
    assert report["claims_per_s"] > 0 and report["p99_ms"] >= report["p50_ms"] > 0
    assert report["node_cpu_ms_per_claim"] > 0 and report["prior_claims"] == 500


def test_the_kernel_benchmark_in_miniature() -> None:
    report = bench_claims_kernel(claims=200, coverages=20)
    assert report["claims"] == 200 and report["all_balanced"] and report["adjudications_per_s"] > 0
