"""Helpers for the crash and tamper tests: real node processes, a load generator and a clean replay.

* :class:`NodeProcess`: ``careledger node start --home H --api 127.0.0.1:PORT`` as a subprocess in
  its own session; :meth:`~NodeProcess.start` returns once ``GET /v1/status`` answers, or raises
  :class:`NodeRefused` with the exit code and stderr when the node exits instead.
* :class:`Load`: threads submitting signed transactions over HTTP with ``wait=commit``: patient
  registrations with fresh keys, admin enrolments with sequential nonces, and a few enrolments
  the contract refuses (committed with a non-zero code). Every outcome is classified as
  Jepsen does: *acknowledged* (the node answered that it is committed, with its receipt),
  *refused* (the node answered that it is not), or *unknown* (no answer: the node died).
* :class:`Replay`: replays a store's blocks from genesis in memory through the executor (the same
  code both engines drive), incrementally across restarts, checking that already replayed blocks
  never change; its head is the "clean replay" a restarted node must match.
* :func:`make_home`, :func:`copy_home`, :func:`run_cli`, :func:`free_port`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from careledger.chain.executor import BlockExecution, Chain, check_stateless, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.block import BlockEnv, Header
from careledger.core.crypto import SigningKey
from careledger.core.genesis import Genesis
from careledger.core.state import MemoryState
from careledger.core.tx import sign_tx
from careledger.keys import write_key
from careledger.node.home import Home, init_home
from support import GENESIS_TIME_MS, Consortium, make_consortium

BIN = Path(sys.executable).with_name("careledger")
# Wide, colourless output so messages are never wrapped or decorated.
CLI_ENV = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}

# The load's signers: the hospital's admin submits batches, the clinic's admin single transactions.
BATCH_ORG, SINGLE_ORG = "hospital", "clinic"
GOOD_ROLE = {"hospital": "physician", "clinic": "nurse"}
BAD_ROLE = "inspector"  # a regulator's role: enrolling it elsewhere is refused by the contract (1003)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=CLI_ENV, check=False)


def verify_cli(home: Path) -> tuple[int, dict[str, Any]]:
    """``careledger verify --home H --json``: (exit code, report)."""
    proc = run_cli("verify", "--home", home, "--json")
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"verify printed no JSON (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}") \
            from None
    return proc.returncode, report


# -- homes --------------------------------------------------------------------------------------------

def make_home(root: Path, label: str = "rel") -> tuple[Home, Consortium]:
    """A real home for the eight-organisation consortium; ``label`` keeps keys apart between tests."""
    consortium = make_consortium(label=f"{label}/")
    root.mkdir(parents=True, exist_ok=True)
    genesis_file = consortium.write_genesis(root / "genesis.json")
    key_file = root / "validator-key.json"
    write_key(key_file, consortium.validator, "validator")
    home = init_home(root / "home", genesis_file, key_file, GENESIS_TIME_MS, chain_id=consortium.chain_id)
    return home, consortium


def copy_home(src: Path, dst: Path) -> Home:
    """Copy a stopped node's home as a crash would leave it: the database and its WAL, never the
    shared-memory index (SQLite rebuilds it from the WAL)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*-shm"))
    return Home(dst)


# -- node processes -----------------------------------------------------------------------------------

class NodeRefused(Exception):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"node exited with {returncode}: {stderr.strip()[-2000:]}")
        self.returncode = returncode
        self.stderr = stderr


class NodeProcess:
    """One ``careledger node start`` subprocess in a session of its own."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = home.parent / f"{home.name}-node.log"

    def start(self, timeout: float = 30.0) -> NodeProcess:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN), "node", "start", "--home", str(self.home), "--api", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=CLI_ENV, start_new_session=True)
        start = self._log.stat().st_size
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                code = self.proc.poll()
                if code is not None:
                    text = self._log.read_bytes()[start:].decode(errors="replace")
                    self.proc = None
                    raise NodeRefused(code, text)
                try:
                    if http.get(f"{self.url}/v1/status").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill9()
                    raise TimeoutError(f"node did not answer within {timeout}s")
                time.sleep(0.03)

    def status(self) -> dict[str, Any]:
        with httpx.Client(timeout=10.0) as http:
            r = http.get(f"{self.url}/v1/status")
            r.raise_for_status()
            return dict(r.json())

    def kill9(self) -> None:
        """SIGKILL the node, then (by its session id) anything it started that outlived it."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the session we created: its signature workers
        self.proc = None

    def stop(self) -> int:
        """A clean shutdown (SIGTERM); returns the exit code."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            raise

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill9()


# -- load -----------------------------------------------------------------------------------------------

@dataclass
class Ack:
    """A transaction the node acknowledged as committed."""

    tx_hash: str
    height: int
    receipt: dict[str, Any]


@dataclass
class Signer:
    key: SigningKey
    org: str
    next_nonce: int = 0  # 0: ask the node


@dataclass
class Load:
    """Sustained signed load against one node until it stops answering (or :meth:`stop`)."""

    url: str
    chain_id: str
    rng: random.Random
    batch_admin: Signer
    single_admin: Signer
    batch_size: int = 40
    acked: dict[str, Ack] = field(default_factory=dict)
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.first_ack = threading.Event()
        self._threads: list[threading.Thread] = []
        # the RNG is split per thread up front, so each thread's choices depend on the seed alone
        self._seeds = [self.rng.getrandbits(64) for _ in range(2)]

    # -- transactions
    def _patient(self, rng: random.Random) -> bytes:
        key = SigningKey(rng.randbytes(32))
        return sign_tx(key, self.chain_id, "identity.register_patient", 1, 1, {})

    def _enrol(self, admin: Signer, rng: random.Random, http: httpx.Client) -> bytes:
        if admin.next_nonce == 0:
            r = http.get(f"{self.url}/v1/accounts/{admin.key.public_hex}/nonce")
            r.raise_for_status()
            admin.next_nonce = int(r.json()["next"])
        role = BAD_ROLE if rng.random() < 0.1 else GOOD_ROLE[admin.org]
        member = SigningKey(rng.randbytes(32)).public_hex
        raw = sign_tx(admin.key, self.chain_id, "identity.enrol_member", 1, admin.next_nonce,
                      {"member": member, "org": admin.org, "roles": [role]})
        admin.next_nonce += 1
        return raw

    def _record(self, tx_hash: str, doc: dict[str, Any]) -> None:
        with self._lock:
            if doc.get("status") == "committed":
                self.acked[tx_hash] = Ack(tx_hash, int(doc["height"]), doc["receipt"])
                self.first_ack.set()
            else:
                self.refused[tx_hash] = doc

    # -- threads
    def _batches(self, seed: int) -> None:
        rng = random.Random(seed)
        admin = self.batch_admin
        with httpx.Client(timeout=30.0) as http:
            while not self._stop.is_set():
                raws = []
                try:
                    for _ in range(self.batch_size):
                        raws.append(self._enrol(admin, rng, http) if rng.random() < 0.3 else self._patient(rng))
                except httpx.TransportError:
                    return
                hashes = [hashlib.sha256(r).hexdigest() for r in raws]
                try:
                    r = http.post(f"{self.url}/v1/txs/batch", params={"wait": "commit", "timeout": 20},
                                  json=[x.hex() for x in raws])
                except httpx.TransportError:
                    with self._lock:
                        self.unknown.update(hashes)
                    return
                if r.status_code != 200:
                    self.errors.append(f"batch answered {r.status_code}: {r.text[:300]}")
                    return
                results = r.json()["results"]
                if len(results) != len(raws):
                    self.errors.append(f"batch of {len(raws)} answered {len(results)} results")
                    return
                for h, res in zip(hashes, results, strict=True):
                    if res["tx_hash"] != h:
                        self.errors.append(f"batch result for {res['tx_hash']} in the place of {h}")
                    self._record(h, res)
                    if res["status"] != "committed":
                        admin.next_nonce = 0  # resynchronise with the node before the next enrolment

    def _singles(self, seed: int) -> None:
        rng = random.Random(seed)
        admin = self.single_admin
        with httpx.Client(timeout=30.0) as http:
            while not self._stop.is_set():
                try:
                    raw = self._enrol(admin, rng, http) if rng.random() < 0.5 else self._patient(rng)
                except httpx.TransportError:
                    return
                h = hashlib.sha256(raw).hexdigest()
                try:
                    r = http.post(f"{self.url}/v1/txs", params={"wait": "commit", "timeout": 20}, content=raw,
                                  headers={"content-type": "application/json"})
                except httpx.TransportError:
                    with self._lock:
                        self.unknown.add(h)
                    return
                doc = r.json()
                if r.status_code == 200:
                    if doc.get("tx_hash") != h:
                        self.errors.append(f"answer for {doc.get('tx_hash')} to the submission of {h}")
                    self._record(h, doc)
                else:
                    self._record(h, doc)
                    admin.next_nonce = 0

    def run_batches(self, count: int) -> None:
        """Submit ``count`` batches from this thread, each waiting for commit (a deterministic workload)."""
        rng = random.Random(self._seeds[0])
        with httpx.Client(timeout=30.0) as http:
            for _ in range(count):
                raws = [self._enrol(self.batch_admin, rng, http) if rng.random() < 0.3 else self._patient(rng)
                        for _ in range(self.batch_size)]
                r = http.post(f"{self.url}/v1/txs/batch", params={"wait": "commit", "timeout": 20},
                              json=[x.hex() for x in raws])
                r.raise_for_status()
                for raw, res in zip(raws, r.json()["results"], strict=True):
                    self._record(hashlib.sha256(raw).hexdigest(), res)
        assert not self.refused, f"transactions were refused: {list(self.refused.values())[:2]}"

    def _guarded(self, body: Any, seed: int) -> None:
        try:
            body(seed)
        except Exception as exc:  # a load thread must not die unnoticed
            self.errors.append(f"{body.__name__}: {type(exc).__name__}: {exc}")

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._guarded, args=(body, seed), daemon=True)
                         for body, seed in ((self._batches, self._seeds[0]), (self._singles, self._seeds[1]))]
        for t in self._threads:
            t.start()
        return self

    def join(self, timeout: float = 60.0) -> None:
        for t in self._threads:
            t.join(timeout)
            assert not t.is_alive(), "a load thread did not finish after the node died"

    def stop(self) -> None:
        self._stop.set()
        self.join()


# -- clean replay ---------------------------------------------------------------------------------------

@dataclass
class StoredTx:
    height: int
    index: int
    receipt: bytes
    message: str


class Replay:
    """A clean, in-memory replay of a store's blocks from genesis, resumed block by block."""

    def __init__(self, genesis: Genesis) -> None:
        self.chain = Chain(genesis, default_registry())
        changes = genesis_state(genesis)
        self.state = MemoryState()
        self.state.apply(changes)
        self.app_hash = genesis_app_hash(genesis, changes)
        self.block_hashes: list[bytes] = [genesis.hash]  # index = height
        self.headers: list[bytes] = [b""]
        self.txs: dict[str, StoredTx] = {}

    @property
    def height(self) -> int:
        return len(self.block_hashes) - 1

    @property
    def head(self) -> dict[str, Any]:
        return {"height": self.height, "app_hash": self.app_hash.hex(), "block_hash": self.block_hashes[-1].hex()}

    def catch_up(self, db_path: Path) -> int:
        """Check that blocks already replayed are unchanged in ``db_path``, replay the new ones, and
        return how many were new. Raises AssertionError on any difference."""
        conn = sqlite3.connect(db_path, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")
            stored = conn.execute("SELECT height, hash FROM blocks WHERE height <= ? ORDER BY height",
                                  (self.height,)).fetchall()
            assert [(h, bytes(b)) for h, b in stored] == list(enumerate(self.block_hashes))[1:], \
                "a block that was committed before has changed or disappeared"
            new = 0
            rows = conn.execute("SELECT height, hash, header FROM blocks WHERE height > ? ORDER BY height",
                                (self.height,)).fetchall()
            for height, block_hash, header in rows:
                txs = conn.execute("SELECT hash, idx, raw, receipt, message FROM txs WHERE height = ? "
                                   "ORDER BY idx", (height,)).fetchall()
                self._replay(height, bytes(block_hash), bytes(header), txs)
                new += 1
            conn.execute("COMMIT")
            return new
        finally:
            conn.close()

    def _replay(self, height: int, block_hash: bytes, header_bytes: bytes, txs: list[tuple[Any, ...]]) -> None:
        assert height == self.height + 1, f"block {self.height + 1} is missing"
        assert hashlib.sha256(header_bytes).digest() == block_hash, f"block {height} does not hash to its hash"
        header = Header.from_json(codec.decode(header_bytes))
        assert header.height == height and header.prev_hash == self.block_hashes[-1].hex(), \
            f"block {height} does not link to block {height - 1}"
        env = BlockEnv(self.chain.chain_id, height, header.time_ms, header.proposer)
        run = BlockExecution(self.chain, self.state, env, self.app_hash)
        assert [int(t[1]) for t in txs] == list(range(header.tx_count)), f"block {height} transactions"
        for tx_hash, _idx, raw, _receipt, _msg in txs:
            assert hashlib.sha256(raw).digest() == bytes(tx_hash)
            run.add(check_stateless(self.chain, bytes(raw)))
        result = run.finish()
        for (tx_hash, idx, _raw, receipt, message), replayed in zip(txs, result.receipts, strict=True):
            assert replayed.encode() == bytes(receipt), f"block {height} tx {idx}: receipt differs from replay"
            assert replayed.message == message, f"block {height} tx {idx}: receipt message differs from replay"
            self.txs[bytes(tx_hash).hex()] = StoredTx(height, int(idx), bytes(receipt), message)
        fields = result.header_fields
        assert (fields["txs_root"], fields["receipts_root"]) == (header.txs_root, header.receipts_root), \
            f"block {height}: Merkle roots differ from replay"
        assert result.app_hash.hex() == header.app_hash, f"block {height}: app hash differs from replay"
        self.state.apply(result.changes)
        self.app_hash = result.app_hash
        self.block_hashes.append(block_hash)
        self.headers.append(header_bytes)


def receipt_view(stored: StoredTx) -> dict[str, Any]:
    """A stored receipt as the API shows it (without the code's name)."""
    doc = codec.decode(stored.receipt)
    return {"code": doc["code"], "result": doc["result"], "events": doc["events"], "index": doc["index"],
            "message": stored.message}
