"""``careledger bench --workload supply``: the drug supply chain through the real commit path.

One run, on the embedded node (solo engine, SQLite, signatures checked in a worker process):
1. **commissioning**: pre-signed ``supply.commission`` transactions of 10,000 random 12-character
   serials each (about 150 KB, under the 256 KiB limit), submitted with ``Node.submit_async``;
   serials per second from the first submission to the last commit;
2. the ledger is filled to ``small`` serials (serial ranges, same commit path), then
   **verification latency** is sampled (p50/p99) over random known and unknown serials:
   ``verify_pack`` on a committed-state view, as the HTTP handler runs it, plus a smaller sample
   over real HTTP on loopback;
3. the ledger is filled to ``large`` serials and the latency is sampled again; the ratio
   p99(large)/p99(small) shows whether lookups stay flat as the ledger grows;
4. **EPCIS import**: documents of commissioning, packing and shipping events captured with
   ``supply.epcis_capture``; events per second, committed.
The issue's targets: ≥ 50,000 serials/s; p99 ≤ 5 ms at 10 million serials and ≤ 1.5 times its value at 1 million.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.contracts.supply import gs1
from careledger.contracts.supply.verification import verify_pack
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import create_consortium
from careledger.node.solo import Node
from careledger.node.store import StateView

PREFIX = "0614141"
GTIN = "0" + PREFIX + "00001"
GTIN += str(gs1.check_digit(GTIN))
BATCH = 10_000
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Submitter:
    """Signs one key's transactions with consecutive nonces and tracks their commits."""

    def __init__(self, node: Node, key: SigningKey) -> None:
        self.node = node
        self.key = key
        self.nonce = 0
        self.pending: list[Any] = []
        self.failures: list[str] = []
        self.last_commit = 0.0
        self._lock = threading.Lock()

    def sign(self, tx_type: str, payload: dict[str, Any]) -> bytes:
        self.nonce += 1
        return sign_tx(self.key, self.node.chain.chain_id, tx_type, 1, self.nonce, payload)

    def submit(self, raw: bytes) -> None:
        sub = self.node.submit_async(raw)
        sub.committed.add_done_callback(self._done)
        self.pending.append(sub)

    def _done(self, fut: Any) -> None:
        result = fut.result()
        with self._lock:
            self.last_commit = time.perf_counter()
            if not isinstance(result, Receipt) or result.code != 0:
                self.failures.append(str(getattr(result, "message", result)))

    def wait(self, timeout: float = 600) -> None:
        for sub in self.pending:
            sub.admitted.result(timeout=timeout)
            sub.committed.result(timeout=timeout)
        self.pending.clear()
        if self.failures:
            raise RuntimeError(f"{len(self.failures)} benchmark transactions failed, first: {self.failures[0]}")

    def run(self, tx_type: str, payload: dict[str, Any]) -> None:
        self.submit(self.sign(tx_type, payload))
        self.wait()


def random_serials(rng: random.Random, n: int) -> list[str]:
    alphabet = _ALPHABET
    return ["".join(rng.choices(alphabet, k=12)) for _ in range(n)]


def commission_random(sub: Submitter, rng: random.Random, total: int, lot: str) -> tuple[float, list[str]]:
    """Commission ``total`` random serials; returns (serials per second, a sample of the serials)."""
    raws, sample = [], []
    for i in range(0, total, BATCH):
        serials = random_serials(rng, min(BATCH, total - i))
        sample.extend(serials[:50])
        raws.append(sub.sign("supply.commission", {"expiry": "351231", "gtin": GTIN, "lot": lot,
                                                   "serials": serials}))
    start = time.perf_counter()
    for raw in raws:
        sub.submit(raw)
    sub.wait()
    return total / (sub.last_commit - start), sample


def fill(sub: Submitter, start_at: int, upto: int, progress: Callable[[str], None]) -> tuple[int, float]:
    """Commission numbered serials ``S<n>`` from ``start_at`` up to ``upto`` (serial ranges); (count, rate)."""
    if upto <= start_at:
        return start_at, 0.0
    begin = time.perf_counter()
    lot_size = 1_000_000
    n = start_at
    while n < upto:
        count = min(BATCH, upto - n, lot_size - n % lot_size)
        sub.submit(sub.sign("supply.commission", {"expiry": "351231", "gtin": GTIN, "lot": f"F{n // lot_size}",
                                                  "serial_range": {"count": count, "prefix": "S", "start": n,
                                                                   "width": 9}}))
        n += count
        if len(sub.pending) >= 50:
            sub.wait()
            progress(f"{n:,} numbered serials on the ledger")
    sub.wait()
    return n, (n - start_at) / (sub.last_commit - begin)


def _pick(rng: random.Random, i: int, filled: int, extra: list[str]) -> str:
    if i % 10 == 9:
        return "X" + "".join(rng.choices(_ALPHABET, k=11))  # unknown
    if i % 2 and extra:
        return rng.choice(extra)  # a random serial from the commissioning phase
    return f"S{rng.randrange(filled):09d}"  # a numbered serial from the fill phase


def sample_latency(ledgers: list[tuple[StateView, int]], extra: list[str], rng: random.Random, samples: int,
                   rounds: int = 5) -> list[dict[str, float]]:
    """p50/p99 of ``verify_pack`` on each ledger: 90 % known serials, 10 % unknown.

    With two ledgers (the same chain copied at 1M serials, and live at 10M) the lookups alternate
    between them, so that whatever else runs on the machine weighs on both alike. The samples are
    taken in ``rounds`` rounds, after a pause, with the garbage collector off; the reported p99 is the
    median of the rounds' p99s (the pooled p99 is reported too).
    """
    now = int(time.time() * 1000)
    time.sleep(1.0)
    pooled: list[list[float]] = [[] for _ in ledgers]
    round_p99s: list[list[float]] = [[] for _ in ledgers]
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            times: list[list[float]] = [[] for _ in ledgers]
            for i in range(samples // rounds):
                for n, (view, filled) in enumerate(ledgers):
                    serial = _pick(rng, i, filled, extra)
                    pi = gs1.ProductIdentifier(GTIN, serial=serial)
                    t0 = time.perf_counter()
                    verdict = verify_pack(view, pi, now)
                    times[n].append((time.perf_counter() - t0) * 1000)
                    if i % 10 != 9 and not verdict["verified"]:
                        raise RuntimeError(f"known serial {serial} did not verify: {verdict['reasons']}")
            for n in range(len(ledgers)):
                round_p99s[n].append(_percentile(times[n], 0.99))
                pooled[n].extend(times[n])
    finally:
        gc.enable()
    return [{"p50_ms": round(_percentile(pooled[n], 0.5), 4), "p99_ms": round(statistics.median(round_p99s[n]), 4),
             "pooled_p99_ms": round(_percentile(pooled[n], 0.99), 4)} for n in range(len(ledgers))]


def snapshot(node: Node, path: Path) -> StateView:
    """A consistent copy of the committed ledger (SQLite backup API), opened read-only."""
    source = sqlite3.connect(node.store.path)
    target = sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA query_only=ON")
    return StateView(conn)


def http_latency(node: Node, filled: int, rng: random.Random, samples: int) -> dict[str, float]:
    from careledger.api.server import BackgroundServer
    from careledger.client.supply import SupplyClient

    times = []
    with BackgroundServer(node) as server:
        client = SupplyClient(server.url)
        try:
            for _ in range(20):  # warm up the connection and the server's threads
                client.verify(gtin=GTIN, serial=f"S{rng.randrange(filled):09d}")
            for _ in range(samples):
                serial = f"S{rng.randrange(filled):09d}"
                t0 = time.perf_counter()
                client.verify(gtin=GTIN, serial=serial)
                times.append((time.perf_counter() - t0) * 1000)
        finally:
            client.close()
    return {"http_p50_ms": round(_percentile(times, 0.5), 3), "http_p99_ms": round(_percentile(times, 0.99), 3)}


def epcis_documents(rng: random.Random, docs: int, per_event: int = 10, events: int = 60) -> list[str]:
    """Documents of commissioning, packing (into SSCCs) and shipping events; ``events`` per document."""
    out = []
    base = 1_700_000_000_000
    for d in range(docs):
        serials = [f"E{d:05d}{i:06d}" for i in range((events // 3) * per_event)]
        event_list: list[dict[str, Any]] = []
        for k in range(events // 3):
            chunk = serials[k * per_event:(k + 1) * per_event]
            epcs = [f"urn:epc:id:sgtin:{PREFIX}.000001.{s}" for s in chunk]
            body = f"0{PREFIX}{d:04d}{k:05d}"
            sscc = f"urn:epc:id:sscc:{PREFIX}.0{body[8:]}"
            t = base + d * 100_000 + k * 10
            common = {"eventTimeZoneOffset": "+00:00"}
            event_list.append({"type": "ObjectEvent", "action": "ADD", "bizStep": "commissioning",
                               "disposition": "active", "epcList": epcs, "eventTime": _iso(t),
                               "ilmd": {"cbvmda:lotNumber": "EPCIS1", "cbvmda:itemExpirationDate": "2035-12-31"},
                               **common})
            event_list.append({"type": "AggregationEvent", "action": "ADD", "bizStep": "packing",
                               "parentID": sscc, "childEPCs": epcs, "eventTime": _iso(t + 1), **common})
            event_list.append({"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "shipping",
                               "disposition": "in_transit", "epcList": [sscc], "eventTime": _iso(t + 2),
                               "destinationList": [{"type": "owning_party",
                                                    "destination": "urn:careledger:org:medi-distrib"}], **common})
        doc = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
               "schemaVersion": "2.0", "creationDate": _iso(base), "epcisBody": {"eventList": event_list}}
        out.append(json.dumps(doc, separators=(",", ":")))
    rng.shuffle(out)
    return out


def _iso(ms: int) -> str:
    from careledger.contracts.supply.epcis import format_time

    return format_time(ms)


def bench_supply(commission: int = 300_000, small: int = 1_000_000, large: int = 3_000_000, samples: int = 20_000,
                 http_samples: int = 500, epcis_docs: int = 40, seed: int = 11, home: Path | None = None,
                 progress: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="careledger-bench-supply-")) if home is None else home
    consortium = create_consortium(workdir / "node", int(time.time() * 1000), chain_id="careledger-bench-supply")
    node = consortium.home.open_node()
    node.start()
    mfr = Submitter(node, consortium.admin("acme-pharma"))
    try:
        mfr.run("supply.register_product", {"gtin": GTIN, "name": "Benchmark tablets 10 mg x 30"})
        progress(f"commissioning {commission:,} random serials ({BATCH:,} per transaction)")
        rate, extra = commission_random(mfr, rng, commission, "R1")
        progress(f"{rate:,.0f} serials/s; filling to {small:,} serials")
        filled, fill_rate = fill(mfr, 0, max(0, small - commission), progress)
        total = filled + commission
        progress(f"sampling verification latency at {total:,} serials")
        at_small = sample_latency([(node.store.view(), filled)], extra, rng, samples)[0]
        at_small.update(http_latency(node, filled, rng, http_samples))
        small_total, small_filled = total, filled
        small_view = snapshot(node, workdir / "ledger-at-small.sqlite")
        progress(f"filling to {large:,} serials")
        filled, fill_rate_large = fill(mfr, filled, max(filled, large - commission), progress)
        total = filled + commission
        progress(f"sampling verification latency at {total:,} serials, alternating with the copy at "
                 f"{small_total:,}")
        both = sample_latency([(small_view, small_filled), (node.store.view(), filled)], extra, rng, samples)
        small_view.connection.close()
        at_large = both[1]
        progress(f"EPCIS import: {epcis_docs} documents")
        docs = epcis_documents(rng, epcis_docs)
        capture = Submitter(node, consortium.admin("acme-pharma"))
        capture.nonce = mfr.nonce
        raws = [capture.sign("supply.epcis_capture", {"document": d}) for d in docs]
        start = time.perf_counter()
        for raw in raws:
            capture.submit(raw)
        capture.wait()
        events = sum(len(json.loads(d)["epcisBody"]["eventList"]) for d in docs)
        epcis_rate = events / (capture.last_commit - start)
        blocks = node.head.height
    finally:
        node.close()
    db_bytes = consortium.home.db_path.stat().st_size
    return {
        "workload": "supply", "cores": os.cpu_count(),
        "commission_serials": commission, "commission_serials_per_s": round(rate),
        "fill_serials_per_s": round(max(fill_rate, fill_rate_large)),
        "small_serials": small_total, "small_verify_p50_ms": at_small["p50_ms"],
        "small_verify_p99_ms": at_small["p99_ms"], "small_http_verify_p50_ms": at_small["http_p50_ms"],
        "small_http_verify_p99_ms": at_small["http_p99_ms"],
        "small_verify_pooled_p99_ms": at_small["pooled_p99_ms"],
        "large_serials": total, "large_verify_p50_ms": at_large["p50_ms"], "large_verify_p99_ms": at_large["p99_ms"],
        "large_verify_pooled_p99_ms": at_large["pooled_p99_ms"],
        "interleaved_small_verify_p99_ms": both[0]["p99_ms"], "interleaved_large_verify_p99_ms": at_large["p99_ms"],
        "p99_ratio_large_over_small": round(at_large["p99_ms"] / both[0]["p99_ms"], 3) if both[0]["p99_ms"] else 0,
        "epcis_events": events, "epcis_events_per_s": round(epcis_rate),
        "blocks": blocks, "ledger_bytes": db_bytes, "ledger_bytes_per_serial": round(db_bytes / max(1, total), 1),
        "targets": {"commission_serials_per_s": 50_000, "large_verify_p99_ms": 5.0, "p99_ratio": 1.5},
    }
