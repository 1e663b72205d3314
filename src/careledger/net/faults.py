"""The fault matrix: a 4-validator CometBFT network under steady load, with faults injected on purpose.

``careledger net faults`` (and ``make faults``, about 10 minutes) runs :func:`run_fault_matrix` on a
fresh local network; the test suite runs the same code with :meth:`FaultPlan.short` (1-2 minutes).
Phases, in order, each while the load runs:

1. **rolling kills**: every ``period_s``, SIGKILL both processes of the next validator (rotating),
   keep it down ``down_s``, restart it and time its catch-up;
2. **pause**: SIGSTOP both processes of one validator for ``pause_s`` (frozen, its connections open),
   then SIGCONT, and time its catch-up;
3. **CometBFT dies under a live API**: SIGKILL one node's CometBFT only. Its HTTP API must say so:
   ``/v1/status`` reports ``health.ready = false`` (engine ``halted``) and a submission is refused
   with 503 ``NODE_UNAVAILABLE``; then CometBFT is restarted and the node catches up;
4. **quorum loss**: SIGKILL 2 of the 4 validators for ``quorum_loss_s``: no block may commit (2 of
   4 is not more than 2/3 of the power) and nothing may fork; then both restart and blocks resume;
5. **partition** (only where network namespaces can be made, see :mod:`careledger.net.netns`): one
   validator cut off from the others for ``partition_s``, then healed; the other three go on.

Then every node must catch up, and the invariants are checked:

* **0 acknowledged transactions lost**: every transaction the API acknowledged (committed, receipt
  code 0) is in every node's ledger at the height it was acknowledged at. Submissions that timed
  out or failed while nodes were down are *unknown* (Jepsen's classification) and are not counted;
* **identical app hashes at every height on every node**: every node holds the same ledger blocks
  (height, block hash, app hash), and the same CometBFT block hash and app hash at every CometBFT
  height;
* **restarted nodes catch up** (each catch-up is timed) and the **longest commit stall** is reported,
  overall and while three or more validators were up.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from careledger.client import Client, ClientError, NodeUnavailable
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.net.cluster import LocalNetwork
from careledger.net.netns import Namespaces
from careledger.net.netns import available as netns_available

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FaultPlan:
    """How long each phase lasts (seconds) and how hard the load pushes."""

    warmup_s: float = 15.0
    rolling_kills: int = 12
    period_s: float = 30.0
    down_s: float = 10.0
    pause_s: float = 20.0
    cometbft_down_s: float = 5.0
    quorum_loss_s: float = 30.0
    partition_s: float = 30.0
    recover_s: float = 20.0  # after each fault, the load runs this long before the next phase
    load_threads: int = 3
    load_pause_s: float = 0.05
    catch_up_timeout_s: float = 120.0

    @classmethod
    def long(cls) -> FaultPlan:
        """About 10 minutes (``make faults``)."""
        return cls()

    @classmethod
    def short(cls) -> FaultPlan:
        """About 1.5 minutes (the test suite): each fault once or twice, briefly."""
        return cls(warmup_s=4, rolling_kills=2, period_s=6, down_s=3, pause_s=4, cometbft_down_s=3,
                   quorum_loss_s=6, partition_s=6, recover_s=3, catch_up_timeout_s=60)


@dataclass
class PhaseResult:
    name: str
    nodes: list[int]
    seconds: float
    acked: int  # transactions acknowledged during the phase
    blocks: int  # CometBFT heights committed during the phase (0 expected under quorum loss)
    longest_stall_s: float
    catch_up_s: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class FaultReport:
    validators: int
    seconds: float
    acknowledged: int
    unknown: int
    refused: int
    lost: int
    misplaced: int  # acknowledged at one height, found at another
    ledger_heights_compared: int
    cometbft_heights_compared: int
    divergent_ledger_heights: list[int]
    divergent_cometbft_heights: list[int]
    longest_stall_s: float
    longest_stall_with_quorum_s: float
    catch_up_s: list[float]
    dead_cometbft: dict[str, Any]
    phases: list[PhaseResult]
    partition: str  # "ran" or why not

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.misplaced == 0 and not self.divergent_ledger_heights
                and not self.divergent_cometbft_heights
                and self.dead_cometbft.get("status_ready") is False
                and self.dead_cometbft.get("submit_refused") == "NODE_UNAVAILABLE"
                and all(p.blocks == 0 for p in self.phases if p.name == "quorum loss"))

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc


# -- load -------------------------------------------------------------------------------------------------------

class Load:
    """Threads registering new patients through the live nodes' APIs and waiting for each commit.

    A submission is *acknowledged* when the API answers committed with receipt code 0 (its hash and
    ledger height are kept), *refused* when the node answers with an error, and *unknown* when no
    answer came in time (it may or may not commit later).
    """

    def __init__(self, net: LocalNetwork, threads: int = 3, pause: float = 0.05, timeout: float = 8.0) -> None:
        self.net = net
        self.live = set(range(len(net.spec.nodes)))
        self.acked: dict[str, int] = {}
        self.unknown = 0
        self.refused = 0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.pause = pause
        self.timeout = timeout
        self.chain_id = net.spec.chain_id
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True, name=f"load-{t}")
                        for t in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)

    def _run(self, worker: int) -> None:
        clients = {i: Client(n.api_url, timeout=self.timeout + 5) for i, n in enumerate(self.net.spec.nodes)}
        n = worker
        try:
            while not self.stop_event.is_set():
                with self.lock:
                    live = sorted(self.live)
                if not live:
                    time.sleep(0.1)
                    continue
                i = live[n % len(live)]
                n += 1
                raw = sign_tx(SigningKey.generate(), self.chain_id, "identity.register_patient", 1, 1, {})
                try:
                    res = clients[i].submit(raw, wait=True, timeout=self.timeout)
                except NodeUnavailable:
                    with self.lock:
                        self.unknown += 1
                    time.sleep(0.2)
                    continue
                except ClientError as exc:
                    with self.lock:
                        if exc.name in ("TIMEOUT", "COMMIT_TIMEOUT") or exc.http_status == 504:
                            self.unknown += 1
                        else:
                            self.refused += 1
                    time.sleep(0.2)
                    continue
                if res.get("status") == "committed" and res["receipt"]["code"] == 0:
                    with self.lock:
                        self.acked[res["tx_hash"]] = int(res["height"])
                time.sleep(self.pause)
        finally:
            for c in clients.values():
                c.close()

    def set_live(self, nodes: set[int]) -> None:
        with self.lock:
            self.live = set(nodes)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


# -- observation ---------------------------------------------------------------------------------------------------

class HeightMonitor:
    """Polls every node's CometBFT height; records when the network's highest height went up."""

    def __init__(self, net: LocalNetwork, every: float = 0.1) -> None:
        self.net = net
        self.every = every
        self.increases: list[tuple[float, int]] = []  # (monotonic time, new max height)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="height-monitor")

    def __enter__(self) -> HeightMonitor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        best = 0
        with httpx.Client(timeout=1.0) as http:
            while not self.stop_event.is_set():
                for node in self.net.spec.nodes:
                    try:
                        doc = http.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "status",
                                                            "params": {}}).json()
                        height = int(doc["result"]["sync_info"]["latest_block_height"])
                    except (httpx.HTTPError, ValueError, KeyError, TypeError):
                        continue
                    if height > best:
                        best = height
                        with self.lock:
                            self.increases.append((time.monotonic(), height))
                self.stop_event.wait(self.every)

    def height(self) -> int:
        with self.lock:
            return self.increases[-1][1] if self.increases else 0

    def stall(self, start: float, end: float) -> float:
        """The longest time within ``[start, end]`` during which the network's height did not rise."""
        with self.lock:
            times = [t for t, _ in self.increases if start <= t <= end]
        marks = [start, *times, end]
        return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)

    def first_increase_after(self, start: float) -> float | None:
        with self.lock:
            return next((t for t, _ in self.increases if t > start), None)

    def blocks(self, start: float, end: float) -> int:
        with self.lock:
            before = [h for t, h in self.increases if t <= start]
            upto = [h for t, h in self.increases if t <= end]
        return (upto[-1] if upto else 0) - (before[-1] if before else 0)


def wait_caught_up(net: LocalNetwork, i: int, target: int, timeout: float) -> float:
    """Seconds until node ``i``'s CometBFT reaches ``target``; raises AssertionError after ``timeout``."""
    start = time.monotonic()
    net.wait(f"node{i} to catch up to height {target}", lambda: (net.height(i) or 0) >= target, timeout, 0.1)
    return time.monotonic() - start


@dataclass(frozen=True)
class Comparison:
    ledger_heights: int  # ledger heights every node holds, compared (height, block hash, app hash)
    cometbft_heights: int  # CometBFT heights every node holds, compared (block hash, app hash)
    divergent_ledger: list[int]
    divergent_cometbft: list[int]


def compare_nodes(net: LocalNetwork, nodes: list[int] | None = None) -> Comparison:
    """Every node's ledger blocks and CometBFT headers, height by height, against the first node's."""
    nodes = nodes if nodes is not None else list(range(len(net.spec.nodes)))
    ledgers = [net.ledger_blocks(i) for i in nodes]
    common = min(len(b) for b in ledgers)
    divergent = sorted({row[0] for blocks in ledgers[1:] for row, ref in zip(blocks[:common], ledgers[0][:common],
                                                                             strict=True) if row != ref})
    top = min(net.height(i) or 0 for i in nodes)
    low = max(net.earliest_height(i) for i in nodes)
    headers = [net.cometbft_headers(i, low, top) for i in nodes]
    cmt_divergent = sorted({h for hs in headers[1:] for h in hs if hs[h] != headers[0].get(h)})
    missing = sorted(set(range(low, top + 1)) - set(headers[0]))
    return Comparison(common, max(0, top - low + 1), divergent, sorted(set(cmt_divergent) | set(missing)))


# -- the matrix ------------------------------------------------------------------------------------------------------

@contextmanager
def _phase(name: str, nodes: list[int], load: Load, monitor: HeightMonitor,
           results: list[PhaseResult], progress: Progress) -> Iterator[PhaseResult]:
    progress(f"{name} {nodes if nodes else ''}".rstrip())
    result = PhaseResult(name, nodes, 0.0, 0, 0, 0.0)
    acked, start = load.count(), time.monotonic()
    try:
        yield result
    finally:
        end = time.monotonic()
        result.seconds = round(end - start, 1)
        result.acked = load.count() - acked
        result.blocks = monitor.blocks(start, end)
        result.longest_stall_s = round(monitor.stall(start, end), 2)
        results.append(result)


def check_dead_cometbft(net: LocalNetwork, i: int) -> dict[str, Any]:
    """What node ``i``'s HTTP API says while its CometBFT is dead: its status and a submission's fate."""
    out: dict[str, Any] = {"node": i}
    with Client(net.spec.nodes[i].api_url, timeout=10) as client:
        status = client.status()
        health = status.get("health") or {}
        out["status_ready"] = health.get("ready")
        out["status_engine"] = health.get("engine")
        out["status_reason"] = (health.get("halt") or {}).get("reason", "")
        raw = sign_tx(SigningKey.generate(), net.spec.chain_id, "identity.register_patient", 1, 1, {})
        try:
            client.submit(raw, wait=True, timeout=5)
            out["submit_refused"] = None
        except ClientError as exc:
            out["submit_refused"] = exc.name
            out["submit_http_status"] = exc.http_status
    return out


def run_fault_matrix(net: LocalNetwork, plan: FaultPlan, progress: Progress = lambda m: None,
                     partition: Any = None, seed: int = 16) -> FaultReport:
    """Run the phases on a started 4-validator network (see the module doc) and check the invariants.

    ``partition`` is a :class:`careledger.net.netns.Partitioner` for the partition phase, or None to
    skip it. Raises AssertionError when a node fails to catch up in time."""
    count = len(net.spec.nodes)
    if count != 4:
        raise ValueError("the fault matrix runs on 4 validators")
    rng = random.Random(seed)
    phases: list[PhaseResult] = []
    catch_ups: list[float] = []
    dead: dict[str, Any] = {}
    started = time.monotonic()
    quorum_windows: list[tuple[float, float]] = []  # from the pair's kill to the first block after their restart
    quorum_down: list[tuple[float, float]] = []  # while both were down
    with HeightMonitor(net) as monitor, Load(net, plan.load_threads, plan.load_pause_s) as load:
        everyone = set(range(count))

        def restart(nodes: list[int], result: PhaseResult) -> None:
            target = monitor.height()
            net.start(*nodes)
            for i in nodes:
                took = wait_caught_up(net, i, target, plan.catch_up_timeout_s)
                result.catch_up_s.append(round(took, 2))
                catch_ups.append(round(took, 2))
            load.set_live(everyone)

        with _phase("warm-up", [], load, monitor, phases, progress):
            time.sleep(plan.warmup_s)
        first = rng.randrange(count)
        for k in range(plan.rolling_kills):
            victim = (first + k) % count
            with _phase("rolling kill", [victim], load, monitor, phases, progress) as result:
                load.set_live(everyone - {victim})
                net.kill(victim)
                time.sleep(plan.down_s)
                restart([victim], result)
                time.sleep(max(0.0, plan.period_s - plan.down_s - result.catch_up_s[-1]))
        victim = rng.randrange(count)
        with _phase("pause", [victim], load, monitor, phases, progress) as result:
            load.set_live(everyone - {victim})
            net.pause(victim)
            try:
                time.sleep(plan.pause_s)
            finally:
                net.resume(victim)
            target = monitor.height()
            result.catch_up_s.append(round(wait_caught_up(net, victim, target, plan.catch_up_timeout_s), 2))
            catch_ups.extend(result.catch_up_s)
            load.set_live(everyone)
            time.sleep(plan.recover_s)
        victim = rng.randrange(count)
        with _phase("CometBFT killed under a live API", [victim], load, monitor, phases, progress) as result:
            load.set_live(everyone - {victim})
            net.kill_process(victim, "cometbft")
            time.sleep(plan.cometbft_down_s)
            dead = check_dead_cometbft(net, victim)
            result.note = (f"status ready={dead.get('status_ready')} engine={dead.get('status_engine')}; "
                           f"submit refused {dead.get('submit_refused')} ({dead.get('submit_http_status')})")
            restart([victim], result)
            time.sleep(plan.recover_s)
        pair = sorted(rng.sample(range(count), 2))
        with _phase("quorum loss", pair, load, monitor, phases, progress) as result:
            load.set_live(everyone - set(pair))
            net.kill(*pair)
            time.sleep(1.5)  # a round already under way may still finish
            frozen = time.monotonic()
            time.sleep(plan.quorum_loss_s)
            back = time.monotonic()
            restart(pair, result)
            # without a quorum until the first block after the restart: that wait is part of the fault
            quorum_windows.append((frozen, monitor.first_increase_after(back) or time.monotonic()))
            quorum_down.append((frozen, back))
            time.sleep(plan.recover_s)
        if partition is not None:
            victim = rng.randrange(count)
            with _phase("partition", [victim], load, monitor, phases, progress) as result:
                load.set_live(everyone - {victim})
                partition.isolate(victim)
                try:
                    time.sleep(plan.partition_s)
                finally:
                    partition.heal(victim)
                target = monitor.height()
                result.catch_up_s.append(round(wait_caught_up(net, victim, target, plan.catch_up_timeout_s), 2))
                catch_ups.extend(result.catch_up_s)
                load.set_live(everyone)
                time.sleep(plan.recover_s)
        end = time.monotonic()
        quorum_blocks = [monitor.blocks(a, b) for a, b in quorum_down]
        longest = monitor.stall(started, end)
        with_quorum = max((monitor.stall(a, b) for a, b in _outside(started, end, quorum_windows)), default=0.0)
    for p, blocks in zip((p for p in phases if p.name == "quorum loss"), quorum_blocks, strict=True):
        p.blocks = blocks  # counted from the moment the pair was down (a round under way may finish)
    progress("checking the invariants")
    top = max(net.height(i) or 0 for i in range(count))
    for i in range(count):
        wait_caught_up(net, i, top, plan.catch_up_timeout_s)
    acked = dict(load.acked)
    lost = misplaced = 0
    last_acked = max(acked.values(), default=0)
    for i in range(count):
        def reached(i: int = i) -> bool:
            blocks = net.ledger_blocks(i)
            return bool(blocks) and blocks[-1][0] >= last_acked

        net.wait(f"node{i}'s ledger to reach the last acknowledged height", reached, 60)
        txs = net.ledger_txs(i)
        lost += sum(1 for h in acked if h not in txs)
        misplaced += sum(1 for h, height in acked.items() if h in txs and txs[h] != height)
    compared = compare_nodes(net)
    return FaultReport(
        validators=count, seconds=round(time.monotonic() - started, 1), acknowledged=len(acked), unknown=load.unknown,
        refused=load.refused, lost=lost, misplaced=misplaced, ledger_heights_compared=compared.ledger_heights,
        cometbft_heights_compared=compared.cometbft_heights, divergent_ledger_heights=compared.divergent_ledger,
        divergent_cometbft_heights=compared.divergent_cometbft, longest_stall_s=round(longest, 2),
        longest_stall_with_quorum_s=round(with_quorum, 2), catch_up_s=catch_ups, dead_cometbft=dead, phases=phases,
        partition="ran" if partition is not None else "not run")


def _outside(start: float, end: float, windows: list[tuple[float, float]]) -> Iterator[tuple[float, float]]:
    """The parts of ``[start, end]`` outside ``windows`` (sorted, disjoint)."""
    cursor = start
    for a, b in sorted(windows):
        if a > cursor:
            yield cursor, a
        cursor = max(cursor, b)
    if end > cursor:
        yield cursor, end


def fresh_network(root: Path, tuning: Any = None, netns: bool = False) -> LocalNetwork:
    """A new 4-validator network under ``root``, started, its APIs answering; with ``netns``, in network
    namespaces where they can be made (so the partition phase can run), else on loopback."""
    namespaces = Namespaces.fresh() if netns and netns_available() == "" else None
    net = LocalNetwork.create(root, 4, chain_id="careledger-faults", tuning=tuning, namespaces=namespaces)
    try:
        net.start()
        net.wait_api(timeout=90)
    except BaseException:
        net.stop()
        raise
    return net
