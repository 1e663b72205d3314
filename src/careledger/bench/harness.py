"""The parts of the HTTP benchmark that run things: tools, processes, the load generator, block watchers.

* tools: the Go load generator (``careledger-loadgen``, built by ``scripts/build-loadgen.sh`` on first
  use) and the Hardhat peer's folder (its npm dev dependencies installed on first use);
* processes: the node (``careledger node start``), the ceiling and the Hardhat node as
  :class:`Service` s, with their CPU seconds and resident memory read from ``/proc`` over the whole
  process tree (the node's signature workers included);
* :func:`run_generator`: one run of the generator over a body file, its CPU time from ``wait4``;
* watchers: :class:`StoreWatcher` reads the solo node's committed blocks from its SQLite store,
  :class:`EthWatcher` an Ethereum node's over JSON-RPC; both note when each transaction was first
  seen committed;
* :func:`drive`: one phase (generator run, then waiting for commits), counted from the blocks.

Every error a caller should report is a :class:`BenchSetupError` naming the part and the fix.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from careledger.bench.solo import _percentile
from careledger.core.errors import Code
from careledger.node.store import Store

LOADGEN = "careledger-loadgen"
READY_TIMEOUT_S = 120.0


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def hardhat_dir() -> Path:
    return repo_root() / "bench" / "peers" / "hardhat"


class BenchSetupError(RuntimeError):
    """A part the benchmark needs is missing or did not start (the message says which and how to fix it)."""


# --- tools ------------------------------------------------------------------------------------------

def find_loadgen() -> Path | None:
    """``$CARELEDGER_LOADGEN_BIN``, else ``<repo>/.tools/bin/careledger-loadgen``, else ``PATH``."""
    for candidate in (os.environ.get("CARELEDGER_LOADGEN_BIN"), str(repo_root() / ".tools" / "bin" / LOADGEN),
                      shutil.which(LOADGEN)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def ensure_loadgen() -> Path:
    """The load generator, built by ``scripts/build-loadgen.sh`` on first use (needs Go).
    Raises BenchSetupError when it is missing and cannot be built."""
    script = repo_root() / "scripts" / "build-loadgen.sh"
    if script.is_file() and shutil.which("go"):
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BenchSetupError(f"scripts/build-loadgen.sh failed: {proc.stderr.strip()[-500:]}")
    found = find_loadgen()
    if found is None:
        raise BenchSetupError(f"{LOADGEN} not found: install Go (>= 1.26) and run scripts/build-loadgen.sh")
    return found


def hardhat_installed() -> bool:
    return (hardhat_dir() / "node_modules" / "hardhat").is_dir()


def ensure_hardhat() -> Path:
    """The Hardhat peer's folder, its npm dev dependencies installed on first use (bench/peers/hardhat/
    install.sh). Raises BenchSetupError when Node.js or npm is missing or the install fails."""
    folder = hardhat_dir()
    if shutil.which("node") is None:
        raise BenchSetupError("the Hardhat peer needs Node.js (>= 18) on PATH")
    proc = subprocess.run(["bash", str(folder / "install.sh")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchSetupError(f"bench/peers/hardhat/install.sh failed: {proc.stderr.strip()[-500:]}")
    return folder


# --- processes: CPU and memory from /proc -----------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, from /proc/PID/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (the node's signature workers, say)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its live descendants."""
    return sum(stat[1] for p in process_tree(pid) if (stat := _proc_stat(p)) is not None)


def tree_rss_bytes(pid: int, kind: str = "VmRSS") -> int:
    """Resident memory of ``pid`` and its live descendants, from /proc/PID/status: ``VmRSS`` (all of
    it, including the pages of files mapped in memory, such as the SQLite store's mmap) or
    ``RssAnon`` (the processes' own heap and stacks)."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{kind}:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@dataclass
class Service:
    """A server process of the benchmark (node, peer or ceiling) and where it answers."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    started_s: float  # seconds from spawning to answering
    log: Path

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the node closes its store cleanly on it), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _wait_ready_line(proc: subprocess.Popen[bytes], log: Path, name: str) -> str:
    """The URL a child prints as ``READY URL`` on its stdout (copied to ``log``)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    with log.open("ab") as sink:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([proc.stdout], [], [], left)[0]:
                break  # silent until the deadline
            line = proc.stdout.readline()
            if not line:
                break
            sink.write(line)
            text = line.decode(errors="replace").strip()
            if text.startswith("READY "):
                threading.Thread(target=_drain, args=(proc.stdout, log), daemon=True).start()
                return text.split(" ", 1)[1].rstrip("/")
    proc.kill()
    raise BenchSetupError(f"{name} did not start; see {log}")


def _drain(stream: IO[bytes], log: Path) -> None:
    with log.open("ab") as sink:
        for line in stream:
            sink.write(line)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NODE_START = "import sys; from careledger.cli.main import app; sys.argv[0] = 'careledger'; app()"


def start_node(home: Path, workdir: Path) -> Service:
    """``careledger node start`` on ``home`` in its own process; returns once ``/v1/status`` answers."""
    port = free_port()
    log = workdir / "node.log"
    began = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", NODE_START, "node", "start", "--home", str(home),
                                 "--api", f"127.0.0.1:{port}"], stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchSetupError(f"the node exited with {proc.returncode}; see {log}")
            try:
                if http.get("/v1/status").status_code == 200:
                    return Service("careledger", proc, url, time.perf_counter() - began, log)
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    proc.kill()
    raise BenchSetupError(f"the node's API did not answer within {READY_TIMEOUT_S:g}s; see {log}")


def start_ceiling(workdir: Path, chain_id: str, app: str = "fastapi") -> Service:
    log = workdir / f"ceiling-{app}.log"
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "careledger.bench.ceiling", "--chain-id", chain_id, "--app", app],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = _wait_ready_line(proc, log, f"the {app} ceiling")
    return Service(f"ceiling-{app}", proc, url, time.perf_counter() - began, log)


def start_hardhat(folder: Path, workdir: Path) -> Service:
    log = workdir / "hardhat.log"
    began = time.perf_counter()
    proc = subprocess.Popen(["node", "peer.js", "serve", "--port", "0"], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"})
    url = _wait_ready_line(proc, log, "the Hardhat node")
    return Service("hardhat", proc, url, time.perf_counter() - began, log)


# --- the load generator -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadShape:
    """How the generator drives a target; the same for every target in one run."""

    connections: int = 64
    lane_depth: int = 0  # 0: any of a signer's next nonces may be in flight on any connection
    max_seconds: float = 600.0


@dataclass
class GeneratorRun:
    summary: dict[str, Any]
    records: dict[int, tuple[int, int, int, int]]  # request id -> (sent ns, duration ns, status, code)
    cpu_s: float  # the generator process's user + system CPU, from wait4


def write_bodies(path: Path, requests: list[tuple[int, str, bytes]]) -> None:
    """The generator's body file: ``<lane>\\t<path>\\t<base64 body>`` per request."""
    with path.open("w") as f:
        for lane, target, body in requests:
            f.write(f"{lane}\t{target}\t{base64.b64encode(body).decode()}\n")


def run_generator(binary: Path, url: str, bodies: Path, shape: LoadShape, rate: float | None,
                  workdir: Path, tag: str) -> GeneratorRun:
    """Run the generator once over ``bodies`` (peak, or paced at ``rate`` requests/s in total)."""
    out, summary_path, log = workdir / f"{tag}.records.jsonl", workdir / f"{tag}.summary.json", workdir / f"{tag}.err"
    argv = [str(binary), "--url", url, "--bodies", str(bodies), "--out", str(out), "--summary", str(summary_path),
            "--connections", str(shape.connections), "--lane-depth", str(shape.lane_depth),
            "--max-seconds", f"{shape.max_seconds:g}"]
    if rate:
        argv += ["--rate", f"{rate:.3f}"]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchSetupError(f"{LOADGEN} failed ({proc.returncode}): {log.read_text().strip()[-500:]}")
    records: dict[int, tuple[int, int, int, int]] = {}
    with out.open() as f:
        for line in f:
            r = json.loads(line)
            records[r["i"]] = (r["t"], r["d"], r["s"], r["c"])
    return GeneratorRun(json.loads(summary_path.read_text()), records, usage.ru_utime + usage.ru_stime)


# --- watching blocks --------------------------------------------------------------------------------

class BlockWatcher(threading.Thread):
    """Notes when each transaction is first seen in a committed block: ``seen[hash] = (ns, code)``."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.seen: dict[str, tuple[int, int]] = {}
        self.blocks: list[tuple[int, int, int]] = []  # (height, txs, seen ns)
        self.last_commit_ns = time.time_ns()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.height = 0  # the last height read

    def idle_s(self) -> float:
        """Seconds since a block with transactions was last seen."""
        return (time.time_ns() - self.last_commit_ns) / 1e9

    def poll(self) -> list[tuple[int, list[tuple[str, int]]]]:
        """New committed blocks since the last poll: (height, [(tx hash, receipt code)])."""
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                for height, txs in self.poll():
                    now = time.time_ns()
                    for tx_hash, code in txs:
                        self.seen.setdefault(tx_hash, (now, code))
                    if txs:
                        self.last_commit_ns = now
                    self.blocks.append((height, len(txs), now))
                self.stop_event.wait(self.interval)
        except BaseException as exc:  # reported by the phase that reads the watcher
            self.error = exc
        finally:
            self.close()

    def close(self) -> None:
        pass

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


class StoreWatcher(BlockWatcher):
    """Reads the solo node's committed blocks straight from its SQLite store (WAL mode, read-only use:
    the node's own process does no work for it)."""

    def __init__(self, db_path: Path, interval: float = 0.005) -> None:
        super().__init__(interval)
        self.db_path = db_path
        self.store: Store | None = None

    def start_at(self, height: int) -> StoreWatcher:
        self.height = height
        self.start()
        return self

    def poll(self) -> list[tuple[int, list[tuple[str, int]]]]:
        if self.store is None:
            self.store = Store(self.db_path, create=False)
        head = self.store.head().height
        out = []
        while self.height < head:
            self.height += 1
            out.append((self.height, [(t.hash.hex(), t.receipt.code) for t in self.store.block_txs(self.height)]))
        return out

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class EthWatcher(BlockWatcher):
    """Reads an Ethereum node's new blocks over JSON-RPC (``eth_blockNumber``, ``eth_getBlockByNumber``)."""

    def __init__(self, url: str, height: int, interval: float = 0.02) -> None:
        super().__init__(interval)
        self.http = httpx.Client(base_url=url, timeout=30)
        self.height = height

    def _call(self, method: str, params: list[Any]) -> Any:
        doc = self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        if "error" in doc:
            raise BenchSetupError(f"{method}: {doc['error']}")
        return doc["result"]

    def poll(self) -> list[tuple[int, list[tuple[str, int]]]]:
        head = int(self._call("eth_blockNumber", []), 16)
        out = []
        while self.height < head:
            self.height += 1
            block = self._call("eth_getBlockByNumber", [hex(self.height), False])
            out.append((self.height, [(h.lower(), 0) for h in block["transactions"]]))
        return out

    def close(self) -> None:
        self.http.close()


# --- one phase --------------------------------------------------------------------------------------

def code_name(code: int, jsonrpc: bool) -> str:
    """A refusal's name in the report: CareLedger's code name, or the JSON-RPC/transport code."""
    if code == -2:
        return "TRANSPORT_ERROR"
    if code == -1:
        return "UNREADABLE_ERROR"
    if not jsonrpc:
        try:
            return Code(code).name
        except ValueError:
            pass
    return f"JSONRPC_{code}" if jsonrpc else f"CODE_{code}"


@dataclass
class Phase:
    """What one generator run did to one target, counted from the blocks."""

    sent: int
    accepted: int
    refused: dict[str, int]
    committed: int  # of this phase's transactions, seen in blocks
    failed_receipts: int  # committed with a non-zero receipt code
    dropped: int  # accepted by the node, never committed
    tx_per_s: float  # committed with code 0 / (last commit - first send)
    cpu_us_per_tx: float  # the target's CPU (whole process tree) per committed (ceiling: answered) request
    p50_ms: float
    p99_ms: float
    seconds: float
    sent_per_s: float
    offered_per_s: float | None
    cpu_s: dict[str, float]
    cpu_share: dict[str, float]
    generator: dict[str, Any]
    samples: dict[str, str] = field(default_factory=dict)


def _cpu_share(cpu: dict[str, float]) -> dict[str, float]:
    total = sum(cpu.values()) or 1.0
    return {k: round(v / total, 3) for k, v in cpu.items()}


def drive(binary: Path, target: Service, requests: list[tuple[int, str, bytes]], hashes: list[str],
          rate: float | None, watcher: BlockWatcher | None, shape: LoadShape, workdir: Path, tag: str,
          stall_s: float, jsonrpc: bool = False, settled: Callable[[], bool] | None = None) -> Phase:
    """Send ``requests`` (whose transaction hashes are ``hashes``) with the generator and wait for them
    to commit: until all accepted ones are in blocks, ``settled()`` says nothing more will commit
    (checked every 0.2 s), or no block with transactions came for ``stall_s``. Without a watcher (the
    ceiling) the phase counts answered requests instead."""
    bodies = workdir / f"{tag}.bodies"
    write_bodies(bodies, requests)
    own0, target0 = resource.getrusage(resource.RUSAGE_SELF), tree_cpu_seconds(target.proc.pid)
    run = run_generator(binary, target.url, bodies, shape, rate, workdir, tag)
    accepted = {i for i, r in run.records.items() if r[3] == 0}
    if watcher is not None:
        checked = time.monotonic()
        while not all(hashes[i] in watcher.seen for i in accepted) and watcher.idle_s() < stall_s:
            if watcher.error is not None:
                raise BenchSetupError(f"block watcher failed: {watcher.error!r}")
            if settled is not None and time.monotonic() - checked > 0.2:
                checked = time.monotonic()
                if settled():
                    break
            time.sleep(0.02)
    target1, own1 = tree_cpu_seconds(target.proc.pid), resource.getrusage(resource.RUSAGE_SELF)
    refused: dict[str, int] = {}
    for r in run.records.values():
        if r[3] != 0:
            name = code_name(r[3], jsonrpc)
            refused[name] = refused.get(name, 0) + 1
    first_sent = min((r[0] for r in run.records.values()), default=0)
    if watcher is not None:
        mine = [(i, watcher.seen[hashes[i]]) for i in run.records if hashes[i] in watcher.seen]
        ok = [(i, seen) for i, seen in mine if seen[1] == 0]
        latencies = [(seen[0] - run.records[i][0]) / 1e6 for i, seen in ok]
        end = max((seen[0] for _, seen in ok), default=first_sent)
        committed, failed = len(mine), len(mine) - len(ok)
        dropped = len(accepted - {i for i, _ in mine})
        good = len(ok)
    else:  # the ceiling: answered requests, response times
        latencies = [r[1] / 1e6 for i, r in run.records.items() if i in accepted]
        end = max((r[0] + r[1] for i, r in run.records.items() if i in accepted), default=first_sent)
        committed = failed = dropped = 0
        good = len(accepted)
    seconds = max(1e-9, (end - first_sent) / 1e9)
    cpu = {target.name: round(target1 - target0, 3), "generator": round(run.cpu_s, 3),
           "harness": round(own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime, 3)}
    summary = run.summary
    return Phase(
        sent=summary["sent"], accepted=len(accepted), refused=dict(sorted(refused.items())), committed=committed,
        failed_receipts=failed, dropped=dropped, tx_per_s=round(good / seconds, 1),
        cpu_us_per_tx=round((target1 - target0) * 1e6 / max(1, good), 1),
        p50_ms=round(_percentile(latencies, 0.50), 1), p99_ms=round(_percentile(latencies, 0.99), 1),
        seconds=round(seconds, 3), sent_per_s=round(summary["sent_per_s"], 1),
        offered_per_s=round(rate, 1) if rate else None, cpu_s=cpu, cpu_share=_cpu_share(cpu),
        generator={"cpu_us_per_request": round(run.cpu_s * 1e6 / max(1, summary["sent"]), 1),
                   "self_reported_cpu_s": round(summary["cpu_user_s"] + summary["cpu_sys_s"], 3),
                   "late": summary["late"], "max_behind_ms": round(summary["max_behind_ms"], 1),
                   "unsent": summary["unsent"]},
        samples={code_name(int(c), jsonrpc): text for c, text in summary["samples"].items()})
