"""The nonce queue through the HTTP API, over real HTTP on loopback against a real node on a real home:
``202 queued``, ``GET /v1/txs/{hash}`` reading ``queued`` then ``committed``, ``wait=commit`` on a
queued transaction, ``409 NONCE_ALREADY_PENDING``, a drop by expiry (``dropped`` with its error), and
a restart that forgets the queue (404). docs/protocol.md section 5 states the rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.api.server import serve_in_thread
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.node.home import Home, init_home
from careledger.node.mempool import QUEUE_TTL_S
from careledger.node.solo import Node
from support import seeded_key

GENESIS_TIME_MS = 1_700_000_000_000
JSON = {"content-type": "application/json"}


class Api:
    def __init__(self, home: Home, start: bool = True) -> None:
        self.home = home
        self.node: Node = home.open_node()
        if start:
            self.node.start()
        self.server = serve_in_thread(self.node)
        self.http = httpx.Client(base_url=self.server.url, timeout=60)
        self.admin: SigningKey = home.key("admin")

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.node.close()

    def enrol(self, nonce: int, label: str = "") -> bytes:
        return sign_tx(self.admin, self.node.chain.chain_id, "identity.enrol_member", 1, nonce,
                       {"member": seeded_key(f"api-queue/{nonce}/{label}").public_hex, "org": "org.dev",
                        "roles": ["physician"]})

    def post(self, raw: bytes, wait: str = "none") -> httpx.Response:
        return self.http.post("/v1/txs", content=raw, params={"wait": wait}, headers=JSON)

    def lookup(self, raw: bytes) -> httpx.Response:
        import hashlib
        return self.http.get(f"/v1/txs/{hashlib.sha256(raw).hexdigest()}")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / "home", None, None, GENESIS_TIME_MS)


@pytest.fixture
def api(home: Home) -> Iterator[Api]:
    a = Api(home)
    try:
        yield a
    finally:
        a.close()


def error_of(response: httpx.Response, status: int, code: Code) -> dict[str, Any]:
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    assert doc["error"]["code"] == int(code) and doc["error"]["name"] == code.name
    return doc


def test_a_queued_tx_answers_202_queued_and_commits_once_the_gap_fills(api: Api) -> None:
    t2, t1 = api.enrol(2), api.enrol(1)
    queued = api.post(t2)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert api.lookup(t2).json() == {"tx_hash": queued.json()["tx_hash"], "status": "queued"}
    committed = api.post(t1, wait="commit")
    assert committed.status_code == 200, committed.text
    while api.lookup(t2).json()["status"] != "committed":  # it followed t1 into the mempool
        assert api.lookup(t2).json()["status"] == "pending"
        api.node.wait_for_height(api.node.head.height + 1, 0.1)
    after = api.lookup(t2).json()
    assert after["status"] == "committed" and after["receipt"]["code"] == 0


def test_wait_commit_works_for_a_queued_transaction(api: Api) -> None:
    t3, t2, t1 = api.enrol(3), api.enrol(2), api.enrol(1)
    with ThreadPoolExecutor(2) as pool:
        later = [pool.submit(api.post, t, "commit") for t in (t3, t2)]
        while len(api.node.queue) < 2:  # both wait in the queue before the gap is filled
            api.node.wait_for_height(1 << 30, 0.01)
        first = api.post(t1, wait="commit")
        answers = [f.result(timeout=60) for f in later]
    assert first.status_code == 200, first.text
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "committed" and answer.json()["receipt"]["code"] == 0


def test_another_tx_for_a_queued_nonce_is_409_nonce_already_pending(api: Api) -> None:
    assert api.post(api.enrol(2)).json()["status"] == "queued"
    error_of(api.post(api.enrol(2, "rival")), 409, Code.NONCE_ALREADY_PENDING)
    error_of(api.post(api.enrol(2)), 409, Code.DUPLICATE_TX)
    error_of(api.post(api.enrol(1 + 64)), 409, Code.NONCE_OUT_OF_ORDER)  # beyond the window of 64


def test_an_expired_gap_drops_the_tx_and_its_status_says_why(api: Api) -> None:
    t2 = api.enrol(2)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(api.post, t2, "commit")
        while not len(api.node.queue):
            api.node.wait_for_height(1 << 30, 0.01)
        assert api.node.expire_queued(now=time.monotonic() + QUEUE_TTL_S) == 1
        answer = waiting.result(timeout=60)
    error_of(answer, 409, Code.NONCE_GAP_EXPIRED)
    doc = api.lookup(t2).json()
    assert doc["status"] == "dropped" and doc["error"]["name"] == "NONCE_GAP_EXPIRED"


def test_a_restart_forgets_queued_transactions(home: Home) -> None:
    first = Api(home)
    t2 = first.enrol(2)
    try:
        assert first.post(t2).json()["status"] == "queued"
    finally:
        first.close()
    second = Api(home)
    try:
        error_of(second.lookup(t2), 404, Code.NOT_FOUND)
        assert second.post(t2).json()["status"] == "queued"  # the client resubmits
    finally:
        second.close()
