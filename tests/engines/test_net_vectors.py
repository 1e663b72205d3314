"""Same results on both engines: every contract vector run through the solo engine and through CometBFT.

For each vector in tests/vectors/, its pre blocks and its block go, block by block, through

* the solo engine: a real home and SQLite store, :meth:`Node.admit` then :meth:`Node.produce_block`
  (the engine's own code path, without its timer), signing blocks with the vector's validator key;
* CometBFT: a single-validator network whose validator key *is* the vector's validator key, our ABCI
  app as a subprocess, transactions through CometBFT's RPC ``broadcast_tx_sync``; a block's
  transactions are sent together just after a commit, so they land in one CometBFT block.

Neither engine makes a ledger block without transactions, so ledger heights match the vector's (except
for a vector with an empty block, whose engines are compared with each other only). Both engines must
give the vector's ``included`` flags, its receipts byte for byte, its post state, and — heights being
equal, and the contracts reading only the height from the block environment — its app hash. Their
whole state tables must be identical.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support import require_cometbft
from support.vectors import (
    VECTOR_FILES,
    compare,
    run_cometbft,
    run_solo,
)


def test_every_vector_gives_the_same_results_on_both_engines(tmp_path: Path) -> None:
    binary = require_cometbft()
    assert len(VECTOR_FILES) >= 20

    def one(path: Path) -> tuple[str, tuple[list[str], bool]]:
        vector = json.loads(path.read_text())
        root = tmp_path / path.stem
        root.mkdir()
        solo = run_solo(vector, root)
        try:
            outcome = compare(vector, solo, run_cometbft(vector, root, binary))
        except AssertionError as exc:  # a process that died or a timeout
            outcome = ([f"cometbft run: {exc}"], False)
        if outcome[0]:  # a vector block split over two CometBFT blocks by timing? one fresh try
            again = tmp_path / f"{path.stem}-again"
            again.mkdir()
            outcome = compare(vector, solo, run_cometbft(vector, again, binary))
        return path.stem, outcome

    with ThreadPoolExecutor(4) as pool:
        outcomes = dict(pool.map(one, VECTOR_FILES))
    failures = {name: problems for name, (problems, _) in outcomes.items() if problems}
    assert failures == {}, json.dumps(failures, indent=1)
    exact = sorted(name for name, (_, held) in outcomes.items() if held)
    assert len(exact) >= 14, exact  # most vectors reproduce the file's app hash through both engines
