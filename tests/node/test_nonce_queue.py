"""Transactions whose nonce is ahead of their signer's next wait in the mempool's queue until the gap
fills (docs/protocol.md section 5): the queue's own rules, then the solo engine over a real home.

The node tests use a node whose engine thread is not started: admission is synchronous and blocks are
produced by the test (``produce_block``), so nothing depends on timing. Expiry is driven by passing
the time in.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from typing import Any

import pytest

from careledger.chain.executor import committed_nonce
from careledger.core.block import Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code, InvalidTx, LedgerError
from careledger.core.tx import sign_tx
from careledger.node.mempool import QUEUE_TTL_S, QUEUE_WINDOW, NonceQueue
from careledger.node.solo import Node
from support import Consortium, seeded_key

ORG = "hospital"


def _h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


# -- the queue's rules ---------------------------------------------------------------------------------

def test_the_window_takes_63_ahead_and_refuses_64_ahead() -> None:
    q: NonceQueue[str] = NonceQueue()
    assert q.window == QUEUE_WINDOW == 64
    q.hold(_h("a"), "s", 5 + 63, 5, "edge", 0.0)
    with pytest.raises(InvalidTx) as refused:
        q.hold(_h("b"), "s", 5 + 64, 5, "beyond", 0.0)
    assert refused.value.code is Code.NONCE_OUT_OF_ORDER
    assert len(q) == 1 and not q.contains(_h("b"))


def test_the_same_bytes_are_a_duplicate_and_another_tx_for_a_queued_nonce_is_refused() -> None:
    q: NonceQueue[str] = NonceQueue()
    q.hold(_h("a"), "s", 3, 1, "first", 0.0)
    with pytest.raises(InvalidTx) as same:
        q.hold(_h("a"), "s", 3, 1, "again", 0.0)
    assert same.value.code is Code.DUPLICATE_TX
    with pytest.raises(InvalidTx) as other:
        q.hold(_h("b"), "s", 3, 1, "rival", 0.0)
    assert other.value.code is Code.NONCE_ALREADY_PENDING
    q.hold(_h("c"), "t", 3, 1, "another signer's nonce 3", 0.0)
    assert len(q) == 2 and q.held_nonce("s", 3) == _h("a")


def test_release_takes_what_follows_on_up_to_the_first_gap() -> None:
    q: NonceQueue[int] = NonceQueue()
    for n in (2, 3, 5):
        q.hold(_h(f"s{n}"), "s", n, 1, n, 0.0)
    assert q.release("s", 1) == []
    assert [e.item for e in q.release("s", 2)] == [2, 3]
    assert q.signers() == ["s"] and len(q) == 1
    assert [e.item for e in q.release("s", 5)] == [5]
    assert q.signers() == [] and len(q) == 0


def test_expiry_takes_what_waited_the_ttl_and_keeps_the_rest() -> None:
    q: NonceQueue[str] = NonceQueue(ttl_s=60.0)
    q.hold(_h("old"), "s", 3, 1, "old", 100.0)
    q.hold(_h("new"), "t", 3, 1, "new", 110.0)
    assert q.expire(159.9) == []
    assert [e.item for e in q.expire(160.0)] == ["old"]
    assert [e.item for e in q.expire(170.0)] == ["new"]
    assert len(q) == 0


def test_expiry_finds_an_entry_queued_again_with_its_first_arrival_time() -> None:
    q: NonceQueue[str] = NonceQueue(ttl_s=60.0)
    q.hold(_h("young"), "s", 3, 1, "young", 150.0)
    q.hold(_h("requeued"), "t", 3, 1, "requeued", 100.0)  # older than the entry before it
    assert [e.item for e in q.expire(160.0)] == ["requeued"]
    assert [e.item for e in q.expire(210.0)] == ["young"]


def test_stale_entries_are_those_another_transaction_overtook() -> None:
    q: NonceQueue[str] = NonceQueue()
    for n in (3, 4, 6):
        q.hold(_h(f"{n}"), "s", n, 2, str(n), 0.0)
    assert [e.item for e in q.stale("s", 5)] == ["3", "4"]
    assert q.held_nonce("s", 6) == _h("6") and len(q) == 1


def test_drops_are_remembered_up_to_the_bound_oldest_forgotten_first() -> None:
    q: NonceQueue[str] = NonceQueue(remember=2)
    for label in ("a", "b", "c"):
        q.record_drop(_h(label), InvalidTx("gone", Code.NONCE_GAP_EXPIRED))
    assert q.dropped(_h("a")) is None
    assert q.dropped(_h("c")) is not None and q.dropped(_h("c")).code is Code.NONCE_GAP_EXPIRED  # type: ignore[union-attr]


def test_capacity_bounds_the_queue() -> None:
    q: NonceQueue[str] = NonceQueue(capacity=1)
    q.hold(_h("a"), "s", 3, 1, "a", 0.0)
    with pytest.raises(InvalidTx) as full:
        q.hold(_h("b"), "t", 3, 1, "b", 0.0)
    assert full.value.code is Code.MEMPOOL_FULL


# -- the solo engine -----------------------------------------------------------------------------------

@pytest.fixture
def idle(node_home: Any) -> Any:
    """The node over a real home, its engine thread not started: blocks are made by the test."""
    n = node_home.open_node()
    try:
        yield n
    finally:
        n.close()


def enrol(consortium: Consortium, nonce: int, label: str = "", org: str = ORG) -> bytes:
    member = seeded_key(f"queue/{nonce}/{label}")
    return sign_tx(consortium.admin(org), consortium.chain_id, "identity.enrol_member", 1, nonce,
                   {"member": member.public_hex, "org": org, "roles": ["physician"]})


def submit(node: Node, raw: bytes) -> tuple[str, Future[object]]:
    sub = node.submit_async(raw)
    return sub.admitted.result(timeout=30), sub.committed


def produce(node: Node) -> None:
    with node.mempool.lock:
        batch = node.mempool.take(len(node.mempool))
    node.produce_block(batch)


def refused(node: Node, raw: bytes) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        submit(node, raw)
    return caught.value


def admin_nonce(node: Node, consortium: Consortium) -> int:
    return committed_nonce(node.store.view(), consortium.admin(ORG).public_hex)


def test_a_gap_waits_and_fills_in_nonce_order(idle: Node, consortium: Consortium) -> None:
    t3, t2, t1 = enrol(consortium, 3), enrol(consortium, 2), enrol(consortium, 1)
    status3, c3 = submit(idle, t3)
    status2, c2 = submit(idle, t2)
    assert (status3, status2) == ("queued", "queued")
    assert idle.pool_status(hashlib.sha256(t3).digest()) == ("queued", None)
    assert len(idle.mempool) == 0 and len(idle.queue) == 2
    status1, c1 = submit(idle, t1)
    assert status1 == "pending"
    assert len(idle.mempool) == 3 and len(idle.queue) == 0  # the gap filled: all three follow on
    assert idle.pool_status(hashlib.sha256(t3).digest()) == ("pending", None)
    produce(idle)
    receipts = [c.result(timeout=10) for c in (c1, c2, c3)]
    assert all(isinstance(r, Receipt) and r.code == 0 for r in receipts)
    assert [idle.store.tx(hashlib.sha256(t).digest()).index for t in (t1, t2, t3)] == [0, 1, 2]
    assert admin_nonce(idle, consortium) == 3


def test_a_queued_tx_follows_once_its_predecessor_is_committed_and_the_next_arrives(
        idle: Node, consortium: Consortium) -> None:
    _, c1 = submit(idle, enrol(consortium, 1))
    produce(idle)
    assert isinstance(c1.result(timeout=10), Receipt)
    status3, c3 = submit(idle, enrol(consortium, 3))
    assert status3 == "queued"
    assert submit(idle, enrol(consortium, 2))[0] == "pending"
    produce(idle)
    assert isinstance(c3.result(timeout=10), Receipt) and admin_nonce(idle, consortium) == 3


def test_the_window_edge_through_the_node(idle: Node, consortium: Consortium) -> None:
    assert submit(idle, enrol(consortium, 1 + QUEUE_WINDOW - 1))[0] == "queued"
    head = idle.head
    error = refused(idle, enrol(consortium, 1 + QUEUE_WINDOW))
    assert error.code is Code.NONCE_OUT_OF_ORDER
    assert len(idle.queue) == 1 and len(idle.mempool) == 0 and idle.head == head  # nothing written


def test_duplicates_of_queued_and_pending_transactions(idle: Node, consortium: Consortium) -> None:
    t1, t3 = enrol(consortium, 1), enrol(consortium, 3)
    submit(idle, t1)
    submit(idle, t3)
    assert refused(idle, t3).code is Code.DUPLICATE_TX  # the same bytes, queued
    assert refused(idle, t1).code is Code.DUPLICATE_TX  # the same bytes, pending
    assert refused(idle, enrol(consortium, 3, "rival")).code is Code.NONCE_ALREADY_PENDING  # nonce queued
    assert refused(idle, enrol(consortium, 1, "rival")).code is Code.NONCE_ALREADY_PENDING  # nonce pending
    assert len(idle.mempool) == 1 and len(idle.queue) == 1
    produce(idle)
    assert refused(idle, enrol(consortium, 1, "late")).code is Code.NONCE_REPLAYED  # committed, not pending
    assert refused(idle, t1).code is Code.DUPLICATE_TX


def test_a_queued_tx_of_an_unknown_signer_is_refused_not_queued(idle: Node, consortium: Consortium) -> None:
    stranger = SigningKey(hashlib.sha256(b"queue/stranger").digest())
    raw = sign_tx(stranger, consortium.chain_id, "identity.enrol_member", 1, 5,
                  {"member": seeded_key("x").public_hex, "org": ORG, "roles": ["physician"]})
    assert refused(idle, raw).code is Code.UNKNOWN_SIGNER
    assert len(idle.queue) == 0


def test_a_gap_not_filled_in_time_drops_the_tx_with_a_status(idle: Node, consortium: Consortium) -> None:
    t2 = enrol(consortium, 2)
    _, c2 = submit(idle, t2)
    assert idle.expire_queued(now=float("-inf")) == 0  # nothing is due yet
    from time import monotonic
    assert idle.expire_queued(now=monotonic() + QUEUE_TTL_S) == 1
    outcome = c2.result(timeout=10)
    assert isinstance(outcome, InvalidTx) and outcome.code is Code.NONCE_GAP_EXPIRED
    state, why = idle.pool_status(hashlib.sha256(t2).digest()) or ("", None)
    assert state == "dropped" and why is not None and why.code is Code.NONCE_GAP_EXPIRED
    assert len(idle.queue) == 0 and len(idle.mempool) == 0
    # resubmitted after the gap is filled, the same bytes are welcome again
    submit(idle, enrol(consortium, 1))
    status, again = submit(idle, t2)
    assert status == "pending"
    produce(idle)
    assert isinstance(again.result(timeout=10), Receipt)


def test_after_a_restart_a_queued_tx_is_unknown(node_home: Any, consortium: Consortium) -> None:
    node = node_home.open_node()
    t3 = enrol(consortium, 3)
    try:
        assert submit(node, t3)[0] == "queued"
    finally:
        node.close()
    reopened = node_home.open_node()
    try:
        key = hashlib.sha256(t3).digest()
        assert reopened.pool_status(key) is None and not reopened.store.has_tx(key)
        assert admin_nonce(reopened, consortium) == 0
        assert submit(reopened, t3)[0] == "queued"  # the client resubmits it
    finally:
        reopened.close()


def test_a_halt_answers_queued_transactions_too(idle: Node, consortium: Consortium) -> None:
    _, c2 = submit(idle, enrol(consortium, 2))
    idle._enter_halt(LedgerError("stopped for the test", Code.UNAUTHORISED))
    outcome = c2.result(timeout=10)
    assert isinstance(outcome, InvalidTx) and outcome.code is Code.NODE_UNAVAILABLE
    assert len(idle.queue) == 0


def test_the_running_engine_commits_a_signers_transactions_sent_in_reverse(node: Node,
                                                                          consortium: Consortium) -> None:
    """With the engine thread and the signature workers: nonces 8 … 1 sent last first all commit."""
    subs = [node.submit_async(enrol(consortium, n)) for n in range(8, 0, -1)]
    assert [s.admitted.result(timeout=30) for s in subs] == ["queued"] * 7 + ["pending"]
    outcomes = [s.committed.result(timeout=30) for s in subs]
    assert all(isinstance(o, Receipt) and o.code == 0 for o in outcomes)
    assert admin_nonce(node, consortium) == 8
