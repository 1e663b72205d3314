"""Running contract vectors on both engines (a real solo node and a real CometBFT network) and comparing."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.abci.cometbft import cometbft_init, setup_home, validator_address
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.errors import LedgerError
from careledger.core.genesis import parse_genesis
from careledger.net.cluster import free_base_port
from careledger.node.solo import EngineConfig, Node
from careledger.node.startup import open_store

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"
VECTOR_FILES = sorted(p for p in VECTORS_DIR.glob("*.json") if p.name != "protocol.json")
VALIDATOR = SigningKey(hashlib.sha256(b"careledger-vectors/validator/0").digest())

pytestmark = pytest.mark.cometbft


def blocks_of(vector: dict[str, Any]) -> list[list[bytes]]:
    return [[t.encode() for t in b["txs"]] for b in [*vector["pre"]["blocks"], vector["block"]]]


def state_table(db: Path) -> dict[str, bytes]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {k: bytes(v) for k, v in conn.execute("SELECT key, value FROM state")}
    finally:
        conn.close()


class Outcome:
    """What an engine did with a vector: per transaction (included, code, receipt bytes), and the end state."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[bool, int | None, bytes | None]] = {}
        self.app_hash = ""
        self.height = 0
        self.state: dict[str, bytes] = {}


def run_solo(vector: dict[str, Any], root: Path) -> Outcome:
    genesis = parse_genesis(vector["pre"]["genesis"])
    store, chain = open_store(root / "solo.sqlite", genesis, create=True)
    node = Node(store, chain, VALIDATOR, EngineConfig(sig_workers=0))
    out = Outcome()
    try:
        for txs in blocks_of(vector):
            futures = []
            for raw in txs:
                tx_hash = hashlib.sha256(raw).hexdigest()
                try:
                    futures.append((tx_hash, node.admit(node.check(raw))))
                except LedgerError as exc:
                    out.results[tx_hash] = (False, int(exc.code), None)
            if futures:
                node.produce_block(node.mempool.take(len(futures)))
            for tx_hash, fut in futures:
                result = fut.result(timeout=5)
                if isinstance(result, LedgerError):
                    out.results[tx_hash] = (False, int(result.code), None)
                else:
                    out.results[tx_hash] = (True, result.code, result.encode())  # type: ignore[attr-defined]
        out.app_hash, out.height = node.head.app_hash.hex(), node.head.height
    finally:
        node.close()
    out.state = state_table(root / "solo.sqlite")
    return out


def write_validator_key(home: Path, key: SigningKey) -> None:
    doc = {"address": validator_address(key.public_key).hex().upper(),
           "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(key.public_key).decode()},
           "priv_key": {"type": "tendermint/PrivKeyEd25519",
                        "value": base64.b64encode(key.seed + key.public_key).decode()}}
    (home / "config" / "priv_validator_key.json").write_text(json.dumps(doc, indent=2))


def run_cometbft(vector: dict[str, Any], root: Path, binary: Path) -> Outcome:
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
        for txs in blocks_of(vector):
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
        out.app_hash, out.height = head["app_hash"], head["height"]
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(timeout=10)
        http.close()
    out.state = state_table(db)
    return out


def _listens(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def compare(vector: dict[str, Any], solo: Outcome, cmt: Outcome) -> tuple[list[str], bool]:
    """The problems found, and whether the engines were held to the file's app hash and state too."""
    problems = []
    post = vector["post"]
    # every block of the vector has an included transaction, so the engines' ledger heights are the file's
    exact = all(b["txs"] for b in vector["pre"]["blocks"]) and any(r["included"] for r in post["results"])
    receipts = {r["tx"]: codec.encode(r) for r in post["receipts"]}
    for expected in post["results"] if exact else []:
        tx = expected["tx"]
        for name, out in (("solo", solo), ("cometbft", cmt)):
            included, code, receipt = out.results[tx]
            if expected["included"] and expected["code"] and not included and code == expected["code"]:
                # admission runs the contract's authorisation against committed state: a transaction the
                # bare executor includes as failed is refused before any block, with the same code (so
                # its nonce is not consumed and the end state is not the file's)
                exact = False
            elif included != expected["included"]:
                problems.append(f"{name}: tx {tx[:12]} included={included}, vector says {expected['included']}")
            elif included and (code != expected["code"] or receipt != receipts[tx]):
                problems.append(f"{name}: tx {tx[:12]} receipt differs from the vector")
    for tx, (included, code, receipt) in solo.results.items():
        c_included, c_code, c_receipt = cmt.results[tx]
        refusals_differ = not included and None not in (code, c_code) and code != c_code
        if included != c_included or (included and (code, receipt) != (c_code, c_receipt)) or refusals_differ:
            problems.append(f"tx {tx[:12]}: solo and CometBFT disagree")
    if (solo.app_hash, solo.height) != (cmt.app_hash, cmt.height):
        problems.append(f"end: solo {solo.height}/{solo.app_hash[:12]} != cometbft {cmt.height}/{cmt.app_hash[:12]}")
    if solo.state != cmt.state:
        problems.append("state tables differ between the engines")
    if exact:
        if solo.app_hash != post["app_hash"]:
            problems.append(f"app hash {solo.app_hash[:12]} != vector {post['app_hash'][:12]}")
        for key, value in post["state"].items():
            if solo.state.get(key) != (None if value is None else codec.encode(value)):
                problems.append(f"state {key} differs from the vector")
    return problems, exact
