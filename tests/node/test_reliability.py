"""Crash recovery with real processes and real files (GUIDE §7; issue 2, "Reliability").

1. SIGKILL under sustained load, 20 times: real ``careledger node start`` processes on loopback,
   load over HTTP with ``wait=commit``. After every restart: ``careledger verify`` passes, every
   transaction the node acknowledged as committed is there with the same receipt, and the node's
   head equals a clean replay of its blocks.
2. Torn writes and bit flips in ``ledger.sqlite`` and ``ledger.sqlite-wal`` of a stopped node (cleanly
   stopped; killed with blocks in the WAL; killed just after a checkpoint copied the WAL into the
   database file): the node either refuses to start with a clear error (STORE_CORRUPTED, or
   STORE_ROLLED_BACK when the damage lost blocks it had acknowledged: its head record, outside
   SQLite, remembers them), or starts at the pristine head with every block identical to the pristine
   copy and ``verify`` passing, or starts (start-up reads a bounded number of rows, issue 16) and
   ``verify`` reports the damage. Never a start below the acknowledged head, never a wrong app hash.
   Most trials open the home as ``careledger node start`` does (``Home.open_node``); every few, the
   CLI itself.

Randomness is seeded (``RELIABILITY_SEED``, default fixed) so a failure reproduces exactly;
``RELIABILITY_FLIPS`` raises the number of bit flips per variant for a longer run.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.core.errors import Code, StoreCorrupted
from careledger.node.home import Home
from careledger.node.store import Store
from careledger.node.verify import verify_store
from support.load import (
    BATCH_ORG,
    SINGLE_ORG,
    Load,
    NodeProcess,
    NodeRefused,
    Replay,
    Signer,
    copy_home,
    make_home,
    receipt_view,
    verify_cli,
)

SEED = int(os.environ.get("RELIABILITY_SEED", "20240517"))
FLIPS = int(os.environ.get("RELIABILITY_FLIPS", "30"))  # per variant; raise it for a soak run
KILLS = 20


# -- 1. SIGKILL under load ------------------------------------------------------------------------------

def get_txs(url: str, hashes: list[str]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10.0) as http:
        return [dict(http.get(f"/v1/txs/{h}").json()) for h in hashes]


def check_restarted(node: NodeProcess, home: Home, replay: Replay, acked: dict[str, Any],
                    recent: list[str], rng: random.Random) -> dict[str, Any]:
    """Everything a restart must give: verify passes, acknowledged transactions are all there with
    their receipts, and the node's head is the clean replay's. Returns the node's status."""
    status = node.status()
    with ThreadPoolExecutor(1) as pool:
        verified = pool.submit(verify_cli, home.path)  # in parallel with the checks below
        before = replay.height
        replay.catch_up(home.db_path)  # asserts that no earlier block changed
        assert status["height"] >= before, "the node restarted below a height it had committed"
        assert {k: status[k] for k in ("height", "app_hash", "block_hash")} == replay.head, \
            "the restarted node's head is not that of a clean replay of its blocks"
        # every acknowledged transaction, ever, is stored at its height with its receipt
        missing = [h for h in acked if h not in replay.txs]
        assert not missing, f"{len(missing)} acknowledged transactions are missing, e.g. {missing[:3]}"
        for h, ack in acked.items():
            stored = replay.txs[h]
            assert stored.height == ack.height, f"{h} acknowledged at {ack.height}, stored at {stored.height}"
            assert receipt_view(stored) == {k: v for k, v in ack.receipt.items() if k != "name"}, h
        # and the API serves them: all those acknowledged since the last restart, and a sample of older ones
        sample = list(dict.fromkeys(recent + rng.sample(list(acked), min(25, len(acked)))))
        chunks = [sample[i::4] for i in range(4)]
        with ThreadPoolExecutor(4) as getters:
            docs = [d for chunk in getters.map(lambda c: get_txs(node.url, c), chunks) for d in chunk]
            for h, doc in zip([h for c in chunks for h in c], docs, strict=True):
                assert doc["status"] == "committed", (h, doc)
                assert (doc["height"], doc["receipt"]) == (acked[h].height, acked[h].receipt), h
        code, report = verified.result()
    assert code == 0 and report["ok"], f"verify failed after a restart: {report}"
    assert report["height"] == status["height"] and report["txs"] == len(replay.txs)
    return status


def test_sigkill_under_load_20_times(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    home, consortium = make_home(tmp_path, "kill9")
    replay = Replay(consortium.genesis)
    batch_admin = Signer(consortium.admin(BATCH_ORG), BATCH_ORG)
    single_admin = Signer(consortium.admin(SINGLE_ORG), SINGLE_ORG)
    acked: dict[str, Any] = {}
    unknown: set[str] = set()
    per_cycle: list[tuple[int, int, int]] = []
    node = NodeProcess(home.path)
    recent: list[str] = []
    started = time.monotonic()
    spent = dict.fromkeys(("start", "checks", "load"), 0.0)
    try:
        for cycle in range(KILLS + 1):
            t0 = time.monotonic()
            try:
                node.start()
            except NodeRefused as exc:  # plain SIGKILL loses nothing: the node must start
                pytest.fail(f"cycle {cycle}: the node refused to start after SIGKILL: {exc}")
            t1 = time.monotonic()
            if cycle:
                status = check_restarted(node, home, replay, acked, recent, rng)
                per_cycle[-1] = (*per_cycle[-1][:2], status["height"])
            t2 = time.monotonic()
            spent["start"] += t1 - t0
            spent["checks"] += t2 - t1
            if cycle == KILLS:
                break
            batch_admin.next_nonce = single_admin.next_nonce = 0  # ask the restarted node
            load = Load(node.url, consortium.chain_id, random.Random(rng.getrandbits(64)), batch_admin,
                        single_admin, batch_size=rng.randint(4, 16)).start()
            # kill at a random moment once the load is flowing (the first commit can wait for a cold start)
            assert load.first_ack.wait(30), f"cycle {cycle}: nothing was committed in 30 s: {load.errors}"
            time.sleep(rng.uniform(0.3, 1.3))
            node.kill9()
            load.join()
            spent["load"] += time.monotonic() - t2
            assert not load.errors, load.errors
            acked.update(load.acked)
            unknown |= load.unknown
            recent = list(load.acked)
            per_cycle.append((len(load.acked), len(load.unknown), 0))
        # a clean stop afterwards keeps everything too
        assert node.stop() == 0
        code, report = verify_cli(home.path)
        assert code == 0 and report["height"] == replay.height
    finally:
        node.kill9()
    elapsed = time.monotonic() - started
    # the test could not pass vacuously: there was load in every cycle and in flight at most kills
    assert all(a > 0 for a, _, _ in per_cycle), per_cycle
    assert sum(1 for _, u, _ in per_cycle if u) >= KILLS // 2, f"few kills caught transactions in flight: {per_cycle}"
    resolved = sum(1 for h in unknown if h in replay.txs)
    print(f"\n{KILLS} kills in {elapsed:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in spent.items())}): "
          f"{len(acked)} acknowledged, all present; {len(unknown)} in flight at a kill ({resolved} of them "
          f"committed); final height {replay.height}")


# -- 2. torn writes and bit flips -----------------------------------------------------------------------

Outcome = tuple[str, int]  # ("refused" | "rolled_back" | "reported", 0) | ("recovered", height)
REFUSALS = {Code.STORE_CORRUPTED: "refused", Code.HEAD_RECORD_MISMATCH: "refused",
            Code.STORE_ROLLED_BACK: "rolled_back"}


@dataclass
class Pristine:
    """A stopped node's home and what it holds: the chain that any recovered store must be a prefix of."""

    home: Path
    head: int
    blocks: list[tuple[int, bytes, bytes, bytes]]  # (height, hash, header, signature)
    txs: list[tuple[Any, ...]]  # every txs row, in (height, idx) order
    db_only_head: int  # the head of the database file without its WAL (0 when there is no WAL)

    def rows_up_to(self, height: int) -> tuple[list[Any], list[Any]]:
        return [b for b in self.blocks if b[0] <= height], [t for t in self.txs if t[0] <= height]


Damage = Callable[[Path], None]
TX_COLUMNS = ("height", "idx", "hash", "raw", "receipt", "message", "chk")


def read_chain(db: Path) -> tuple[int, list[tuple[int, bytes, bytes, bytes]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        blocks = [(h, bytes(a), bytes(b), bytes(c)) for h, a, b, c in
                  conn.execute("SELECT height, hash, header, signature FROM blocks ORDER BY height")]
        txs = [(h, i, bytes(a), bytes(b), bytes(c), m, bytes(k)) for h, i, a, b, c, m, k in
               conn.execute("SELECT height, idx, hash, raw, receipt, message, chk FROM txs "
                            "NOT INDEXED ORDER BY height, idx")]
        return (blocks[-1][0] if blocks else 0), blocks, txs
    finally:
        conn.close()


def build_pristine(root: Path, label: str, wal: str) -> Pristine:
    """Commit blocks through a real node process, then stop it:

    * ``wal="none"``: cleanly, so everything is checkpointed into the database file and no WAL is left;
    * ``wal="live"``: restart, commit more, SIGKILL: the last blocks live in the WAL only;
    * ``wal="backfilled"``: the same, but a checkpoint has copied the WAL into the database file before
      the kill and the WAL was not reset yet (as after any automatic checkpoint until the next commit):
      a damaged WAL frame then makes SQLite read older pages over newer ones.
    """
    home, consortium = make_home(root, label)
    rng = random.Random(f"{SEED}/{label}")
    admins = (Signer(consortium.admin(BATCH_ORG), BATCH_ORG), Signer(consortium.admin(SINGLE_ORG), SINGLE_ORG))

    def load(node: NodeProcess, batches: int) -> None:
        admins[0].next_nonce = 0
        Load(node.url, consortium.chain_id, rng, *admins, batch_size=10).run_batches(batches)

    node = NodeProcess(home.path).start()
    try:
        load(node, 14)
        assert node.stop() == 0
        db_only_head = 0
        if wal != "none":
            db_only_head = read_chain(home.db_path)[0]
            node.start()
            load(node, 8)
            # no automatic checkpoint has run yet (it runs at 1000 WAL pages), so for "live" the
            # database file holds exactly what it held at the clean stop
            assert wal_of(home.db_path).stat().st_size < 1000 * (4096 + 24), "the WAL was checkpointed"
            if wal == "backfilled":
                conn = sqlite3.connect(home.db_path)
                try:
                    busy, frames, backfilled = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                finally:
                    conn.close()
                assert busy == 0 and frames == backfilled > 0
            node.kill9()
    finally:
        node.kill9()
    assert home.db_path.with_name("ledger.sqlite-wal").exists() == (wal != "none")
    # the reference: a scratch copy, opened (recovering the WAL) and verified
    scratch = copy_home(home.path, root / f"{label}-reference")
    head, blocks, txs = read_chain(scratch.db_path)
    store = Store(scratch.db_path, create=False)
    try:
        report = verify_store(store)
    finally:
        store.close()
    assert report.ok and report.height == head > db_only_head, report
    return Pristine(home.path, head, blocks, txs, db_only_head)


@pytest.fixture(scope="module")
def pristine_db(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    return build_pristine(tmp_path_factory.mktemp("pristine-db"), "torn-db", wal="none")


@pytest.fixture(scope="module")
def pristine_wal(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    return build_pristine(tmp_path_factory.mktemp("pristine-wal"), "torn-wal", wal="live")


@pytest.fixture(scope="module")
def pristine_backfilled(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    return build_pristine(tmp_path_factory.mktemp("pristine-bf"), "torn-bf", wal="backfilled")


def assert_recovered_prefix(pristine: Pristine, home: Home, height: int, app_hash: str, block_hash: str,
                            verified: tuple[bool, int, str]) -> None:
    """A store that opened must hold a prefix of the pristine chain, verify, and report its head."""
    assert 0 <= height <= pristine.head, f"started at height {height}, above the pristine head {pristine.head}"
    ok, verified_height, problem = verified
    assert ok, f"the node started (height {height}) on a store that verify rejects: {problem}"
    assert verified_height == height, f"the node started at {height}, a clean replay ends at {verified_height}"
    got_head, blocks, txs = read_chain(home.db_path)
    assert got_head == height
    want_blocks, want_txs = pristine.rows_up_to(height)
    assert blocks == want_blocks, "a recovered block differs from the pristine copy"
    assert len(txs) == len(want_txs), "recovered transactions differ from the pristine copy"
    for got, want in zip(txs, want_txs, strict=True):
        for column, a, b in zip(TX_COLUMNS, got, want, strict=True):
            assert a == b, f"the {column} of transaction {want[1]} at height {want[0]} differs from the pristine copy"
    if height:
        header = next(b for b in pristine.blocks if b[0] == height)
        assert block_hash == header[1].hex()
        assert f'"app_hash":"{app_hash}"'.encode() in header[2], "the node's app hash is not its block's"


def trial_api(pristine: Pristine, home: Home) -> Outcome:
    """Open the damaged home as ``careledger node start`` does (Home.open_node); classify the result."""
    try:
        node = home.open_node()
    except StoreCorrupted as exc:
        assert exc.code in REFUSALS and len(exc.message) > 10, exc
        return (REFUSALS[exc.code], 0)
    try:
        head = node.head
        store = Store(home.db_path, create=False)
        try:
            report = verify_store(store)
        finally:
            store.close()
        status = node.status()
        assert (status["height"], status["app_hash"]) == (head.height, head.app_hash.hex())
    finally:
        node.close()
    assert head.height == pristine.head, f"started at {head.height}, below the acknowledged {pristine.head}"
    if not report.ok:  # damage in rows start-up does not read: verify must name it
        assert report.code == "STORE_CORRUPTED" and report.problem, report
        return ("reported", 0)
    assert_recovered_prefix(pristine, home, head.height, head.app_hash.hex(), head.block_hash.hex(),
                            (report.ok, report.height, report.problem))
    return ("recovered", head.height)


def trial_cli(pristine: Pristine, home: Home) -> Outcome:
    """The user's path: ``careledger node start`` must exit non-zero naming the problem, or serve a head
    that ``careledger verify`` confirms."""
    node = NodeProcess(home.path)
    try:
        node.start()
    except NodeRefused as exc:
        return _refusal(exc.returncode, exc.stderr)
    try:
        status = node.status()
    finally:
        stopped = node.stop()
    if stopped != 0:  # the engine found damage before its first block (the state row count) and exited 5
        return _refusal(stopped, (home.path.parent / f"{home.path.name}-node.log").read_text())
    code, report = verify_cli(home.path)
    assert status["height"] == pristine.head, f"started at {status['height']}, below {pristine.head}"
    if code != 0:
        assert code == 2 and report["code"] == "STORE_CORRUPTED" and report["problem"], report
        return ("reported", 0)
    assert_recovered_prefix(pristine, home, status["height"], status["app_hash"], status["block_hash"],
                            (code == 0 and report["ok"], report["height"], report["problem"]))
    return ("recovered", status["height"])


def _refusal(returncode: int, output: str) -> Outcome:
    """A node that would not serve: it must have exited non-zero naming the problem, without a traceback."""
    assert returncode != 0
    assert "Traceback" not in output, f"refusal with a traceback: {output[-1500:]}"
    for code, kind in REFUSALS.items():
        if f"error: {code.name} (" in output:
            return (kind, 0)
    if returncode == 5 and "block production stopped (store_corrupted)" in output:
        return ("refused", 0)
    raise AssertionError(f"refusal without a clear error: {output[-1500:]}")


@dataclass
class Trials:
    """The outcome of each trial, by name: ("refused", 0) or ("recovered", height)."""

    pristine: Pristine
    results: dict[str, Outcome]

    def count(self) -> Counter[str]:
        head = self.pristine.head
        return Counter(kind if kind != "recovered" else ("full" if height == head else "earlier")
                       for kind, height in self.results.values())

    def assert_rolled_back_or_whole(self, names: list[str], lost_commits: bool) -> None:
        """A damaged WAL (torn tail, flipped frame) makes SQLite roll back to a commit it still holds. The
        node must notice the acknowledged blocks it lost and refuse (STORE_ROLLED_BACK), or start with
        them all; with ``lost_commits`` every trial lost some (a torn tail always tears the last commit)."""
        for name in names:
            kind, height = self.results[name]
            assert kind in ("rolled_back", "recovered"), f"{name}: {kind}"
            if kind == "recovered":
                assert height == self.pristine.head and not lost_commits, (name, height)


def run_trials(pristine: Pristine, tmp: Path, damages: list[tuple[str, Damage]], cli_every: int) -> Trials:
    trials = Trials(pristine, {})
    for i, (name, damage) in enumerate(damages):
        home = copy_home(pristine.home, tmp / f"trial-{i}")
        damage(home.db_path)
        use_cli = cli_every and i % cli_every == 0
        try:
            trials.results[name] = (trial_cli if use_cli else trial_api)(pristine, home)
        except AssertionError as exc:
            raise AssertionError(f"trial {i} ({name}, {'CLI' if use_cli else 'API'}): {exc}") from exc
        shutil.rmtree(home.path)
    assert len(trials.results) == len(damages)
    print(f"\n{len(damages)} trials on a chain of {pristine.head} blocks: {dict(trials.count())}")
    return trials


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def truncate(target: Callable[[Path], Path], k: int | None) -> Damage:
    def damage(db: Path) -> None:
        path = target(db)
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.truncate(size - (k if k is not None else size // 2))
    return damage


def flip(target: Callable[[Path], Path], offset: int, bit: int) -> Damage:
    def damage(db: Path) -> None:
        path = target(db)
        with path.open("r+b") as f:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << bit)]))
    return damage


def same(db: Path) -> Path:
    return db


TRUNCATIONS = [1, 7, 100, 4096, None]  # None: half the file


def test_truncated_database_file(pristine_db: Pristine, tmp_path: Path) -> None:
    damages = [(f"db -{k or 'half'}", truncate(same, k)) for k in TRUNCATIONS]
    trials = run_trials(pristine_db, tmp_path, damages, cli_every=3)
    # the file's last pages hold live b-tree pages: cutting any of them off must be noticed
    counts = trials.count()
    assert counts["refused"] + counts["rolled_back"] + counts["reported"] >= 1, counts


def test_truncated_wal_and_database_with_wal(pristine_wal: Pristine, tmp_path: Path) -> None:
    wal_damages = [(f"wal -{k or 'half'}", truncate(wal_of, k)) for k in TRUNCATIONS]
    db_damages = [(f"db -{k or 'half'}", truncate(same, k)) for k in TRUNCATIONS]
    trials = run_trials(pristine_wal, tmp_path, wal_damages + db_damages, cli_every=3)
    # a torn WAL tail loses the acknowledged commits it tore: the head record notices
    trials.assert_rolled_back_or_whole([name for name, _ in wal_damages], lost_commits=True)


def seeded_flips(rng: random.Random, path: Path, target: Callable[[Path], Path], n: int) -> list[tuple[str, Damage]]:
    size = path.stat().st_size
    out = []
    for _ in range(n):
        offset, bit = rng.randrange(size), rng.randrange(8)
        out.append((f"{target.__name__} @{offset} bit {bit}", flip(target, offset, bit)))
    return out


FLIP_VARIANTS = {  # name: (pristine fixture, file flipped)
    "db": ("pristine_db", same),
    "live-wal:db": ("pristine_wal", same),
    "live-wal:wal": ("pristine_wal", wal_of),
    "backfilled-wal:wal": ("pristine_backfilled", wal_of),
}


@pytest.mark.parametrize("variant", list(FLIP_VARIANTS))
def test_bit_flips(variant: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    fixture, target = FLIP_VARIANTS[variant]
    pristine: Pristine = request.getfixturevalue(fixture)
    rng = random.Random(f"{SEED}/flips/{variant}")
    damages = seeded_flips(rng, target(Home(pristine.home).db_path), target, FLIPS)
    trials = run_trials(pristine, tmp_path, damages, cli_every=10)
    if variant == "live-wal:wal":  # WAL frames carry checksums: a flipped one and all after it are dropped
        trials.assert_rolled_back_or_whole([name for name, _ in damages], lost_commits=False)
