"""The head record outside SQLite (issue 16, item 1): its two slots, and how start-up reads it.

A store may be at its head record or one block ahead of it (a crash between the SQLite commit and the
record's write), never behind; the record must name a block the store holds, of the same chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from careledger.core.errors import Code, StoreCorrupted
from careledger.node.headrecord import SLOT_BYTES, HeadFile, HeadRecord, head_path_of
from careledger.node.startup import open_store
from support import Consortium, seeded_key
from support.cli import run_cli


def record(height: int, seq_marker: int = 0) -> HeadRecord:
    return HeadRecord(height, bytes([height]) * 32, bytes([height + 1]) * 32, b"\x07" * 32, height * 3,
                      bytes([seq_marker]) * 32)


def test_slots_alternate_and_a_torn_newest_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    path = tmp_path / "ledger.head"
    head = HeadFile(path)
    assert head.read() is None
    written = [head.write(record(h)) for h in (1, 2, 3)]
    assert [r.seq for r in written] == [0, 1, 2]
    assert path.stat().st_size == 2 * SLOT_BYTES  # never grows: a full disk cannot fail a head write
    head.close()
    assert HeadFile(path).read() == written[2]
    data = bytearray(path.read_bytes())
    data[2 * 0 + 40] ^= 0xFF  # seq 2 lives in slot 0: tear it
    path.write_bytes(bytes(data))
    assert HeadFile(path).read() == written[1]  # one block older, intact
    again = HeadFile(path)
    again.read()
    # the next write goes over the torn slot, never over the intact older one
    assert again.write(record(4)).seq == 2
    again.close()
    assert HeadFile(path).read() == HeadRecord(**{**record(4).__dict__, "seq": 2})
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    data[SLOT_BYTES + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted) as err:
        HeadFile(path).read()
    assert err.value.code == Code.HEAD_RECORD_MISMATCH


@pytest.fixture
def store_path(tmp_path: Path, consortium: Consortium) -> Path:
    from support import Ledger

    path = tmp_path / "ledger.sqlite"
    store, chain = open_store(path, consortium.genesis, create=True)
    ledger = Ledger(consortium, chain)
    try:
        from careledger.chain.executor import BlockExecution

        for i in range(3):
            head = store.head()
            raw = ledger.tx(seeded_key(f"head/{i}"), "identity.register_patient", {})
            run = BlockExecution(chain, store.writer_view, ledger.env(head.height + 1), head.app_hash)
            run.add(ledger.check(raw))
            result = run.finish()
            header = result.header(head.block_hash.hex(), consortium.validator.public_hex)
            store.commit_block(header, consortium.validator.sign("block", chain.chain_id, header.hash), result.txs,
                               result.receipts, result.changes)
    finally:
        store.close()
    return path


def rewrite_record(path: Path, **fields: Any) -> None:
    head = HeadFile(head_path_of(path))
    current = head.read()
    assert current is not None
    head.write(HeadRecord(**{**current.__dict__, **fields}))
    head.close()


def test_a_store_one_block_ahead_of_its_record_opens_and_the_record_catches_up(store_path: Path) -> None:
    """As after a crash between a commit and its record: the record names block 2, the store holds 3."""
    store, _ = open_store(store_path, check=False)
    block2 = store.block(2)
    store.close()
    rewrite_record(store_path, height=2, block_hash=block2[1], app_hash=bytes.fromhex(block2[0].app_hash))
    store, _ = open_store(store_path)
    try:
        record_now = store.head_file.read()
        assert record_now is not None and record_now.height == store.head().height == 3
    finally:
        store.close()


@pytest.mark.parametrize(("fields", "code", "words"), [
    ({"height": 9}, Code.STORE_ROLLED_BACK, "acknowledged height 9"),
    ({"genesis_hash": b"\x01" * 32}, Code.HEAD_RECORD_MISMATCH, "another chain"),
    ({"block_hash": b"\x02" * 32}, Code.HEAD_RECORD_MISMATCH, "not the one this node committed"),
    ({"state_count": 1}, Code.HEAD_RECORD_MISMATCH, "not the one this node committed"),
    ({"height": 1, "block_hash": b"\x03" * 32}, Code.HEAD_RECORD_MISMATCH, "does not hold the block 1"),
])
def test_a_record_the_store_does_not_match_is_refused(store_path: Path, fields: dict[str, Any], code: Code,
                                                      words: str) -> None:
    rewrite_record(store_path, **fields)
    with pytest.raises(StoreCorrupted) as err:
        open_store(store_path)
    assert err.value.code == code and words in err.value.message, err.value.message


def test_the_cometbft_engine_accepts_a_store_behind_its_record(store_path: Path) -> None:
    """CometBFT's block store is that engine's record of what was decided: it replays what the app lacks."""
    rewrite_record(store_path, height=9)
    store, _ = open_store(store_path, allow_behind=True)
    store.close()


def test_a_lost_record_is_refused_until_the_operator_resets_it_after_a_full_verify(tmp_path: Path,
                                                                                    node_home: Any) -> None:
    head_path_of(node_home.db_path).unlink()
    with pytest.raises(StoreCorrupted) as err:
        node_home.open_node()
    assert err.value.code == Code.HEAD_RECORD_MISMATCH and "--reset-head" in err.value.message
    plain = run_cli("verify", "--home", str(node_home.path), "--json")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["head_record"] == "missing"
    reset = run_cli("verify", "--home", str(node_home.path), "--reset-head", "--json")
    assert reset.exit_code == 0 and json.loads(reset.stdout)["head_record"] == "reset"
    node_home.open_node().close()
