"""``careledger bench --engine cometbft``: a CareLedger network against CometBFT's kvstore, same load.

Three local networks of N validators each, one after the other on this machine, driven by the same
load generator: CareLedger; CometBFT's built-in ``kvstore`` app (``proxy_app = "kvstore"``, inside
the CometBFT process: the issue's baseline); and the same kvstore run as a separate process over the
ABCI socket (``abci-cli kvstore``, CometBFT's own Go example app): what CometBFT's socket client
allows an application that does almost nothing, the ceiling for any out-of-process application on
this machine. Per network, two phases:

1. *peak*: lanes of batched JSON-RPC ``broadcast_tx_async`` calls (spread over every node's RPC),
   offering more than the network can take, with at most ``window`` transactions in flight;
2. *latency*: the same lanes paced at a fixed rate (default: the lower of 1,000 tx/s and 80% of the
   CareLedger peak), open loop.

``broadcast_tx_async`` hands a transaction to the node's mempool and returns before the app's
CheckTx answers (as CometBFT's own load tools do); with ``broadcast_tx_sync`` every lane would wait
for CheckTx's round trip through the ABCI socket and measure the load generator's concurrency
rather than the network. A transaction the mempool then refuses never commits: a phase ends when
everything sent has committed or nothing has committed for ``STALL_S`` seconds.

Committed transactions are counted from the blocks (a watcher reads each new block at node0 and
hashes its transactions), never from the submissions; latency runs from the moment a transaction's
batch was sent to the moment the watcher saw its block. CareLedger transactions are signed
identity transactions (70% patient registrations, 30% member enrolments by the organisations'
admins); kvstore transactions are ``key=value`` bytes of the same mean size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from careledger.bench.solo import _percentile
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.net.cluster import LocalNetwork
from careledger.net.layout import Tuning

BATCH = 25
STALL_S = 20.0  # a phase gives up when nothing commits for this long


def careledger_lanes(net: LocalNetwork, count: int, lanes: int, nonces: dict[str, int],
                     rng: random.Random) -> list[list[bytes]]:
    """Signed transactions split in lanes; each admin's enrolments stay on one lane, in nonce order."""
    chain_id = net.spec.chain_id
    admins = [(n.org, net.spec.admin_key(n)) for n in net.spec.nodes]
    out: list[list[bytes]] = [[] for _ in range(lanes)]
    for i in range(count):
        if rng.random() < 0.7:
            patient = SigningKey(rng.randbytes(32))
            out[i % lanes].append(sign_tx(patient, chain_id, "identity.register_patient", 1, 1, {}))
            continue
        k = rng.randrange(len(admins))
        org, admin = admins[k]
        nonces[org] = nonces.get(org, 0) + 1
        payload = {"member": SigningKey(rng.randbytes(32)).public_hex, "org": org, "roles": ["physician"]}
        out[k % lanes].append(sign_tx(admin, chain_id, "identity.enrol_member", 1, nonces[org], payload))
    return out


def kvstore_lanes(count: int, lanes: int, size: int, rng: random.Random, tag: str) -> list[list[bytes]]:
    out: list[list[bytes]] = [[] for _ in range(lanes)]
    for i in range(count):
        key = f"{tag}-{i}".encode()
        pad = max(1, size - len(key) - 1)
        out[i % lanes].append(key + b"=" + rng.randbytes(pad // 2 + 1).hex().encode()[:pad])
    return out


class Watcher(threading.Thread):
    """Reads every new block at one node and records when each transaction hash was first seen committed."""

    def __init__(self, rpc_url: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=rpc_url, timeout=30)
        self.seen: dict[bytes, float] = {}
        self.blocks: list[tuple[int, int, float]] = []  # (height, txs, seen at)
        self.stop_event = threading.Event()
        self.height = self._latest()
        self.last_commit = time.perf_counter()

    def idle_for(self) -> float:
        """Seconds since a block with transactions was last seen."""
        return time.perf_counter() - self.last_commit

    def _latest(self) -> int:
        res = self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "status", "params": {}}).json()
        return int(res["result"]["sync_info"]["latest_block_height"])

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                latest = self._latest()
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.05)
                continue
            while self.height < latest:
                h = self.height + 1
                res = self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "block",
                                                "params": {"height": str(h)}}).json()
                now = time.perf_counter()
                txs = res["result"]["block"]["data"]["txs"] or []
                for tx in txs:
                    self.seen.setdefault(hashlib.sha256(base64.b64decode(tx)).digest(), now)
                if txs:
                    self.last_commit = now
                self.blocks.append((h, len(txs), now))
                self.height = h
            time.sleep(0.03)
        self.http.close()


def drive(net: LocalNetwork, lanes: list[list[bytes]], rate: float | None, window: int,
          watcher: Watcher) -> dict[str, Any]:
    """Send every lane in batches (paced at ``rate`` in total, or as fast as ``window`` allows)."""
    sent: dict[bytes, float] = {}
    rejected: list[str] = []
    lock = threading.Lock()
    per_lane = rate / len(lanes) if rate else None
    urls = [n.rpc_url for n in net.spec.nodes]

    def batches(txs: list[bytes]) -> list[tuple[list[bytes], bytes]]:
        """Each batch's transaction hashes and JSON-RPC body, made before the clock starts."""
        out = []
        for b in range(0, len(txs), BATCH):
            batch = txs[b:b + BATCH]
            body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_async",
                     "params": {"tx": base64.b64encode(raw).decode()}} for i, raw in enumerate(batch)]
            out.append(([hashlib.sha256(raw).digest() for raw in batch], json.dumps(body).encode()))
        return out

    prepared = [batches(txs) for txs in lanes]

    def lane(index: int, work: list[tuple[list[bytes], bytes]]) -> None:
        http = httpx.Client(base_url=urls[index % len(urls)], timeout=60,
                            headers={"content-type": "application/json"})
        done = 0
        for hashes, body in work:
            done += len(hashes)
            if per_lane:
                delay = start + done / per_lane - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            while len(sent) - len(rejected) - len(watcher.seen) > window:
                if watcher.idle_for() > STALL_S:
                    break
                time.sleep(0.01)
            now = time.perf_counter()
            with lock:
                for tx_hash in hashes:
                    sent[tx_hash] = now
            try:
                answers = http.post("/", content=body).json()
            except (httpx.HTTPError, ValueError) as exc:  # unknown outcome: counted as not accepted
                answers = [{"error": f"{type(exc).__name__}"}] * len(hashes)
            for answer in answers if isinstance(answers, list) else [answers]:
                result = answer.get("result") or {}
                if "error" in answer or int(result.get("code", 0)):
                    with lock:
                        rejected.append(str(answer.get("error") or result.get("log"))[:120])
        http.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=lane, args=(i, work), daemon=True) for i, work in enumerate(prepared)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(sent) - len(rejected)
    while sum(1 for h in sent if h in watcher.seen) < total and watcher.idle_for() < STALL_S:
        time.sleep(0.1)
    latencies = [(watcher.seen[h] - t) * 1000 for h, t in sent.items() if h in watcher.seen]
    committed = len(latencies)
    last = max((watcher.seen[h] for h in sent if h in watcher.seen), default=start)
    last_sent = max(sent.values(), default=start)
    return {"sent": len(sent), "rejected": len(rejected), "committed": committed,
            "sent_per_s": round(len(sent) / max(1e-9, last_sent - start), 1),  # the generator's own pace
            "tx_per_s": round(committed / max(1e-9, last - start), 1),
            "p50_ms": round(_percentile(latencies, 0.5), 1), "p99_ms": round(_percentile(latencies, 0.99), 1),
            "first_rejection": rejected[0] if rejected else None}


def run_network(kind: str, validators: int, peak_txs: int, latency_rate: float | None, seconds: float,
                root: Path, tuning: Tuning, lanes: int, progress: Callable[[str], None],
                tx_size: int = 0) -> dict[str, Any]:
    rng = random.Random(7)
    net = LocalNetwork.create(root / kind, validators, chain_id=f"bench-{kind}", tuning=tuning,
                              proxy_app="" if kind == "careledger" else kind)
    try:
        net.start()
        net.wait_height(1, timeout=90)
        if kind == "careledger":
            net.wait_api(timeout=90)
        watcher = Watcher(net.spec.nodes[0].rpc_url)
        watcher.start()
        nonces: dict[str, int] = {}

        def load(count: int, tag: str) -> list[list[bytes]]:
            if kind == "careledger":
                return careledger_lanes(net, count, lanes, nonces, rng)
            return kvstore_lanes(count, lanes, tx_size, rng, tag)

        progress(f"{kind}: peak phase, {peak_txs:,} transactions")
        peak_load = load(peak_txs, "peak")
        size = sum(len(t) for lane in peak_load for t in lane) // max(1, peak_txs)
        peak = drive(net, peak_load, None, window=2_500, watcher=watcher)
        rate = latency_rate or min(1000.0, 0.8 * peak["tx_per_s"])
        progress(f"{kind}: latency phase at {rate:,.0f} tx/s for {seconds:g} s")
        paced = drive(net, load(int(rate * seconds), "paced"), rate, window=20_000, watcher=watcher)
        watcher.stop_event.set()
        blocks = [b for b in watcher.blocks if b[1]]
        return {"peak": peak, "paced": {**paced, "offered_per_s": round(rate, 1)}, "mean_tx_bytes": size,
                "blocks_with_txs": len(blocks),
                "mean_block_txs": round(sum(b[1] for b in blocks) / max(1, len(blocks)), 1)}
    finally:
        net.stop()


def bench_cometbft(validators: int = 4, peak_txs: int = 20_000, seconds: float = 15.0,
                   latency_rate: float | None = None, timeout_commit: str = "300ms", lanes: int = 8,
                   home: Path | None = None, progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    root = home or Path(tempfile.mkdtemp(prefix="careledger-bench-cmt-"))
    tuning = Tuning(timeout_commit=timeout_commit, indexer="null")  # as the earlier figures were measured
    careledger = run_network("careledger", validators, peak_txs, latency_rate, seconds, root, tuning, lanes, progress)
    rate = latency_rate or careledger["paced"]["offered_per_s"]
    kvstore = run_network("kvstore", validators, peak_txs, rate, seconds, root, tuning, lanes, progress,
                          tx_size=careledger["mean_tx_bytes"])
    socket = run_network("kvstore-socket", validators, peak_txs, rate, seconds, root, tuning, lanes, progress,
                         tx_size=careledger["mean_tx_bytes"])
    peak = careledger["peak"]["tx_per_s"]
    ratio = peak / max(1e-9, kvstore["peak"]["tx_per_s"])
    return {
        "engine": "cometbft", "validators": validators, "cores": os.cpu_count(), "timeout_commit": timeout_commit,
        "broadcast": "broadcast_tx_async", "careledger": careledger, "kvstore": kvstore, "kvstore_socket": socket,
        "ratio_peak_tx_per_s": round(ratio, 3),
        "ratio_peak_vs_kvstore_socket": round(peak / max(1e-9, socket["peak"]["tx_per_s"]), 3),
        "ratio_kvstore_socket_vs_kvstore": round(socket["peak"]["tx_per_s"] / max(1e-9, kvstore["peak"]["tx_per_s"]),
                                                 3),
        "targets": {"ratio_ge_0.7": ratio >= 0.7, "careledger_ge_1000_tx_per_s": peak >= 1000,
                    "careledger_p99_le_3000_ms": careledger["paced"]["p99_ms"] <= 3000},
    }
