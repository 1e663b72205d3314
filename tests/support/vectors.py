"""Running contract vectors through the engines, and comparing what they did with the vector file.

Four ways to run a vector (tests/vectors/**.json), from its files alone:

* :func:`replay_in_process`: ``BlockExecution`` over a ``MemoryState``, as the generator did; gives the
  whole expected state (the file lists only selected keys);
* :func:`run_solo`: a real solo :class:`Node` over a real SQLite store, each block admitted with
  :meth:`Node.admit` and made by :meth:`Node.produce_block`, its clock set to the vector's block times
  (:class:`VectorClock`), so its app hashes can be the file's;
* :func:`run_abci`: :class:`CareLedgerApp` driven exactly as CometBFT drives it: InitChain, then per
  block CheckTx for each transaction, PrepareProposal with the admitted ones, ProcessProposal (which
  must accept), FinalizeBlock and Commit, with the vector's block times;
* :func:`run_cometbft`: a real single-validator CometBFT network whose validator key *is* the vector's,
  our ABCI app as a subprocess, transactions through CometBFT's RPC. Its block times are CometBFT's.

An engine admits a transaction against committed state, running the contract's authorisation there,
so a transaction the bare executor includes as *failed* at authorisation (206, 2108, ...) is refused
before any block with the same code, consuming no nonce; and a transaction made invalid by an earlier
one *in the same block* (a revocation) is refused at admission for the reason committed state gives.
:func:`compare` accounts for both, and says whether the engine was held to the file's app hash and
state ("exact") or only to the codes and to the other engines.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci import abci_pb2 as pb
from careledger.abci.app import CareLedgerApp
from careledger.abci.cometbft import cometbft_init, setup_home, validator_address
from careledger.chain.executor import BlockExecution, Chain, check_stateless, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.block import BlockEnv
from careledger.core.crypto import SigningKey
from careledger.core.errors import InvalidTx, LedgerError
from careledger.core.genesis import parse_genesis
from careledger.core.state import MemoryState
from careledger.net.cluster import free_base_port
from careledger.node import solo
from careledger.node.solo import EngineConfig, Node
from careledger.node.startup import open_store

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
ALL_VECTOR_FILES = sorted(p for p in VECTORS_DIR.rglob("*.json") if p.name != "protocol.json")
TIMELESS_VECTOR_FILES = sorted(p for p in VECTORS_DIR.glob("*.json") if p.name != "protocol.json")
"""The vectors directly in tests/vectors: their state never records a block time."""
VALIDATOR = SigningKey(hashlib.sha256(b"careledger-vectors/validator/0").digest())
PROPOSER_ADDRESS = validator_address(VALIDATOR.public_key)

TIMES = range(10**12, 10**14)
"""Integers read as times (ms since the Unix epoch, from September 2001 to 5138): with block times set
aside, every such value in state is one, or a block time plus a fixed span (an expiry, a deadline)."""

ADMISSION_SEES_COMMITTED_STATE = {
    # vector: why an engine refuses one of its invalid transactions with another code than the file's
    "identity_revocation_same_block": "the revocation is in the same block: at admission the member is still "
                                      "active, and set_org_api is for admins (206, not 205)",
}


def vector_id(path: Path) -> str:
    return str(path.relative_to(VECTORS_DIR).with_suffix(""))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def blocks_of(vector: dict[str, Any]) -> list[tuple[int, list[bytes]]]:
    """(block time, transactions) of each block: the pre blocks, then the vector's block."""
    return [(b["time_ms"], [t.encode() for t in b["txs"]]) for b in [*vector["pre"]["blocks"], vector["block"]]]


def state_table(db: Path) -> dict[str, bytes]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {k: bytes(v) for k, v in conn.execute("SELECT key, value FROM state")}
    finally:
        conn.close()


@dataclass
class Outcome:
    """What an engine did with a vector: per transaction (included, code, receipt bytes), the app hash
    after each ledger block, and the end state (every key, canonical bytes)."""

    results: dict[str, tuple[bool, int | None, bytes | None]] = field(default_factory=dict)
    app_hashes: list[str] = field(default_factory=list)
    state: dict[str, bytes] = field(default_factory=dict)

    @property
    def app_hash(self) -> str:
        return self.app_hashes[-1] if self.app_hashes else ""

    @property
    def height(self) -> int:
        return len(self.app_hashes)


def replay_in_process(vector: dict[str, Any]) -> Outcome:
    """Every block through :class:`BlockExecution`, invalid transactions left out with their code (the
    generator's own procedure); ``app_hashes`` has one entry per block, the vector's block included."""
    genesis = parse_genesis(vector["pre"]["genesis"])
    chain = Chain(genesis, default_registry())
    state = MemoryState()
    changes = genesis_state(genesis)
    state.apply(changes)
    app_hash = genesis_app_hash(genesis, changes)
    out = Outcome()
    for number, (time_ms, txs) in enumerate(blocks_of(vector), start=1):
        run = BlockExecution(chain, state, BlockEnv(genesis.chain_id, number, time_ms, VALIDATOR.public_hex), app_hash)
        for raw in txs:
            tx_hash = hashlib.sha256(raw).hexdigest()
            try:
                receipt = run.add(check_stateless(chain, raw))
                out.results[tx_hash] = (True, receipt.code, receipt.encode())
            except InvalidTx as exc:
                out.results[tx_hash] = (False, int(exc.code), None)
        result = run.finish()
        state.apply(result.changes)
        app_hash = result.app_hash
        out.app_hashes.append(app_hash.hex())
    out.state = dict(state.scan_raw(""))
    return out


class VectorClock:
    """Stands in for the ``time`` module inside :mod:`careledger.node.solo`: ``time()`` is the block
    time the test sets; everything else is the real module's."""

    def __init__(self) -> None:
        self.ms = 0

    def time(self) -> float:
        return (self.ms + 0.5) / 1000  # the engine takes int(time() * 1000): exactly ``ms``

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def run_solo(vector: dict[str, Any], root: Path, monkeypatch: pytest.MonkeyPatch | None = None) -> Outcome:
    """The vector through a real solo node; with ``monkeypatch``, its clock reads the vector's block times."""
    clock = VectorClock()
    if monkeypatch is not None:
        monkeypatch.setattr(solo, "time", clock)
    genesis = parse_genesis(vector["pre"]["genesis"])
    store, chain = open_store(root / "solo.sqlite", genesis, create=True)
    node = Node(store, chain, VALIDATOR, EngineConfig(sig_workers=0))
    out = Outcome()
    try:
        for time_ms, txs in blocks_of(vector):
            clock.ms = time_ms
            futures = []
            for raw in txs:
                tx_hash = hashlib.sha256(raw).hexdigest()
                try:
                    futures.append((tx_hash, node.admit(node.check(raw))))
                except LedgerError as exc:
                    out.results[tx_hash] = (False, int(exc.code), None)
            if futures and node.produce_block(node.mempool.take(len(futures))) is not None:
                out.app_hashes.append(node.head.app_hash.hex())
            for tx_hash, fut in futures:
                result = fut.result(timeout=5)
                if isinstance(result, LedgerError):
                    out.results[tx_hash] = (False, int(result.code), None)
                else:
                    out.results[tx_hash] = (True, result.code, result.encode())  # type: ignore[attr-defined]
    finally:
        node.close()
    out.state = state_table(root / "solo.sqlite")
    return out


def timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def run_abci(vector: dict[str, Any], root: Path) -> Outcome:
    """The vector through :class:`CareLedgerApp`, driven as CometBFT drives a single validator."""
    genesis = parse_genesis(vector["pre"]["genesis"])
    app = CareLedgerApp(root / "abci.sqlite")
    out = Outcome()
    try:
        app.init_chain(pb.InitChainRequest(time=timestamp(genesis.genesis_time_ms), chain_id=genesis.chain_id,
                                           app_state_bytes=json.dumps(vector["pre"]["genesis"]).encode(),
                                           initial_height=1))
        for height, (time_ms, txs) in enumerate(blocks_of(vector), start=1):
            admitted = []
            for raw in txs:
                res = app.check_tx(pb.CheckTxRequest(tx=raw, type=pb.CheckTxRequest.NEW))
                if res.code:
                    out.results[hashlib.sha256(raw).hexdigest()] = (False, int(res.code), None)
                else:
                    admitted.append(raw)
            common = {"height": height, "time": timestamp(time_ms), "proposer_address": PROPOSER_ADDRESS}
            prepared = list(app.prepare_proposal(pb.PrepareProposalRequest(txs=admitted, max_tx_bytes=4 << 20,
                                                                           **common)).txs)
            block_hash = hashlib.sha256(b"vector block %d" % height).digest()
            verdict = app.process_proposal(pb.ProcessProposalRequest(txs=prepared, hash=block_hash, **common))
            if verdict.status != pb.ProcessProposalResponse.ACCEPT:
                raise AssertionError(f"ProcessProposal rejected what PrepareProposal made at height {height}")
            before = app.head.height
            finished = app.finalize_block(pb.FinalizeBlockRequest(txs=prepared, hash=block_hash, **common))
            app.commit(pb.CommitRequest())
            for raw in admitted:
                if raw not in prepared:  # left out of the proposal: invalid in the block
                    out.results[hashlib.sha256(raw).hexdigest()] = (False, None, None)
            for raw, res in zip(prepared, finished.tx_results, strict=True):
                out.results[hashlib.sha256(raw).hexdigest()] = (True, int(res.code), bytes(res.data))
            if app.head.height > before:
                out.app_hashes.append(app.head.app_hash.hex())
            if finished.app_hash != app.head.app_hash:
                raise AssertionError(f"FinalizeBlock's app hash is not the committed one at height {height}")
    finally:
        app.close()
    out.state = state_table(root / "abci.sqlite")
    return out


# -- a real CometBFT network --------------------------------------------------------------------------------

def write_validator_key(home: Path, key: SigningKey) -> None:
    doc = {"address": validator_address(key.public_key).hex().upper(),
           "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(key.public_key).decode()},
           "priv_key": {"type": "tendermint/PrivKeyEd25519",
                        "value": base64.b64encode(key.seed + key.public_key).decode()}}
    (home / "config" / "priv_validator_key.json").write_text(json.dumps(doc, indent=2))


def run_cometbft(vector: dict[str, Any], root: Path, binary: Path) -> Outcome:
    """The vector's blocks through a real single-validator CometBFT network: each block's transactions are
    sent together just after a commit, so that they land in one CometBFT block."""
    genesis = parse_genesis(vector["pre"]["genesis"])
    home, db = root / "cometbft", root / "app" / "ledger.sqlite"
    base = free_base_port(1)
    cometbft_init(binary, home)
    write_validator_key(home, VALIDATOR)
    setup_home(binary, home, genesis, f"tcp://127.0.0.1:{base + 2}", rpc_laddr=f"tcp://127.0.0.1:{base + 1}",
               p2p_laddr=f"tcp://127.0.0.1:{base}", timeout_commit="400ms")
    procs: list[subprocess.Popen[bytes]] = []
    http = httpx.Client(base_url=f"http://127.0.0.1:{base + 1}", timeout=10)

    def rpc(method: str, **params: Any) -> Any:
        doc = http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        if "error" in doc:
            raise AssertionError(f"{method}: {doc['error']}")
        return doc["result"]

    def query(path: str) -> tuple[int, bytes]:
        res = rpc("abci_query", path=path, data="", prove=False)["response"]
        return int(res.get("code", 0)), base64.b64decode(res.get("value") or "")

    def height() -> int:
        try:
            return int(rpc("status")["sync_info"]["latest_block_height"])
        except (httpx.HTTPError, AssertionError, ValueError):
            return 0

    def wait(predicate: Any, what: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(p.poll() is not None for p in procs):
                raise AssertionError(f"a process died while waiting for {what}")
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    out = Outcome()
    try:
        with open(root / "app.log", "wb") as app_log, open(root / "cometbft.log", "wb") as cmt_log:
            procs.append(subprocess.Popen([sys.executable, "-m", "careledger.abci", "serve", "--db", str(db),
                                           "--address", f"tcp://127.0.0.1:{base + 2}"], stdout=app_log,
                                          stderr=subprocess.STDOUT))
            wait(lambda: _listens(base + 2), "the app")
            procs.append(subprocess.Popen([str(binary), "start", "--home", str(home)], stdout=cmt_log,
                                          stderr=subprocess.STDOUT))
        wait(lambda: height() >= 1, "the first block")
        for _, txs in blocks_of(vector):
            seen = height()
            wait(lambda seen=seen: height() > seen, "a fresh commit")  # then a whole timeout_commit to send the block
            admitted = []
            for raw in txs:
                tx_hash = hashlib.sha256(raw).hexdigest()
                res = rpc("broadcast_tx_sync", tx=base64.b64encode(raw).decode())
                if int(res["code"]):
                    out.results[tx_hash] = (False, int(res["code"]), None)
                else:
                    admitted.append(tx_hash)
            if admitted:
                mark = height()
                wait(lambda mark=mark: height() >= mark + 2, "the block to commit")
            for tx_hash in admitted:
                code, value = query(f"/tx/{tx_hash}")
                if code:
                    out.results[tx_hash] = (False, None, None)  # dropped from the proposal: invalid in-block
                else:
                    receipt = json.loads(value)["receipt"]
                    out.results[tx_hash] = (True, receipt["code"], codec.encode(receipt))
            head = json.loads(query("/head")[1])
            if head["height"] > len(out.app_hashes):
                out.app_hashes.append(head["app_hash"])
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(timeout=10)
        http.close()
    out.state = state_table(db)
    return out


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- comparing ----------------------------------------------------------------------------------------------

def without_time(value: Any) -> Any:
    """A state value with every time (an integer in :data:`TIMES`, at any depth) replaced by a marker."""
    if type(value) is dict:
        return {k: without_time(v) for k, v in value.items()}
    if type(value) is list:
        return [without_time(v) for v in value]
    if type(value) is int and value in TIMES:
        return "<time>"
    return value


def blind_state(state: dict[str, bytes]) -> dict[str, Any]:
    return {k: without_time(codec.decode(v)) for k, v in state.items()}


def refused_at_admission(expected: dict[str, Any], got: tuple[bool, int | None, bytes | None]) -> bool:
    """The file includes the transaction as failed, and the engine refused it before any block with the
    same code (its authorisation ran at admission against committed state)."""
    return bool(expected["included"] and expected["code"] and not got[0] and got[1] == expected["code"])


def compare(vector: dict[str, Any], outcomes: dict[str, Outcome], *, timeless: bool) -> tuple[list[str], bool]:
    """The problems found between the file and each engine, and among the engines; and whether the
    engines were held to the file's app hashes and whole state (``exact``).

    ``timeless``: the engines' block times are the vector's (or the vector's state never records one),
    so states and receipts compare byte for byte; otherwise block times are set aside and receipts
    compare by code only.
    """
    problems: list[str] = []
    post, name = vector["post"], vector["name"]
    expected_receipts = {r["tx"]: codec.encode(r) for r in post["receipts"]}
    exact = any(r["included"] for r in post["results"])
    for engine, out in outcomes.items():
        for expected in post["results"]:
            got = out.results.get(expected["tx"])
            if got is None:
                problems.append(f"{engine}: tx {expected['tx'][:12]} has no outcome")
            elif refused_at_admission(expected, got):
                exact = False
            elif got[0] != expected["included"]:
                problems.append(f"{engine}: tx {expected['tx'][:12]} included={got[0]}, vector says "
                                f"{expected['included']}")
            elif got[1] != expected["code"] and not (not got[0] and name in ADMISSION_SEES_COMMITTED_STATE):
                problems.append(f"{engine}: tx {expected['tx'][:12]} code {got[1]}, vector says {expected['code']}")
    if not any(outcomes[e].results[r["tx"]][0] for e in outcomes for r in post["results"]
               if r["tx"] in outcomes[e].results):
        exact = False  # the engines made no ledger block of an all-refused vector block
    if exact:
        expected = replay_in_process(vector)
        for engine, out in outcomes.items():
            if timeless:
                for r in post["results"]:
                    if r["included"] and out.results[r["tx"]][2] != expected_receipts[r["tx"]]:
                        problems.append(f"{engine}: receipt of tx {r['tx'][:12]} differs from the vector")
                if out.app_hashes != expected.app_hashes:
                    problems.append(f"{engine}: app hashes {[h[:8] for h in out.app_hashes]} != the vector's "
                                    f"{[h[:8] for h in expected.app_hashes]}")
                if out.state != expected.state:
                    differ = sorted(k for k in set(out.state) | set(expected.state)
                                    if out.state.get(k) != expected.state.get(k))
                    problems.append(f"{engine}: state differs from the vector's at {differ[:4]}")
            else:
                if out.height != expected.height:
                    problems.append(f"{engine}: height {out.height} != the vector's {expected.height}")
                if blind_state(out.state) != blind_state(expected.state):
                    problems.append(f"{engine}: state differs from the vector's (block times aside)")
    names = list(outcomes)
    for first, second in itertools.pairwise(names):
        a, b = outcomes[first], outcomes[second]
        for tx in a.results.keys() | b.results.keys():
            ra, rb = a.results.get(tx), b.results.get(tx)
            if ra is None or rb is None or ra[:2] != rb[:2] or (timeless and ra[2] != rb[2]):
                problems.append(f"tx {tx[:12]}: {first} {None if ra is None else ra[:2]} != "
                                f"{second} {None if rb is None else rb[:2]}")
        if timeless and (a.app_hashes != b.app_hashes or a.state != b.state):
            problems.append(f"{first} and {second} end with different app hashes or state tables")
        if not timeless and (a.height != b.height or blind_state(a.state) != blind_state(b.state)):
            problems.append(f"{first} and {second} end at different heights or states (block times aside)")
    return problems, exact

