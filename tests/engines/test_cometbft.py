"""CareLedger under a real CometBFT v0.38 node on loopback: commit, agree on app hashes, survive kill -9.

The tests marked ``cometbft`` need the real binary: from ``scripts/install-cometbft.sh``
(``.tools/bin/cometbft``), ``$COMETBFT_BIN`` or ``PATH``. Without it they are skipped, except under CI
(``CI=true``) where they fail. The first tests check the home preparation and need no binary.

One single-validator network: ``cometbft init`` in a temporary home whose validator key becomes the
CareLedger genesis validator; our ABCI server (``python -m careledger.abci serve``) and ``cometbft
start`` run as subprocesses on free loopback ports; transactions go through CometBFT's RPC
``broadcast_tx_commit``. App hashes are compared both ways: CometBFT's header at height h+1 carries
the app hash our store recorded for height h.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci.app import time_ms_of
from careledger.abci.cometbft import (
    CometbftSetupError,
    read_validator_pub_key,
    set_toml_values,
    setup_home,
    validator_address,
)
from careledger.abci.progress import ProgressRecord
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.genesis import Genesis, parse_genesis
from careledger.core.tx import sign_tx
from careledger.node.store import Store
from support import make_consortium, require_cometbft, require_tool, seeded_key

CHAIN_ID = "careledger-cmt"
ORG = "hospital"


# -- home preparation (no binary needed) -------------------------------------------------------------------

def test_time_ms_truncates_nanoseconds_and_address_is_sha256_prefix() -> None:
    assert time_ms_of(Timestamp(seconds=1_700_000_000, nanos=999_999_999)) == 1_700_000_000_999
    key = seeded_key("validator/0").public_key
    assert validator_address(key) == hashlib.sha256(key).digest()[:20]


def test_set_toml_values_edits_inside_sections() -> None:
    text = ('proxy_app = "tcp://127.0.0.1:26658"\n# laddr = "commented"\n[rpc]\nladdr = "tcp://127.0.0.1:26657"\n'
            '[p2p]\nladdr = "tcp://0.0.0.0:26656"\n[consensus]\ntimeout_commit = "1s"\ncreate_empty_blocks = true\n')
    out = set_toml_values(text, {("", "proxy_app"): "unix:///x.sock", ("p2p", "laddr"): "tcp://127.0.0.1:1",
                                 ("consensus", "create_empty_blocks"): False})
    assert 'proxy_app = "unix:///x.sock"' in out and 'laddr = "tcp://127.0.0.1:26657"' in out
    assert 'laddr = "tcp://127.0.0.1:1"' in out and "create_empty_blocks = false" in out
    assert '# laddr = "commented"' in out
    with pytest.raises(CometbftSetupError, match="no_such"):
        set_toml_values(text, {("rpc", "no_such"): 1})


# -- a real node -------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cometbft_binary() -> Path:
    return require_cometbft()


class Network:
    """One CometBFT node and its CareLedger ABCI server, each a subprocess we can kill -9."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.home = root / "cometbft"
        self.db = root / "careledger" / "ledger.sqlite"
        self.abci_port, self.rpc_port, self.p2p_port = free_port(), free_port(), free_port()
        self.app_proc: subprocess.Popen[bytes] | None = None
        self.node_proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.rpc_port}", timeout=30)
        self.admin = seeded_key(f"admin/{ORG}")
        self.starts = 0

    def setup(self) -> Genesis:
        from careledger.abci.cometbft import cometbft_init

        cometbft_init(self.binary, self.home)
        validator = read_validator_pub_key(self.home)
        doc = make_consortium((ORG,), chain_id=CHAIN_ID).doc
        doc["validators"] = [{"org": ORG, "power": 10, "pub_key": validator.hex()}]
        genesis = parse_genesis(doc)
        setup_home(self.binary, self.home, genesis, f"tcp://127.0.0.1:{self.abci_port}",
                   rpc_laddr=f"tcp://127.0.0.1:{self.rpc_port}", p2p_laddr=f"tcp://127.0.0.1:{self.p2p_port}",
                   timeout_commit="150ms")
        return genesis

    # -- processes ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.starts += 1
        app_log = open(self.root / f"app-{self.starts}.log", "wb")  # noqa: SIM115 (lives with the process)
        self.app_proc = subprocess.Popen(
            [sys.executable, "-m", "careledger.abci", "serve", "--db", str(self.db),
             "--address", f"tcp://127.0.0.1:{self.abci_port}"], stdout=app_log, stderr=subprocess.STDOUT)
        self._wait_for_port(self.abci_port, self.app_proc)
        node_log = open(self.root / f"cometbft-{self.starts}.log", "wb")  # noqa: SIM115
        self.node_proc = subprocess.Popen([str(self.binary), "start", "--home", str(self.home)],
                                          stdout=node_log, stderr=subprocess.STDOUT)

    def _wait_for_port(self, port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise AssertionError(f"process exited with {proc.returncode}: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"nothing listens on port {port}: {self.logs()}")

    def kill9(self) -> None:
        for proc in (self.node_proc, self.app_proc):
            if proc is not None and proc.poll() is None:
                proc.kill()  # SIGKILL
                proc.wait(timeout=10)

    def logs(self) -> str:
        tails = []
        for path in sorted(self.root.glob("*.log")):
            tails.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(tails)

    # -- RPC ------------------------------------------------------------------------------------------
    def rpc(self, method: str, **params: Any) -> Any:
        res = self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        doc = res.json()
        if "error" in doc:
            raise AssertionError(f"{method}: {doc['error']}")
        return doc["result"]

    def height(self) -> int:
        try:
            return int(self.rpc("status")["sync_info"]["latest_block_height"])
        except (httpx.HTTPError, ValueError):
            return -1

    def wait_height(self, height: int, timeout: float = 60) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for proc in (self.app_proc, self.node_proc):
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"a process exited with {proc.returncode}:\n{self.logs()}")
            now = self.height()
            if now >= height:
                return now
            time.sleep(0.1)
        raise AssertionError(f"height {height} not reached:\n{self.logs()}")

    def broadcast_commit(self, raw: bytes) -> dict[str, Any]:
        return dict(self.rpc("broadcast_tx_commit", tx=base64.b64encode(raw).decode()))

    def query(self, path: str) -> tuple[int, bytes]:
        res = self.rpc("abci_query", path=path, data="", height="0", prove=False)["response"]
        return int(res.get("code", 0)), base64.b64decode(res.get("value") or "")

    def our_app_hash(self, height: int) -> str:
        code, value = self.query(f"/block/{height}")
        assert code == 0, f"our store has no block {height}"
        return str(json.loads(value)["app_hash"])

    def tx(self, key: SigningKey, tx_type: str, nonce: int, payload: dict[str, Any]) -> bytes:
        return sign_tx(key, CHAIN_ID, tx_type, 1, nonce, payload)

    def enrol(self, nonce: int, label: str) -> bytes:
        member = seeded_key(f"member/{label}")
        return self.tx(self.admin, "identity.enrol_member", nonce,
                       {"member": member.public_hex, "org": ORG, "roles": ["physician"]})

    def next_nonce(self, key: SigningKey) -> int:
        code, value = self.query(f"/state/nonce/{key.public_hex}")
        return 1 if code == Code.NOT_FOUND else int(value) + 1

    def assert_app_hashes_agree(self, genesis_app_hash: str) -> int:
        """CometBFT's headers carry, in order, the genesis app hash and then the app hash of every ledger
        block (a CometBFT block without transactions is no ledger block and repeats the app hash)."""
        status = self.rpc("status")["sync_info"]
        latest = int(status["latest_block_height"])
        ours = [genesis_app_hash]
        ledger_height = int(json.loads(self.query("/head")[1])["height"])
        ours += [self.our_app_hash(h) for h in range(1, ledger_height + 1)]
        seen: list[str] = []
        for low in range(1, latest + 1, 20):
            metas = self.rpc("blockchain", minHeight=str(low), maxHeight=str(min(latest, low + 19)))["block_metas"]
            for meta in sorted(metas, key=lambda m: int(m["header"]["height"])):
                app_hash = meta["header"]["app_hash"].lower()
                if not seen or seen[-1] != app_hash:
                    seen.append(app_hash)
        assert seen == ours[:len(seen)], "CometBFT's headers and the ledger disagree on app hashes"
        assert len(seen) >= len(ours) - 1  # the last ledger block's hash may not be in a header yet
        assert status["latest_app_hash"].lower() in ours
        return latest


@pytest.fixture
def network(cometbft_binary: Path, tmp_path: Path) -> Iterator[Network]:
    net = Network(cometbft_binary, tmp_path)
    try:
        yield net
    finally:
        net.kill9()
        net.http.close()


def assert_committed(res: dict[str, Any], code: int = 0) -> int:
    assert res["check_tx"]["code"] == 0, res["check_tx"]
    assert res["tx_result"]["code"] == code, res["tx_result"]
    return int(res["height"])


@pytest.mark.cometbft
def test_cometbft_commits_agrees_on_app_hash_and_survives_kill_9(network: Network) -> None:
    genesis = network.setup()
    network.start()
    network.wait_height(2)
    code, value = network.query("/head")
    head_doc = json.loads(value)  # empty CometBFT blocks are not ledger blocks
    assert code == 0 and head_doc["cometbft_height"] >= 1 and head_doc["height"] == 0
    first_block = network.rpc("block", height="1")["block"]["header"]
    genesis_app_hash = first_block["app_hash"].lower()
    assert first_block["chain_id"] == genesis.chain_id

    # signed CareLedger transactions commit through broadcast_tx_commit with code 0
    heights = [assert_committed(network.broadcast_commit(network.enrol(n, f"a{n}"))) for n in (1, 2, 3)]
    assert heights == sorted(heights)
    patient = seeded_key("patient/1")
    assert_committed(network.broadcast_commit(network.tx(patient, "identity.register_patient", 1, {})))
    # a failed transaction is included with its contract's code; an invalid one never reaches a block
    assert_committed(network.broadcast_commit(network.enrol(4, "a1")), code=Code.KEY_IN_USE)
    replay = network.broadcast_commit(network.enrol(2, "b2"))
    assert replay["check_tx"]["code"] == Code.NONCE_REPLAYED and replay["check_tx"]["codespace"] == "careledger"
    code, value = network.query(f"/state/identity/key/{seeded_key('member/a3').public_hex}")
    assert code == 0 and json.loads(value)["kind"] == "member"

    # a governance change of validator power reaches CometBFT's validator set
    validator = genesis.validators[0].pub_key
    action = {"kind": "set_validator", "org": ORG, "pub_key": validator, "power": 20}
    at = assert_committed(network.broadcast_commit(
        network.tx(network.admin, "governance.propose", 5, {"action": action, "title": "double power"})))
    network.wait_height(at + 2)
    validators = network.rpc("validators", height=str(at + 2))["validators"]
    assert [(base64.b64decode(v["pub_key"]["value"]).hex(), v["voting_power"]) for v in validators] == \
        [(validator, "20")]

    network.assert_app_hashes_agree(genesis_app_hash)

    # kill -9 both under load, then restart
    for n in range(6, 12):
        network.rpc("broadcast_tx_async", tx=base64.b64encode(network.enrol(n, f"c{n}")).decode())
        time.sleep(0.05)  # the crash lands somewhere among blocks being proposed, executed and committed
    network.kill9()
    store = Store(network.db)
    head = store.check_integrity()  # the store recovers to a committed height, intact
    store.close()
    record = ProgressRecord(network.db)
    cmt_before = record.recover(head.height).cometbft
    record.close()
    assert head.height >= 6 and cmt_before >= at

    network.start()
    resumed = network.wait_height(cmt_before + 3)
    assert network.our_app_hash(head.height) == head.app_hash.hex()  # the same app hash, not recomputed
    header = network.rpc("block", height=str(cmt_before + 1))["block"]["header"]
    assert header["app_hash"].lower() == head.app_hash.hex()

    # and it keeps committing: the next nonce follows whatever committed before the crash
    nonce = network.next_nonce(network.admin)
    assert nonce >= 6
    later = assert_committed(network.broadcast_commit(network.enrol(nonce, "after")))
    assert later > cmt_before and resumed >= cmt_before + 3
    network.wait_height(later + 1)
    assert network.assert_app_hashes_agree(genesis_app_hash) > head.height


@pytest.mark.cometbft
def test_an_app_behind_cometbft_is_replayed_to_the_same_app_hashes(network: Network) -> None:
    """Restore the ledger from an older copy: CometBFT replays the missing blocks through FinalizeBlock and
    Commit, and panics unless every replayed block gives the app hash it recorded the first time."""
    network.setup()
    network.start()
    network.wait_height(2)
    genesis_app_hash = network.rpc("block", height="1")["block"]["header"]["app_hash"].lower()
    for n in (1, 2):
        assert_committed(network.broadcast_commit(network.enrol(n, f"a{n}")))
    old_copy = network.root / "ledger-old.sqlite"
    with sqlite3.connect(network.db) as src, sqlite3.connect(old_copy) as dst:
        src.backup(dst)  # a consistent snapshot of the committed ledger
    for n in (3, 4, 5):
        assert_committed(network.broadcast_commit(network.enrol(n, f"a{n}")))
    network.wait_height(network.height() + 3)
    network.kill9()
    store = Store(network.db)
    recorded = {h: store.block(h)[0].app_hash for h in range(1, store.head().height + 1)}
    store.close()
    old = Store(old_copy)
    old_height = old.check_integrity().height
    old.close()
    assert old_height <= max(recorded) - 3  # three ledger blocks to replay
    for suffix in ("", "-wal", "-shm"):
        Path(f"{network.db}{suffix}").unlink(missing_ok=True)
    old_copy.rename(network.db)

    network.start()
    network.wait_height(max(recorded) + 2)
    assert "Replay" in (network.root / "cometbft-2.log").read_text()
    for h, app_hash in recorded.items():  # every replayed height gives the app hash recorded before
        assert network.our_app_hash(h) == app_hash, f"height {h} replayed to another app hash"
    assert_committed(network.broadcast_commit(network.enrol(6, "after")))
    network.assert_app_hashes_agree(genesis_app_hash)


def test_a_missing_real_part_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not found"):
        require_tool(None, "cometbft")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not found"):
        require_tool(None, "cometbft")
    assert require_tool(Path("/bin/true"), "true") == Path("/bin/true")
