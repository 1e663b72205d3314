"""``careledger bench --engine solo``: committed throughput and latency of the embedded node.

One run measures, on this machine:
1. the Ed25519 verification limit with libsodium on all cores (the machine's own ceiling);
2. peak committed tx/s for a realistic identity/governance mix, submitted by one thread per core;
3. p50/p99 submission-to-commit latency at half the peak rate (paced, open loop);
4. how fast ``careledger verify`` re-checks the resulting chain.
Figures are reported with the ratio of throughput to the verification limit.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nacl.signing

from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import ORGANISATIONS, create_consortium
from careledger.node.solo import Node
from careledger.node.verify import verify_file


def verify_limit(seconds: float = 1.0, threads: int | None = None) -> float:
    """Ed25519 verifications per second with libsodium on ``threads`` threads (default: every core)."""
    threads = threads or os.cpu_count() or 2
    key = nacl.signing.SigningKey.generate()
    vk = key.verify_key
    msgs = [key.sign(os.urandom(200)) for _ in range(256)]
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            for m in msgs:
                vk.verify(m)
            n += len(msgs)
        counts[i] = n

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.perf_counter() - start)


@dataclass
class Workload:
    """Pre-signed transactions, split so that each signer's transactions stay on one submitter."""

    lanes: list[list[bytes]]

    @property
    def size(self) -> int:
        return sum(len(lane) for lane in self.lanes)


def identity_mix(chain_id: str, admins: dict[str, SigningKey], count: int, lanes: int, nonces: dict[str, int],
                 rng: random.Random) -> Workload:
    """50% patient registrations, 30% member enrolments, 12% role changes, 8% revocations."""
    out: list[list[bytes]] = [[] for _ in range(lanes)]
    orgs = [oid for oid, _, _, _ in ORGANISATIONS if oid in admins]
    roles = {"st-marys": ["physician", "nurse", "emergency"], "riverside-clinic": ["physician", "nurse"],
             "high-street-pharmacy": ["pharmacist"], "acme-pharma": ["supply_operator"],
             "medi-distrib": ["supply_operator"], "united-health-ins": ["claims_officer"],
             "uni-research": ["researcher"], "medicines-agency": ["inspector"]}
    enrolled: dict[str, list[str]] = {o: [] for o in orgs}
    revoked: set[str] = set()
    for i in range(count):
        r = rng.random()
        if r < 0.5:
            patient = SigningKey(rng.randbytes(32))
            out[i % lanes].append(sign_tx(patient, chain_id, "identity.register_patient", 1, 1, {}))
            continue
        o_index = rng.randrange(len(orgs))
        org = orgs[o_index]
        admin = admins[org]
        lane = o_index % lanes
        nonces[org] += 1
        members = [m for m in enrolled[org] if m not in revoked]
        if r < 0.8 or len(members) < 2:
            member = SigningKey(rng.randbytes(32)).public_hex
            enrolled[org].append(member)
            payload: dict[str, Any] = {"member": member, "org": org, "roles": [rng.choice(roles[org])]}
            out[lane].append(sign_tx(admin, chain_id, "identity.enrol_member", 1, nonces[org], payload))
        elif r < 0.92:
            member = rng.choice(members)
            payload = {"member": member, "org": org, "roles": sorted(set(rng.sample(roles[org], 1)))}
            out[lane].append(sign_tx(admin, chain_id, "identity.set_member_roles", 1, nonces[org], payload))
        else:
            member = rng.choice(members)
            revoked.add(member)
            payload = {"member": member, "org": org, "reason": "left the organisation"}
            out[lane].append(sign_tx(admin, chain_id, "identity.revoke_member", 1, nonces[org], payload))
    return Workload(out)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_load(node: Node, workload: Workload, rate_per_s: float | None) -> tuple[int, float, list[float]]:
    """Submit every lane on its own thread; returns (committed, seconds to last commit, latencies in ms)."""
    latencies: list[float] = []
    committed = [0]
    last_commit = [0.0]
    lock = threading.Lock()
    errors: list[str] = []
    lanes = [lane for lane in workload.lanes if lane]
    per_lane_rate = rate_per_s / len(lanes) if rate_per_s else None

    def done_cb(sent: float) -> Callable[[Any], None]:
        def cb(fut: Any) -> None:
            now = time.perf_counter()
            result = fut.result()
            with lock:
                if getattr(result, "code", None) == 0:
                    committed[0] += 1
                    latencies.append((now - sent) * 1000)
                    last_commit[0] = now
                else:
                    errors.append(str(result))
        return cb

    start = time.perf_counter()

    def submit_lane(lane: list[bytes]) -> list[Any]:
        futures = []
        for i, raw in enumerate(lane):
            if per_lane_rate:
                due = start + i / per_lane_rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent = time.perf_counter()
            sub = node.submit_async(raw)
            sub.committed.add_done_callback(done_cb(sent))
            futures.append(cast(Future[object], sub.admitted))
            futures.append(sub.committed)
        return futures

    with ThreadPoolExecutor(len(lanes)) as pool:
        all_futures = [f for fs in pool.map(submit_lane, lanes) for f in fs]
    for fut in all_futures:
        fut.result(timeout=120)  # raises if a transaction was not admitted
    if errors:
        raise RuntimeError(f"{len(errors)} benchmark transactions failed, first: {errors[0]}")
    return committed[0], last_commit[0] - start, latencies


SYNC_CHOICES = ("full", "normal", "both")


def bench_solo(txs: int = 20_000, seed: int = 7, home: Path | None = None,
               progress: Callable[[str], None] = lambda s: None, sync: str = "full") -> dict[str, Any]:
    """Run the whole solo benchmark; without ``home`` it works in a temporary directory it removes.

    ``sync`` is the store's synchronous mode for the run (``full``: durable across power loss, the
    default; ``normal``: across a crash only). ``both`` runs the benchmark durable and adds a
    comparison of the two modes measured in the same run (:func:`compare_sync`) under ``sync_cost``.
    """
    if sync not in SYNC_CHOICES:
        raise ValueError(f"sync must be one of {SYNC_CHOICES}, not {sync!r}")
    if home is not None:
        return _with_sync(txs, seed, home, progress, sync)
    with tempfile.TemporaryDirectory(prefix="careledger-bench-") as tmp:
        return _with_sync(txs, seed, Path(tmp), progress, sync)


def _with_sync(txs: int, seed: int, workdir: Path, progress: Callable[[str], None], sync: str) -> dict[str, Any]:
    result = _bench_solo(txs, seed, workdir, progress, "full" if sync == "both" else sync)
    if sync == "both":
        result["sync_cost"] = compare_sync(min(txs, 10_000), seed, workdir / "sync", progress)
    return result


def _sync_home(workdir: Path, sync: str) -> Any:
    """The bench consortium's home with the store's synchronous mode set in its configuration."""
    from dataclasses import replace

    consortium = create_consortium(workdir / f"node-{sync}", int(time.time() * 1000), chain_id="careledger-bench")
    consortium.home.write_config(replace(consortium.home.config(), sync=sync))
    return consortium


def compare_sync(txs: int, seed: int, workdir: Path, progress: Callable[[str], None] = lambda s: None,
                 paced_rate: float = 200.0, paced_seconds: float = 4.0) -> dict[str, Any]:
    """The cost of durable commits: the same load on fresh nodes, one per synchronous mode, in this run.

    Peak committed tx/s (large blocks: one flush per block is spread over many transactions) and
    p50/p99 latency at ``paced_rate`` tx/s (small blocks: the flush is paid almost per transaction).
    Each mode runs twice, in the order full, normal, normal, full, with half the transactions each, so
    that a machine growing busier or quieter during the run does not favour one mode. Both modes also
    flush the head record after every block (docs/architecture.md section 3).
    """
    runs: dict[str, list[tuple[int, float, list[float], int]]] = {"full": [], "normal": []}
    for i, mode in enumerate(("full", "normal", "normal", "full")):
        rng = random.Random(seed + i)
        consortium = _sync_home(workdir / str(i), mode)
        node = consortium.home.open_node()
        node.start()
        nonces = {org: 0 for org in consortium.admins}
        try:
            progress(f"sync={mode} ({i + 1} of 4): signing")
            peak_load = identity_mix(node.chain.chain_id, consortium.admins, max(1, txs // 2), 1, nonces, rng)
            paced_load = identity_mix(node.chain.chain_id, consortium.admins, int(paced_rate * paced_seconds / 2), 1,
                                      nonces, rng)
            progress(f"sync={mode} ({i + 1} of 4): peak, then paced at {paced_rate:,.0f} tx/s")
            committed, seconds, _ = run_load(node, peak_load, None)
            before = node.head.height
            _, _, latencies = run_load(node, paced_load, paced_rate)
            runs[mode].append((committed, seconds, latencies, node.head.height - before))
        finally:
            node.close()
    out: dict[str, Any] = {}
    for mode, parts in runs.items():
        latencies = [x for part in parts for x in part[2]]
        out[mode] = {"tx_per_s": round(sum(p[0] for p in parts) / sum(p[1] for p in parts), 1),
                     "paced_rate_per_s": paced_rate, "paced_p50_ms": round(_percentile(latencies, 0.5), 2),
                     "paced_p99_ms": round(_percentile(latencies, 0.99), 2),
                     "paced_blocks": sum(p[3] for p in parts)}
    full, normal = out["full"], out["normal"]
    out["full_vs_normal_tx_per_s"] = round(full["tx_per_s"] / max(1e-9, normal["tx_per_s"]), 3)
    out["full_minus_normal_paced_p50_ms"] = round(full["paced_p50_ms"] - normal["paced_p50_ms"], 2)
    return out


def _bench_solo(txs: int, seed: int, workdir: Path, progress: Callable[[str], None],
                sync: str = "full") -> dict[str, Any]:
    rng = random.Random(seed)
    consortium = _sync_home(workdir, sync)
    node = consortium.home.open_node()
    node.start()
    chain_id = node.chain.chain_id
    lanes = 1  # one client thread: more would only contend with the node for the interpreter lock
    nonces = {org: 0 for org in consortium.admins}
    try:
        progress("measuring the Ed25519 verification limit")
        limit = verify_limit()
        progress(f"signing {txs:,} transactions (peak phase)")
        peak_load = identity_mix(chain_id, consortium.admins, txs, lanes, nonces, rng)
        progress("peak phase: submitting as fast as the node admits")
        committed, seconds, peak_lat = run_load(node, peak_load, None)
        peak = committed / seconds
        half = peak / 2
        latency_txs = max(1000, int(half * 4))
        progress(f"signing {latency_txs:,} transactions (latency phase at {half:,.0f} tx/s)")
        lat_load = identity_mix(chain_id, consortium.admins, latency_txs, lanes, nonces, rng)
        progress("latency phase: paced at half the peak rate")
        lat_committed, lat_seconds, latencies = run_load(node, lat_load, half)
        blocks = node.head.height
    finally:
        node.close()
    progress("re-verifying the whole chain")
    report = verify_file(consortium.home.db_path)
    if not report.ok:
        raise RuntimeError(f"verify failed after the benchmark: {report.problem}")
    return {
        "engine": "solo", "workload": "identity-governance-mix", "sync": sync, "txs": committed + lat_committed,
        "tx_per_s": round(peak, 1), "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2), "latency_rate_per_s": round(lat_committed / lat_seconds, 1),
        "peak_p99_ms": round(_percentile(peak_lat, 0.99), 2),
        "verify_limit_per_s": round(limit, 1), "ratio": round(peak / limit, 3),
        "verify_tx_per_s": round(report.txs / report.seconds, 1), "blocks": blocks,
        "mean_block_txs": round(report.txs / max(1, report.blocks), 1),
        "cores": os.cpu_count(), "median_latency_peak_ms": round(statistics.median(peak_lat), 2) if peak_lat else 0,
    }
