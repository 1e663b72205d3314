"""``careledger bench --engine solo --via http``: committed throughput where users submit, over HTTP.

One run measures, one after the other on this machine, with the same load generator and load shape:

1. the Ed25519 verification limit with libsodium on all cores (the machine's own ceiling);
2. *ceiling*: a bare endpoint on the node's own HTTP stack doing one signature check per request
   (:mod:`careledger.bench.ceiling`), at peak: the most any node behind this stack could answer;
3. *careledger*: a solo node (real home, real SQLite, started as ``careledger node start`` in its own
   process) taking one signed ``consent.grant`` per ``POST /v1/txs``: a peak phase, then a phase
   paced at half the peak rate;
4. *hardhat*: the Ethereum dev chain a prototype would use (``bench/peers/hardhat``: 50 accounts,
   no automine, a block every 200 ms, MedRec's ``grant`` per ``eth_sendRawTransaction``), the same
   two phases.

The load generator is ``careledger-loadgen`` (``bench/loadgen``, Go, built by
``scripts/build-loadgen.sh``), run as a separate process per phase over N keep-alive connections:
each signer's transactions carry consecutive nonces, signers proceed concurrently, and up to
``lane_depth`` of one signer's consecutive nonces are in flight at once over different connections
(so they may arrive out of order, as they do from concurrent clients; 1 keeps them in order).
Everything is signed before the clock starts.

Committed transactions are counted from the blocks, never from the responses: a watcher reads each
new block as it commits (the node's SQLite store, read-only, so that watching costs the node
nothing; the Hardhat node over JSON-RPC) and notes when it first saw each transaction; latency runs
from the moment the generator sent a transaction to that moment. After each Hardhat phase the
peer's ``count`` re-reads the blocks and receipts. A phase ends when every accepted transaction has
committed or none has for ``stall_s`` seconds. CPU seconds come from ``/proc`` (the node's and the
peer's whole process trees, over the phase) and from ``wait4`` for the generator, so the report shows
where the time went.

``bench_scale`` is the growth run: the same peak load in chunks (100,000 transactions by default),
reporting throughput per chunk, the node's RSS after each, and the time to start a node on the
grown store against an empty one.

The processes, the generator runs, the block watchers and the phase accounting live in
:mod:`careledger.bench.harness`; this module holds the workload, the targets and the report.
Run directly: ``python -m careledger.bench.http [--txs N] [--json] ...`` (``--help``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from careledger.bench.harness import (
    BenchSetupError,
    EthWatcher,
    LoadShape,
    StoreWatcher,
    drive,
    ensure_hardhat,
    ensure_loadgen,
    start_ceiling,
    start_hardhat,
    start_node,
    tree_rss_bytes,
)
from careledger.bench.solo import verify_limit
from careledger.contracts.identity import compute_pseudonym
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import create_consortium

CHAIN_ID = "careledger-bench-http"
Progress = Callable[[str], None]


# --- the CareLedger workload ------------------------------------------------------------------------

@dataclass
class Patients:
    """The benchmark's signers: patients granting consents, each with its next nonce."""

    keys: list[SigningKey]
    next_nonce: list[int]
    rng: random.Random

    @classmethod
    def make(cls, count: int, seed: int) -> Patients:
        rng = random.Random(seed)
        return cls([SigningKey(rng.randbytes(32)) for _ in range(count)], [1] * count, rng)

    def registrations(self) -> list[bytes]:
        out = []
        for s, key in enumerate(self.keys):
            out.append(sign_tx(key, CHAIN_ID, "identity.register_patient", 1, self.next_nonce[s], {}))
            self.next_nonce[s] += 1
        return out

    def grants(self, per_signer: int, expiry_ms: int) -> tuple[list[tuple[int, str, bytes]], list[str]]:
        """``per_signer`` consent.grant transactions per patient, consecutive nonces, interleaved by round:
        each grants an organisation access to one record until ``expiry_ms`` (what MedRec's grant stores)."""
        requests, hashes = [], []
        orgs = ["st-marys", "riverside-clinic", "high-street-pharmacy", "uni-research"]
        for n in range(per_signer):
            for s, key in enumerate(self.keys):
                payload = {"patient": compute_pseudonym(key.public_hex),
                           "grantee": {"kind": "org", "id": orgs[(s + n) % len(orgs)]},
                           "provision": "permit", "purposes": ["TREAT"],
                           "records": [f"r-{self.rng.randbytes(16).hex()}"],
                           "period": {"end_ms": expiry_ms}}
                raw = sign_tx(key, CHAIN_ID, "consent.grant", 1, self.next_nonce[s] + n, payload)
                requests.append((s, "/v1/txs", raw))
                hashes.append(hashlib.sha256(raw).hexdigest())
        for s in range(len(self.keys)):
            self.next_nonce[s] += per_signer
        return requests, hashes

    def resync(self, http: httpx.Client) -> None:
        """Take each patient's next nonce from the node (after refusals left gaps)."""
        for s, key in enumerate(self.keys):
            self.next_nonce[s] = int(http.get(f"/v1/accounts/{key.public_hex}/nonce").json()["next"])


def _register(http: httpx.Client, raws: list[bytes]) -> None:
    res = http.post("/v1/txs/batch", params={"wait": "commit", "timeout": 60},
                    content=json.dumps([r.hex() for r in raws]), headers={"Content-Type": "application/json"})
    doc = res.json()
    bad = [r for r in doc.get("results", []) if r.get("status") != "committed" or r["receipt"]["code"] != 0]
    if res.status_code != 200 or bad or doc.get("rejected"):
        raise BenchSetupError(f"setting up the benchmark's patients failed: {str(bad or doc)[:300]}")


def _wait_mempool_empty(http: httpx.Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and http.get("/v1/status").json().get("mempool", 0):
        time.sleep(0.05)


# --- targets ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HttpBench:
    """One run's settings."""

    txs: int = 10_000  # transactions in each target's peak phase
    signers: int = 50
    shape: LoadShape = field(default_factory=LoadShape)
    half_seconds: float = 5.0  # length of the phase paced at half the peak rate
    warmup: int = 500  # transactions sent (and not reported) before the peak phase
    seed: int = 7
    stall_s: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.signers <= 50:
            raise ValueError("signers must be 1 to 50 (the Hardhat peer has 50 accounts)")
        if self.txs < 1 or self.warmup < 0 or self.half_seconds <= 0:
            raise ValueError("txs must be positive, warmup non-negative and half_seconds positive")

    def per_signer(self, count: int) -> int:
        return max(1, math.ceil(count / self.signers))


def _half(cfg: HttpBench, peak: float) -> tuple[float, int]:
    rate = max(10.0, peak / 2)
    return rate, cfg.per_signer(int(rate * cfg.half_seconds))


def bench_careledger(cfg: HttpBench, loadgen: Path, workdir: Path, progress: Progress) -> dict[str, Any]:
    """The solo node over HTTP: peak, then paced at half the peak rate."""
    now_ms = int(time.time() * 1000)
    consortium = create_consortium(workdir / "careledger", now_ms, chain_id=CHAIN_ID)
    node = start_node(consortium.home.path, workdir)
    try:
        with httpx.Client(base_url=node.url, timeout=60) as http:
            patients = Patients.make(cfg.signers, cfg.seed)
            _register(http, patients.registrations())
            expiry = now_ms + 365 * 86_400_000
            watcher = StoreWatcher(consortium.home.db_path).start_at(int(http.get("/v1/status").json()["height"]))

            def settled() -> bool:
                status = http.get("/v1/status").json()
                return int(status["mempool"]) == 0 and watcher.height >= int(status["height"])

            try:
                if cfg.warmup:
                    progress(f"careledger: warm-up, {cfg.warmup:,} transactions")
                    reqs, hashes = patients.grants(cfg.per_signer(cfg.warmup), expiry)
                    drive(loadgen, node, reqs, hashes, None, watcher, cfg.shape, workdir, "careledger-warmup",
                          cfg.stall_s, settled=settled)
                    _wait_mempool_empty(http)
                    patients.resync(http)
                progress(f"careledger: signing {cfg.txs:,} consent.grant transactions")
                reqs, hashes = patients.grants(cfg.per_signer(cfg.txs), expiry)
                progress("careledger: peak phase")
                peak = drive(loadgen, node, reqs, hashes, None, watcher, cfg.shape, workdir, "careledger-peak",
                             cfg.stall_s, settled=settled)
                _wait_mempool_empty(http)
                patients.resync(http)
                rate, per_signer = _half(cfg, peak.tx_per_s)
                reqs, hashes = patients.grants(per_signer, expiry)
                progress(f"careledger: half-load phase at {rate:,.0f} tx/s")
                half = drive(loadgen, node, reqs, hashes, rate, watcher, cfg.shape, workdir, "careledger-half",
                             cfg.stall_s, settled=settled)
                height = int(http.get("/v1/status").json()["height"])
            finally:
                watcher.stop()
        return {"peak": asdict(peak), "half": asdict(half), "start_s": round(node.started_s, 2), "height": height,
                "rss_mb": round(tree_rss_bytes(node.proc.pid) / 2**20, 1)}
    finally:
        node.stop()


def _peer(folder: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(["node", "peer.js", *args], cwd=folder, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchSetupError(f"hardhat peer {args[0]} failed: {proc.stderr.strip()[-500:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def _hardhat_load(folder: Path, url: str, workdir: Path, tag: str, signers: int, per_signer: int,
                  seed: int) -> tuple[list[tuple[int, str, bytes]], list[str], dict[str, Any]]:
    bodies, hashes_file = workdir / f"{tag}.hh-bodies", workdir / f"{tag}.hashes"
    info = _peer(folder, "prepare", "--url", url, "--out", str(bodies), "--hashes", str(hashes_file),
                 "--signers", str(signers), "--per-signer", str(per_signer), "--seed", f"{seed}-{tag}")
    requests = []
    for line in bodies.read_text().splitlines():
        lane, target, body = line.split("\t")
        requests.append((int(lane), target, base64.b64decode(body)))
    info["hashes_file"] = str(hashes_file)
    return requests, hashes_file.read_text().lower().split(), info


def bench_hardhat(cfg: HttpBench, loadgen: Path, workdir: Path, progress: Progress) -> dict[str, Any]:
    """The Hardhat peer over JSON-RPC with the same shape: peak, then half the peak rate; counted from
    its blocks, the receipts re-read afterwards by the peer's ``count``."""
    folder = ensure_hardhat()
    signers = cfg.signers
    node = start_hardhat(folder, workdir)

    def phase(name: str, per_signer: int, rate: float | None) -> dict[str, Any]:
        progress(f"hardhat: signing {per_signer * signers:,} grant transactions ({name})")
        reqs, hashes, info = _hardhat_load(folder, node.url, workdir, f"hardhat-{name}", signers, per_signer,
                                           cfg.seed)
        watcher = EthWatcher(node.url, info["after_block"])
        watcher.start()
        try:
            progress(f"hardhat: {name} phase" + (f" at {rate:,.0f} tx/s" if rate else ""))
            result = drive(loadgen, node, reqs, hashes, rate, watcher, cfg.shape, workdir, f"hardhat-{name}",
                           cfg.stall_s, jsonrpc=True)
        finally:
            watcher.stop()
        counted = _peer(folder, "count", "--url", node.url, "--hashes", info["hashes_file"], "--after",
                        str(info["after_block"]))
        return {**asdict(result), "counted": {k: counted[k] for k in ("committed", "reverted", "head")},
                "blocks_with_txs": sum(1 for b in counted["blocks"] if b["txs"]), "gas_limit": info["gas_limit"]}

    try:
        if cfg.warmup:
            phase("warmup", cfg.per_signer(cfg.warmup), None)
        peak = phase("peak", cfg.per_signer(cfg.txs), None)
        rate, per_signer = _half(cfg, peak["tx_per_s"])
        half = phase("half", per_signer, rate)
        return {"peak": peak, "half": half, "start_s": round(node.started_s, 2),
                "rss_mb": round(tree_rss_bytes(node.proc.pid) / 2**20, 1)}
    finally:
        node.stop()


def bench_ceiling(cfg: HttpBench, loadgen: Path, workdir: Path, progress: Progress,
                  app: str = "fastapi") -> dict[str, Any]:
    """The bare endpoint on the node's HTTP stack, at peak, with the same transactions' bytes."""
    server = start_ceiling(workdir, CHAIN_ID, app)
    try:
        patients = Patients.make(cfg.signers, cfg.seed + 1)
        expiry = int(time.time() * 1000) + 86_400_000
        if cfg.warmup:
            reqs, hashes = patients.grants(cfg.per_signer(cfg.warmup), expiry)
            drive(loadgen, server, reqs, hashes, None, None, cfg.shape, workdir, f"ceiling-{app}-warmup", cfg.stall_s)
        reqs, hashes = patients.grants(cfg.per_signer(cfg.txs), expiry)
        progress(f"ceiling ({app}): peak phase")
        peak = drive(loadgen, server, reqs, hashes, None, None, cfg.shape, workdir, f"ceiling-{app}-peak",
                     cfg.stall_s)
        return {"app": app, "peak": asdict(peak), "req_per_s": peak.tx_per_s}
    finally:
        server.stop()


@contextmanager
def _workdir(home: Path | None) -> Iterator[Path]:
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        yield home
        return
    with tempfile.TemporaryDirectory(prefix="careledger-bench-http-") as tmp:
        yield Path(tmp)


def bench_http(cfg: HttpBench = HttpBench(), hardhat: bool = True, ceilings: tuple[str, ...] = ("fastapi",),
               home: Path | None = None, progress: Progress = lambda s: None) -> dict[str, Any]:
    """The whole HTTP benchmark: verify limit, ceiling(s), CareLedger, and the Hardhat peer; one object.
    Without ``home`` it works in a temporary directory it removes."""
    loadgen = ensure_loadgen()
    with _workdir(home) as workdir:
        progress("measuring the Ed25519 verification limit")
        limit = verify_limit()
        ceiling = {app: bench_ceiling(cfg, loadgen, workdir, progress, app) for app in ceilings}
        careledger = bench_careledger(cfg, loadgen, workdir, progress)
        peer = bench_hardhat(cfg, loadgen, workdir, progress) if hardhat else None
    cl_peak = careledger["peak"]["tx_per_s"]
    main_ceiling = ceiling[ceilings[0]]["req_per_s"] if ceilings else None
    ordering = sum(careledger[p]["refused"].get("NONCE_OUT_OF_ORDER", 0) for p in ("peak", "half"))
    report: dict[str, Any] = {
        "engine": "solo", "via": "http", "workload": "consent.grant", "cores": os.cpu_count(),
        "txs": cfg.txs, "signers": cfg.signers, "connections": cfg.shape.connections,
        "lane_depth": cfg.shape.lane_depth, "half_seconds": cfg.half_seconds,
        "verify_limit_per_s": round(limit, 1), "ceiling": ceiling, "careledger": careledger, "hardhat": peer,
        "tx_per_s": cl_peak, "p50_ms": careledger["half"]["p50_ms"], "p99_ms": careledger["half"]["p99_ms"],
        "ratio_vs_hardhat": round(cl_peak / max(1e-9, peer["peak"]["tx_per_s"]), 3) if peer else None,
        "ratio_vs_ceiling": round(cl_peak / max(1e-9, main_ceiling), 3) if main_ceiling else None,
        "ratio_vs_verify_limit": round(cl_peak / limit, 3),
        "ratio_ceiling_vs_verify_limit": round(main_ceiling / limit, 3) if main_ceiling else None,
        # CPU per committed transaction is steadier than wall-clock rates on a shared machine: the
        # same comparisons by the CPU each target's processes spent (lower is better for CareLedger)
        "cpu_ratio_vs_hardhat": round(careledger["peak"]["cpu_us_per_tx"] / max(1e-9, peer["peak"]["cpu_us_per_tx"]),
                                      3) if peer else None,
        "cpu_ratio_vs_ceiling": round(careledger["peak"]["cpu_us_per_tx"]
                                      / max(1e-9, ceiling[ceilings[0]]["peak"]["cpu_us_per_tx"]), 3)
        if ceilings else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    report["targets"] = {
        "vs_hardhat_ge_2.5": None if peer is None else report["ratio_vs_hardhat"] >= 2.5,
        "vs_ceiling_ge_0.7": None if main_ceiling is None else report["ratio_vs_ceiling"] >= 0.7,
        "no_ordering_refusals": ordering == 0,
        "p99_at_half_le_250_ms": careledger["half"]["p99_ms"] <= 250,
    }
    return report


def bench_scale(txs: int, chunk: int = 100_000, cfg: HttpBench = HttpBench(), home: Path | None = None,
                progress: Progress = lambda s: None) -> dict[str, Any]:
    """The growth run: ``txs`` transactions at peak in chunks of ``chunk`` (after ``cfg.warmup``, not
    reported); throughput, p99 and the node's memory per chunk (all resident pages, and its own heap
    without the store's memory-mapped pages), and the seconds from spawning ``careledger node start``
    to its API answering, on the grown store and, at the beginning, on an empty one."""
    loadgen = ensure_loadgen()
    with _workdir(home) as workdir:
        now_ms = int(time.time() * 1000)
        consortium = create_consortium(workdir / "careledger", now_ms, chain_id=CHAIN_ID)
        node = start_node(consortium.home.path, workdir)
        empty_start_s = node.started_s
        chunks: list[dict[str, Any]] = []
        try:
            with httpx.Client(base_url=node.url, timeout=60) as http:
                patients = Patients.make(cfg.signers, cfg.seed)
                _register(http, patients.registrations())
                watcher = StoreWatcher(consortium.home.db_path).start_at(int(http.get("/v1/status").json()["height"]))
                expiry = now_ms + 365 * 86_400_000
                try:
                    if cfg.warmup:  # not reported: the first chunk should not carry the cold start
                        reqs, hashes = patients.grants(cfg.per_signer(cfg.warmup), expiry)
                        drive(loadgen, node, reqs, hashes, None, watcher, cfg.shape, workdir, "scale-warmup",
                              cfg.stall_s)
                        _wait_mempool_empty(http)
                        patients.resync(http)
                    done = 0
                    while done < txs:
                        size = min(chunk, txs - done)
                        reqs, hashes = patients.grants(cfg.per_signer(size), expiry)
                        progress(f"scale: transactions {done:,} to {done + len(reqs):,}")
                        phase = drive(loadgen, node, reqs, hashes, None, watcher, cfg.shape, workdir,
                                      f"scale-{len(chunks)}", cfg.stall_s)
                        _wait_mempool_empty(http)
                        patients.resync(http)
                        done += len(reqs)
                        chunks.append({"txs": len(reqs), "committed": phase.committed, "tx_per_s": phase.tx_per_s,
                                       "p99_ms": phase.p99_ms, "refused": phase.refused,
                                       "node_rss_mb": round(tree_rss_bytes(node.proc.pid) / 2**20, 1),
                                       "node_anon_mb": round(tree_rss_bytes(node.proc.pid, "RssAnon") / 2**20, 1),
                                       "cpu_share": phase.cpu_share})
                finally:
                    watcher.stop()
        finally:
            node.stop()
        db_bytes = consortium.home.db_path.stat().st_size
        progress("scale: restarting the node on the grown store")
        again = start_node(consortium.home.path, workdir)
        again.stop()
    first, last = float(chunks[0]["tx_per_s"]), float(chunks[-1]["tx_per_s"])
    return {"engine": "solo", "via": "http", "mode": "scale", "txs": txs, "chunk": chunk, "chunks": chunks,
            "committed": sum(c["committed"] for c in chunks),
            "last_vs_first": round(last / max(1e-9, first), 3),
            "node_rss_max_mb": max(float(c["node_rss_mb"]) for c in chunks),
            "node_anon_max_mb": max(float(c["node_anon_mb"]) for c in chunks), "db_mb": round(db_bytes / 2**20, 1),
            "start_s_grown": round(again.started_s, 2), "start_s_empty": round(empty_start_s, 2)}


# --- direct use -------------------------------------------------------------------------------------

def format_table(report: dict[str, Any]) -> str:
    """The report of :func:`bench_http` as lines of text (what the CLI prints without --json)."""
    lines = []
    cl, hh = report["careledger"], report["hardhat"]
    for name, part in (("careledger", cl), ("hardhat", hh)):
        if part is None:
            continue
        for phase in ("peak", "half"):
            p = part[phase]
            lines.append(f"{name:<11} {phase:<5} {p['tx_per_s']:>9,.1f} tx/s  {p['cpu_us_per_tx']:>7,.0f} µs CPU/tx  "
                         f"p50 {p['p50_ms']:>7.1f} ms  "
                         f"p99 {p['p99_ms']:>7.1f} ms  committed {p['committed']:>7,}  refused {p['refused']}  "
                         f"cpu {p['cpu_share']}")
    for app, c in report["ceiling"].items():
        p = c["peak"]
        lines.append(f"ceiling     {app:<7} {p['tx_per_s']:>7,.1f} req/s  {p['cpu_us_per_tx']:>7,.0f} µs CPU/req  "
                     f"cpu {p['cpu_share']}  "
                     f"generator {p['generator']['cpu_us_per_request']} µs/request")
    lines.append(f"verify limit {report['verify_limit_per_s']:,.0f}/s; ratios: "
                 f"vs hardhat {report['ratio_vs_hardhat']}, vs ceiling {report['ratio_vs_ceiling']}, "
                 f"vs verify limit {report['ratio_vs_verify_limit']}")
    lines.append(f"targets: {report['targets']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m careledger.bench.http",
                                     description="CareLedger over HTTP against the Hardhat peer and the HTTP ceiling.")
    parser.add_argument("--txs", type=int, default=HttpBench.txs, help="transactions in each peak phase "
                        "(with --scale: in all)")
    parser.add_argument("--signers", type=int, default=HttpBench.signers)
    parser.add_argument("--connections", type=int, default=LoadShape.connections)
    parser.add_argument("--lane-depth", type=int, default=LoadShape.lane_depth,
                        help="a signer's consecutive nonces in flight at once (1: in order; 0: no limit)")
    parser.add_argument("--half-seconds", type=float, default=HttpBench.half_seconds)
    parser.add_argument("--warmup", type=int, default=HttpBench.warmup)
    parser.add_argument("--seed", type=int, default=HttpBench.seed)
    parser.add_argument("--no-hardhat", action="store_true", help="skip the Hardhat peer")
    parser.add_argument("--ceiling", action="append", choices=("fastapi", "asgi"),
                        help="ceiling app(s) to measure (default: fastapi)")
    parser.add_argument("--scale", action="store_true", help="the growth run instead (CareLedger only)")
    parser.add_argument("--chunk", type=int, default=100_000, help="--scale: transactions per reported chunk")
    parser.add_argument("--home", type=Path, help="keep the run's files here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    cfg = HttpBench(txs=args.txs, signers=args.signers, half_seconds=args.half_seconds, warmup=args.warmup,
                    seed=args.seed, shape=LoadShape(connections=args.connections, lane_depth=args.lane_depth))

    def progress(msg: str) -> None:
        if not args.json:
            print(f"… {msg}", file=sys.stderr, flush=True)

    try:
        if args.scale:
            report = bench_scale(args.txs, args.chunk, cfg, args.home, progress)
        else:
            report = bench_http(cfg, hardhat=not args.no_hardhat, ceilings=tuple(args.ceiling or ("fastapi",)),
                                home=args.home, progress=progress)
    except BenchSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=None if args.json else 2) if args.json or args.scale else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
