"""State-sync snapshots in process: one app takes snapshots, another joins from them through the four
ABCI snapshot calls exactly as CometBFT makes them (ListSnapshots and LoadSnapshotChunk on the
serving app, OfferSnapshot and ApplySnapshotChunk on the joining one), and what a bad peer can and
cannot do. ``test_net_statesync`` does it on a real network.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci import abci_pb2 as pb
from careledger.abci.app import CareLedgerApp
from careledger.abci.cometbft import validator_address
from careledger.abci.snapshots import HASH_TAG, RESTORE_DIR, Manifest, SnapshotError, SnapshotPolicy
from careledger.abci.wire import decode_uvarint, encode_uvarint
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.node.startup import open_store
from careledger.node.store import Store
from support import GENESIS_TIME_MS, Consortium, make_consortium, seeded_key

PROPOSER = validator_address(seeded_key("validator/0").public_key)
POLICY = SnapshotPolicy(interval=3, keep=2, chunk_bytes=1024)
OFFER = pb.OfferSnapshotResponse
APPLY = pb.ApplySnapshotChunkResponse


def init_chain(app: CareLedgerApp, consortium: Consortium) -> None:
    app.init_chain(pb.InitChainRequest(time=Timestamp(seconds=GENESIS_TIME_MS // 1000), chain_id=consortium.chain_id,
                                       app_state_bytes=json.dumps(consortium.doc).encode(), initial_height=1))


def run_block(app: CareLedgerApp, txs: list[bytes]) -> bytes:
    height = app.cometbft_height + 1
    ms = GENESIS_TIME_MS + height * 1000
    res = app.finalize_block(pb.FinalizeBlockRequest(
        txs=txs, height=height, time=Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000),
        proposer_address=PROPOSER, hash=hashlib.sha256(b"block%d" % height).digest()))
    app.commit(pb.CommitRequest())
    return bytes(res.app_hash)


class Traffic:
    """Enrolments (some refused by their contract: a failed receipt) and patient registrations."""

    def __init__(self, consortium: Consortium) -> None:
        self.consortium = consortium
        self.nonce = 0
        self.n = 0

    def block(self, size: int) -> list[bytes]:
        txs = []
        admin = self.consortium.admin("hospital")
        for _ in range(size):
            self.n += 1
            if self.n % 3 == 0:
                self.nonce += 1
                member = seeded_key(f"m{self.n // 6}")  # every other enrolment repeats a key: KEY_IN_USE
                txs.append(sign_tx(admin, self.consortium.chain_id, "identity.enrol_member", 1, self.nonce,
                                   {"member": member.public_hex, "org": "hospital", "roles": ["physician"]}))
            else:
                txs.append(sign_tx(seeded_key(f"p{self.n}"), self.consortium.chain_id, "identity.register_patient",
                                   1, 1, {}))
        return txs


@pytest.fixture
def source(tmp_path: Path, consortium: Consortium) -> Any:
    """An app that has committed CometBFT heights 1-7 (height 5 empty), with snapshots at 3 and 6."""
    app = CareLedgerApp(tmp_path / "a" / "ledger.sqlite", snapshot_policy=POLICY)
    init_chain(app, consortium)
    traffic = Traffic(consortium)
    hashes = {}
    for height in range(1, 8):
        hashes[height] = run_block(app, traffic.block(0 if height == 5 else 12))
        app.wait_for_snapshot(30)
    app.hashes = hashes  # type: ignore[attr-defined]
    app.traffic = traffic  # type: ignore[attr-defined]
    yield app
    app.close()


def joiner(tmp_path: Path, consortium: Consortium, name: str = "b", at_genesis: bool = True) -> CareLedgerApp:
    """A new node's app: its ledger initialised at genesis (as `careledger net` does), or empty."""
    db = tmp_path / name / "ledger.sqlite"
    if at_genesis:
        db.parent.mkdir(parents=True)
        store, _ = open_store(db, consortium.genesis, check=False, create=True)
        store.close()
    return CareLedgerApp(db)


def newest(app: CareLedgerApp) -> pb.Snapshot:
    snapshots = list(app.list_snapshots(pb.ListSnapshotsRequest()).snapshots)
    assert snapshots
    snapshot: pb.Snapshot = snapshots[0]
    return snapshot


def chunks_of(app: CareLedgerApp, snapshot: pb.Snapshot) -> list[bytes]:
    return [app.load_snapshot_chunk(pb.LoadSnapshotChunkRequest(height=snapshot.height, format=snapshot.format,
                                                                chunk=i)).chunk for i in range(snapshot.chunks)]


def restore(app: CareLedgerApp, snapshot: pb.Snapshot, chunks: list[bytes], trusted: bytes) -> list[int]:
    """Offer and apply as CometBFT does, up to the first answer other than ACCEPT; returns the
    ApplySnapshotChunk results (the offer's result, negated, if it was refused)."""
    offered = app.offer_snapshot(pb.OfferSnapshotRequest(snapshot=snapshot, app_hash=trusted)).result
    if offered != OFFER.ACCEPT:
        return [-int(offered)]
    results = []
    for i, chunk in enumerate(chunks):
        results.append(int(app.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest(index=i, chunk=chunk,
                                                                                 sender="peer-a")).result))
        if results[-1] != APPLY.ACCEPT:
            break
    return results


def ledger_rows(path: Path) -> list[tuple[int, bytes, bytes, bytes]]:
    store = Store(path, create=False)
    try:
        return list(store.iter_blocks())
    finally:
        store.close()


# -- the round trip ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("at_genesis", [True, False], ids=["ledger-at-genesis", "no-ledger-yet"])
def test_a_new_node_joins_from_a_snapshot_and_then_follows_the_chain(source: CareLedgerApp, consortium: Consortium,
                                                                     tmp_path: Path, at_genesis: bool) -> None:
    snapshots = list(source.list_snapshots(pb.ListSnapshotsRequest()).snapshots)
    assert [s.height for s in snapshots] == [6, 3]  # every 3 CometBFT heights, newest first
    snapshot = snapshots[0]
    assert snapshot.format == 1 and snapshot.chunks > 3  # 1 KiB chunks: the stream spans several
    manifest = Manifest.from_abci(snapshot)
    assert manifest.ledger_height == 5 and manifest.app_hash == source.hashes[6]  # type: ignore[attr-defined]
    app = joiner(tmp_path, consortium, at_genesis=at_genesis)
    try:
        results = restore(app, snapshot, chunks_of(source, snapshot), source.hashes[6])  # type: ignore[attr-defined]
        assert results == [APPLY.ACCEPT] * snapshot.chunks
        info = app.info(pb.InfoRequest())
        assert (info.last_block_height, info.last_block_app_hash) == (6, source.hashes[6])  # type: ignore[attr-defined]
        assert not (tmp_path / "b" / RESTORE_DIR).exists()
        # the same blocks as the source up to the snapshot, and the next block gives the same app hash
        assert ledger_rows(app.db_path) == ledger_rows(source.db_path)[:5]
        source_rows = ledger_rows(source.db_path)
        assert run_block(app, _block_txs(source, 6)) == source.hashes[7]  # type: ignore[attr-defined]
        assert ledger_rows(app.db_path) == source_rows
        assert app.store is not None and app.store.check_integrity().height == 6
        # and the restored node serves snapshots of its own, identical to the source's
        app.snapshot_policy = POLICY
        nxt = source.traffic.block(5)  # type: ignore[attr-defined]
        run_block(app, nxt), run_block(source, nxt)
        run_block(app, []), run_block(source, [])
        app.wait_for_snapshot(30)
        source.wait_for_snapshot(30)
        assert newest(app) == newest(source) and newest(app).height == 9
    finally:
        app.close()


def _block_txs(app: CareLedgerApp, ledger_height: int) -> list[bytes]:
    assert app.store is not None
    return [t.raw for t in app.store.block_txs(ledger_height)]


def test_snapshots_are_kept_as_the_policy_says_and_are_the_same_on_every_node(tmp_path: Path,
                                                                              consortium: Consortium) -> None:
    apps = [CareLedgerApp(tmp_path / n / "ledger.sqlite", snapshot_policy=SnapshotPolicy(interval=2, keep=2))
            for n in ("x", "y")]
    traffic = Traffic(consortium)
    try:
        for app in apps:
            init_chain(app, consortium)
        for _ in range(7):
            txs = traffic.block(4)
            for app in apps:
                run_block(app, txs)
                app.wait_for_snapshot(30)
        x, y = (list(a.list_snapshots(pb.ListSnapshotsRequest()).snapshots) for a in apps)
        assert [s.height for s in x] == [6, 4] and x == y  # identical: chunks can come from any peer
        assert sorted(p.name for p in (tmp_path / "x" / "snapshots").iterdir()) == ["4", "6"]
        assert apps[0].load_snapshot_chunk(pb.LoadSnapshotChunkRequest(height=2, format=1, chunk=0)).chunk == b""
        assert apps[0].load_snapshot_chunk(pb.LoadSnapshotChunkRequest(height=6, format=9, chunk=0)).chunk == b""
    finally:
        for app in apps:
            app.close()


def test_the_policy_file_is_read_beside_the_ledger_and_checked(tmp_path: Path) -> None:
    assert SnapshotPolicy.load(tmp_path) == SnapshotPolicy()  # no file: no snapshots
    SnapshotPolicy(interval=50, keep=3).save(tmp_path)
    assert SnapshotPolicy.load(tmp_path) == SnapshotPolicy(interval=50, keep=3)
    for bad in ('{"interval": -1}', '{"every": 5}', "[1]", "{", '{"chunk_bytes": 10}'):
        (tmp_path / "statesync.json").write_text(bad)
        with pytest.raises(SnapshotError):
            SnapshotPolicy.load(tmp_path)


# -- what a bad peer can and cannot do ---------------------------------------------------------------------------

def test_a_corrupted_chunk_is_fetched_again_from_another_peer(source: CareLedgerApp, consortium: Consortium,
                                                               tmp_path: Path) -> None:
    snapshot = newest(source)
    chunks = chunks_of(source, snapshot)
    app = joiner(tmp_path, consortium)
    try:
        trusted = source.hashes[6]  # type: ignore[attr-defined]
        assert app.offer_snapshot(pb.OfferSnapshotRequest(snapshot=snapshot, app_hash=trusted)).result == OFFER.ACCEPT
        bad = bytearray(chunks[1])
        bad[7] ^= 1
        assert app.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest(index=0, chunk=chunks[0])).result == APPLY.ACCEPT
        res = app.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest(index=1, chunk=bytes(bad), sender="liar"))
        assert (res.result, list(res.refetch_chunks), list(res.reject_senders)) == (APPLY.RETRY, [1], ["liar"])
        for i, chunk in enumerate(chunks[1:], start=1):
            assert app.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest(index=i, chunk=chunk)).result == APPLY.ACCEPT
        assert app.info(pb.InfoRequest()).last_block_app_hash == trusted
    finally:
        app.close()


def reframe(chunks: list[bytes], edit: Any, chunk_bytes: int = 1024) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Decode a snapshot's records, let ``edit`` change them, and cut a new, self-consistent stream."""
    data = zlib.decompress(b"".join(chunks))
    records, pos = [], 0
    while pos < len(data):
        size, start = decode_uvarint(data, pos)
        records.append(codec.decode(data[start:start + size]))
        pos = start + size
    records = edit(records)
    stream = zlib.compress(b"".join(encode_uvarint(len(r)) + r for r in (codec.encode(x) for x in records)))
    return [stream[i:i + chunk_bytes] for i in range(0, len(stream), chunk_bytes)], records


def forged(snapshot: pb.Snapshot, chunks: list[bytes], metadata: dict[str, Any] | None = None) -> pb.Snapshot:
    """A snapshot whose metadata and hash are consistent with ``chunks`` (as a bad peer can make)."""
    doc = dict(codec.decode(snapshot.metadata)) | (metadata or {})
    doc["chunk_hashes"] = [hashlib.sha256(c).hexdigest() for c in chunks]
    return pb.Snapshot(height=snapshot.height, format=1, chunks=len(chunks), metadata=codec.encode(doc),
                       hash=hashlib.sha256(HASH_TAG + b"".join(hashlib.sha256(c).digest() for c in chunks)).digest())


def test_a_consistent_but_false_history_is_rejected_and_the_ledger_is_untouched(
        source: CareLedgerApp, consortium: Consortium, tmp_path: Path) -> None:
    snapshot = newest(source)
    trusted = source.hashes[6]  # type: ignore[attr-defined]

    def drop_a_tx(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records[2]["txs"] = records[2]["txs"][:-1]  # block 2 without its last transaction
        return records

    def foreign_signer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stranger = SigningKey.generate()
        records[3]["txs"][0] = sign_tx(stranger, consortium.chain_id, "identity.enrol_member", 1, 1, {
            "member": stranger.public_hex, "org": "hospital", "roles": ["physician"]}).hex()
        return records

    def cut_short(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*records[:-2], {"blocks": 5, "end": True}]

    def trailing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*records, records[1]]

    app = joiner(tmp_path, consortium)
    try:
        for edit in (drop_a_tx, foreign_signer, cut_short, trailing):
            chunks, _ = reframe(chunks_of(source, snapshot), edit)
            results = restore(app, forged(snapshot, chunks), chunks, trusted)
            assert results[-1] == APPLY.REJECT_SNAPSHOT, edit.__name__
            assert app.head.height == 0 and app.cometbft_height == 0
            assert not (tmp_path / "b" / RESTORE_DIR).exists()
        # the genuine snapshot still restores afterwards
        assert restore(app, snapshot, chunks_of(source, snapshot), trusted)[-1] == APPLY.ACCEPT
        assert app.head.app_hash == trusted
    finally:
        app.close()


def test_offers_refused(source: CareLedgerApp, consortium: Consortium, tmp_path: Path) -> None:
    snapshot = newest(source)
    trusted = source.hashes[6]  # type: ignore[attr-defined]
    app = joiner(tmp_path, consortium)
    other = make_consortium(chain_id="careledger-other")
    stranger = joiner(tmp_path, other, name="c")
    try:
        def offer(target: CareLedgerApp, snap: pb.Snapshot, app_hash: bytes = trusted) -> int:
            return int(target.offer_snapshot(pb.OfferSnapshotRequest(snapshot=snap, app_hash=app_hash)).result)

        wrong_format = pb.Snapshot(); wrong_format.CopyFrom(snapshot); wrong_format.format = 2  # noqa: E702
        assert offer(app, wrong_format) == OFFER.REJECT_FORMAT
        assert offer(app, snapshot, app_hash=bytes(32)) == OFFER.REJECT  # not what the light client trusts
        bad_hash = pb.Snapshot(); bad_hash.CopyFrom(snapshot); bad_hash.hash = bytes(32)  # noqa: E702
        assert offer(app, bad_hash) == OFFER.REJECT
        bad_meta = pb.Snapshot(); bad_meta.CopyFrom(snapshot); bad_meta.metadata = b'{"x":1}'  # noqa: E702
        assert offer(app, bad_meta) == OFFER.REJECT
        assert offer(stranger, snapshot) == OFFER.REJECT  # another genesis
        assert offer(source, snapshot) == OFFER.ABORT  # a ledger past genesis is never overwritten
        assert app.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest(index=0, chunk=b"x")).result == APPLY.ABORT
        assert app.head.height == 0
    finally:
        app.close()
        stranger.close()
