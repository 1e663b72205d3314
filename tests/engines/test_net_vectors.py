"""A representative subset of the contract vectors on a real CometBFT network.

tests/engines/test_vector_engines.py runs every vector through the solo engine and through the ABCI
application driven in process as CometBFT drives it, with the vector's block times. Here a subset —
every contract, the check order and the refused signatures, a validator change — goes through a real
single-validator CometBFT network: its validator key is the vector's, our ABCI app runs as a
subprocess, and transactions arrive through CometBFT's RPC ``broadcast_tx_sync``; a block's
transactions are sent together just after a commit, so they land in one CometBFT block.

CometBFT stamps blocks with its own BFT time. The vectors directly in tests/vectors/ (envelope,
identity, governance) never write a block time into state, so the network must reproduce the file's
receipts, app hashes and whole state byte for byte. The others (records, consent, audit, supply,
claims, trials, research) do (an anchor's ``time_ms``, a pack's history, a deadline), so for them the network is
held to every transaction's inclusion and code, the ledger height, and the whole state with the times
set aside (:func:`support.vectors.without_time`). In both cases its state table must equal that of the
in-process ABCI run of the same vector.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support import require_cometbft
from support.vectors import (
    ALL_VECTOR_FILES,
    TIMELESS_VECTOR_FILES,
    compare,
    load,
    run_abci,
    run_cometbft,
    vector_id,
    without_time,
)

SUBSET = [
    "envelope_check_order", "envelope_signature_malleability", "envelope_nonces",
    "identity_revocation_same_block", "governance_add_organisation_executed", "governance_set_validator",
    "governance_proposal_expired",
    "records/records_erase", "records/consent_grant_and_revoke", "records/consent_break_glass",
    "supply/supply_epcis_capture", "supply/supply_decommission", "supply/supply_undo", "supply/supply_verify",
    "claims/claims_edit_tables", "trials/trials_enrol", "research/research_release",
    "identity/identity_rotate_key_member",
]
"""Chosen among the vectors whose outcome does not depend on the day: a plan version, for one, may not
take effect before the block's day, so the claims vectors that register a plan are left to the engines
in process."""


def test_the_subset_names_vectors_of_every_directory() -> None:
    assert set(SUBSET) <= {vector_id(p) for p in ALL_VECTOR_FILES}
    assert {s.split("/")[0] for s in SUBSET if "/" in s} == {p.parent.name for p in ALL_VECTOR_FILES} - {"vectors"}


def test_times_are_set_aside_and_nothing_else() -> None:
    value = {"a": 1_750_000_001_000, "b": [["ship", 1_750_000_002_000, "org", 3]], "day": 20_254, "n": 7,
             "s": "1750000001000", "nested": {"expires_ms": 1_750_001_801_000, "flag": True}}
    assert without_time(value) == {"a": "<time>", "b": [["ship", "<time>", "org", 3]], "day": 20_254, "n": 7,
                                   "s": "1750000001000", "nested": {"expires_ms": "<time>", "flag": True}}


def test_a_subset_of_the_vectors_gives_the_same_results_on_a_cometbft_network(tmp_path: Path) -> None:
    binary = require_cometbft()
    timeless = {p.stem for p in TIMELESS_VECTOR_FILES}
    paths = {vector_id(p): p for p in ALL_VECTOR_FILES}

    def one(name: str) -> tuple[str, list[str]]:
        vector = load(paths[name])
        root = tmp_path / name.replace("/", "-")
        root.mkdir()
        reference = run_abci(vector, root)
        problems: list[str] = []
        for attempt in ("", "-again"):  # a vector block split over two CometBFT blocks by timing? one fresh try
            run_root = root / f"cometbft{attempt}"
            run_root.mkdir()
            try:
                network = run_cometbft(vector, run_root, binary)
            except AssertionError as exc:  # a process that died or a timeout
                problems = [f"cometbft run: {exc}"]
                continue
            problems, _ = compare(vector, {"abci in process": reference, "cometbft": network},
                                  timeless=vector["name"] in timeless)
            if not problems:
                break
        return name, problems

    with ThreadPoolExecutor(4) as pool:
        outcomes = dict(pool.map(one, SUBSET))
    failures = {name: problems for name, problems in outcomes.items() if problems}
    assert failures == {}, json.dumps(failures, indent=1)
