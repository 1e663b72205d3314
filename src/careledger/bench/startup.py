"""``careledger bench --workload startup``: how long a node takes to open a grown ledger.

Growing a ledger to a million transactions through the engine takes many minutes (every transaction
signed, admitted and executed), so this benchmark writes one directly through
:meth:`careledger.node.store.Store.commit_block`, the very call the engines make: blocks of
``block_txs`` transactions shaped like patient registrations (a ~200-byte transaction, its receipt,
three state entries: the nonce, the key record and the pseudonym index), with real hash links,
Merkle roots, app hashes, state commitment, head record and a real signature on every block. The
transactions are opaque bytes, not signed transactions, so ``careledger verify`` would reject the
chain; start-up does not decode transactions, which is the point: it must not depend on the
ledger's size.

It then measures, on the grown home:

* ``open_store_s``: :func:`careledger.node.startup.open_store` (migration check, start-up check with
  the state row count, head record), warm (median of 3) and cold (the files' pages dropped from the
  page cache with ``posix_fadvise``, so the figure includes reading from disk);
* ``open_node_s``: :meth:`careledger.node.home.Home.open_node`, what ``careledger node start`` does
  before serving (open_store plus the last block's signature and the engine's set-up);
* ``count_rows_s``: the one check whose cost grows with the ledger (``SELECT count(*) FROM state``,
  against the state commitment's count), which the solo engine runs before its first block while the
  API already serves; warm, and cold (``count_rows_cold_s``).

With ``workdir`` given and a home already grown there (``workdir/node``), the build is skipped.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.chain.executor import nonce_key
from careledger.contracts.identity.layout import key_key, patient_key
from careledger.core.block import Receipt
from careledger.core.state import compute_app_hash
from careledger.demo.consortium import create_consortium
from careledger.node.home import Home
from careledger.node.integrity import check_row_count
from careledger.node.startup import open_store
from careledger.node.store import Store

Progress = Callable[[str], None]


def synthetic_block(height: int, first: int, count: int) -> tuple[list[bytes], list[Receipt], dict[str, bytes | None]]:
    """``count`` registration-shaped transactions numbered from ``first``: raw bytes, receipts, state changes
    (canonical JSON written out directly: building a million of them through the encoder costs minutes)."""
    raws, receipts = [], []
    changes: dict[str, bytes | None] = {}
    for i in range(first, first + count):
        key = hashlib.sha256(f"startup-bench/{i}".encode()).hexdigest()
        pseudonym = "pt-" + key[:32]
        raw = (f'{{"nonce":1,"payload":{{}},"sig":"{key}{key}","signer":"{key}",'
               f'"type":"identity.register_patient"}}').encode()
        raws.append(raw)
        receipts.append(Receipt(tx=hashlib.sha256(raw).hexdigest(), index=i - first, code=0,
                                result={"pseudonym": pseudonym}))
        changes[nonce_key(key)] = b"1"
        changes[key_key(key)] = (f'{{"kind":"patient","pseudonym":"{pseudonym}","since":{height},'
                                          f'"status":"active"}}').encode()
        changes[patient_key(pseudonym)] = f'{{"key":"{key}","since":{height},"status":"active"}}'.encode()
    return raws, receipts, changes


def build_ledger(home: Home, txs: int, block_txs: int, progress: Progress = lambda s: None) -> int:
    """Grow ``home``'s ledger by ``txs`` synthetic transactions in blocks of ``block_txs``; returns the height."""
    from careledger.core.block import Header, receipts_root, txs_root

    key = home.node_key()
    store, chain = open_store(home.db_path, home.genesis(), sync="normal")  # a fixture: no need to outlive power loss
    try:
        head = store.head()
        time_ms = chain.genesis.genesis_time_ms
        done = 0
        while done < txs:
            count = min(block_txs, txs - done)
            height = head.height + 1
            raws, receipts, changes = synthetic_block(height, done, count)
            app_hash = compute_app_hash(height, head.app_hash, changes)
            header = Header(chain_id=chain.chain_id, height=height, time_ms=time_ms + height,
                            prev_hash=head.block_hash.hex(), txs_root=txs_root(raws).hex(),
                            receipts_root=receipts_root(receipts).hex(), app_hash=app_hash.hex(),
                            proposer=key.public_hex, tx_count=count)
            signature = key.sign("block", chain.chain_id, header.hash)
            head = store.commit_block(header, signature, raws, receipts, changes)
            done += count
            if height % 50 == 0:
                progress(f"{done:,} of {txs:,} transactions written")
        return head.height
    finally:
        store.close()


def _drop_cache(paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_startup(txs: int = 1_000_000, block_txs: int = 2_000, workdir: Path | None = None,
                  progress: Progress = lambda s: None) -> dict[str, Any]:
    """Build a ``txs``-transaction home and time opening it (see the module docstring)."""
    if workdir is not None:
        return _bench(txs, block_txs, workdir, progress)
    with tempfile.TemporaryDirectory(prefix="careledger-startup-") as tmp:
        return _bench(txs, block_txs, Path(tmp), progress)


def _bench(txs: int, block_txs: int, workdir: Path, progress: Progress) -> dict[str, Any]:
    empty_open: float | None = None
    build_s: float | None = None
    if (workdir / "node" / "data" / "ledger.sqlite").exists():
        home = Home(workdir / "node")
    else:
        home = create_consortium(workdir / "node", int(time.time() * 1000), chain_id="careledger-startup").home
        empty_open = round(_timed(lambda: _open_close(home)), 3)
        started = time.perf_counter()
        build_ledger(home, txs, block_txs, progress)
        build_s = round(time.perf_counter() - started, 1)
    progress("timing start-up")
    files = [home.db_path, home.db_path.with_name(home.db_path.name + "-wal")]
    _drop_cache(files)
    cold = _timed(lambda: _open_close(home))
    warm = statistics.median(_timed(lambda: _open_close(home)) for _ in range(3))
    node = statistics.median(_timed(lambda: home.open_node().close()) for _ in range(3))
    store = Store(home.db_path, create=False)
    try:
        _drop_cache(files)
        count_cold = _timed(lambda: check_row_count(store))
        count_warm = _timed(lambda: check_row_count(store))
        rows = check_row_count(store)
        head = store.head()
        (stored_txs,) = store.view().connection.execute("SELECT count(*) FROM txs").fetchone()
    finally:
        store.close()
    return {"workload": "startup", "txs": stored_txs, "blocks": head.height, "block_txs": block_txs,
            "state_rows": rows, "db_mb": round(home.db_path.stat().st_size / 2**20, 1), "build_s": build_s,
            "open_store_empty_s": empty_open, "open_store_s": round(warm, 3), "open_store_cold_s": round(cold, 3),
            "open_node_s": round(node, 3), "count_rows_s": round(count_warm, 3),
            "count_rows_cold_s": round(count_cold, 3), "target_open_lt_2_s": cold < 2 and node < 2}


def _open_close(home: Home) -> None:
    open_store(home.db_path, home.genesis())[0].close()
