"""The records, consent and audit vectors (tests/vectors/records/) through both engines.

Unlike the identity and governance contracts, these contracts write the block time into state (an
anchor's, a consent's, an audit entry's ``time_ms``; a break-glass session's expiry). The solo engine
stamps blocks with its clock and CometBFT with its BFT time, so neither engine can reproduce a
vector's fixed block times, and their app hashes differ from the file's and from each other's. That
is why these vectors live in their own directory, outside :mod:`test_net_vectors` (which holds both
engines to the file's app hash and to identical state tables), and are held here to everything that
does not depend on the clock: every transaction's inclusion and receipt code on both engines, the
two engines' state tables key for key and value for value with the block-time fields set aside, and
the vector's post state with the same fields set aside. (A transaction the bare executor includes
as failed may be refused at admission instead, with the same code, by a real node, which checks the
contract's authorisation there: it then consumes no nonce.)
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from careledger.core import codec
from support import require_cometbft
from support.vectors import Outcome, run_cometbft, run_solo

RECORDS_VECTORS = sorted((Path(__file__).resolve().parents[1] / "vectors" / "records").glob("*.json"))
TIME_FIELDS = frozenset({"time_ms", "created_ms", "granted_ms", "revoked_ms", "erased_ms", "opened_ms",
                         "expires_ms"})

pytestmark = pytest.mark.cometbft


def without_time(value: Any) -> Any:
    """``value`` with every block-time field (at any depth) replaced by a marker."""
    if type(value) is dict:
        return {k: ("<block time>" if k in TIME_FIELDS else without_time(v)) for k, v in value.items()}
    if type(value) is list:
        return [without_time(v) for v in value]
    return value


def state_without_time(state: dict[str, bytes]) -> dict[str, Any]:
    return {k: without_time(codec.decode(v)) for k, v in state.items()}


def compare(vector: dict[str, Any], solo: Outcome, cmt: Outcome) -> list[str]:
    problems = []
    admission_refusals = False
    for expected in vector["post"]["results"]:
        tx = expected["tx"]
        for name, out in (("solo", solo), ("cometbft", cmt)):
            included, code, _ = out.results[tx]
            refused_at_admission = expected["included"] and expected["code"] and not included \
                and code == expected["code"]  # admission runs the contract's authorisation (same code)
            admission_refusals = admission_refusals or bool(refused_at_admission)
            if not refused_at_admission and (included, code) != (expected["included"], expected["code"]):
                problems.append(f"{name}: tx {tx[:12]} gave {(included, code)}, vector says "
                                f"{(expected['included'], expected['code'])}")
    for tx, (included, code, _) in solo.results.items():
        if cmt.results[tx][:2] != (included, code):
            problems.append(f"tx {tx[:12]}: solo {(included, code)} != cometbft {cmt.results[tx][:2]}")
    if solo.height != cmt.height:
        problems.append(f"heights: solo {solo.height} != cometbft {cmt.height}")
    solo_state, cmt_state = state_without_time(solo.state), state_without_time(cmt.state)
    if solo_state != cmt_state:
        differ = sorted(k for k in set(solo_state) | set(cmt_state) if solo_state.get(k) != cmt_state.get(k))
        problems.append(f"state differs between the engines (block time aside): {differ[:5]}")
    for key, value in vector["post"]["state"].items():
        if admission_refusals and key.startswith("nonce/"):
            continue  # a transaction refused at admission consumed no nonce (the bare executor's did)
        if solo_state.get(key) != without_time(value):
            problems.append(f"state {key} differs from the vector (block time aside)")
    return problems


def test_records_vectors_give_the_same_results_on_both_engines(tmp_path: Path) -> None:
    binary = require_cometbft()
    assert len(RECORDS_VECTORS) >= 9

    def one(path: Path) -> tuple[str, list[str]]:
        vector = json.loads(path.read_text())
        root = tmp_path / path.stem
        root.mkdir()
        solo = run_solo(vector, root)
        try:
            problems = compare(vector, solo, run_cometbft(vector, root, binary))
        except AssertionError as exc:  # a process that died or a timeout
            problems = [f"cometbft run: {exc}"]
        if problems:  # a vector block split over two CometBFT blocks by timing? one fresh try
            again = tmp_path / f"{path.stem}-again"
            again.mkdir()
            problems = compare(vector, solo, run_cometbft(vector, again, binary))
        return path.stem, problems

    with ThreadPoolExecutor(3) as pool:
        outcomes = dict(pool.map(one, RECORDS_VECTORS))
    failures = {name: problems for name, problems in outcomes.items() if problems}
    assert failures == {}, json.dumps(failures, indent=1)


def test_a_vector_that_disagrees_is_caught() -> None:
    """The comparison is not vacuous: a changed code or a changed state value is reported."""
    vector = json.loads((RECORDS_VECTORS[0]).read_text())
    out = Outcome()
    for r in vector["post"]["results"]:
        out.results[r["tx"]] = (r["included"], r["code"], None)
    out.state = {k: codec.encode(v) for k, v in vector["post"]["state"].items() if v is not None}
    assert compare(vector, out, out) == []
    wrong = Outcome()
    wrong.results = {tx: (inc, (code or 0) + 1, None) for tx, (inc, code, _) in out.results.items()}
    wrong.state = {k: codec.encode({"x": 1}) for k in out.state}
    problems = compare(vector, wrong, wrong)
    assert any("vector says" in p for p in problems) and any("differs from the vector" in p for p in problems)
