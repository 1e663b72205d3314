"""Stratified block randomisation: reproducible from the seed, balanced per block, committed by a salted
Merkle root; every slot's reveal verifies and any altered reveal is refused."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.contracts.trials.allocation import (
    AllocationCommitment,
    AllocationError,
    RevealedAllocation,
    sealed_allocation,
    verify_allocation,
)
from careledger.core.merkle import leaf_hash
from careledger.trials.randomisation import generate_schedule

SEED = hashlib.sha256(b"sponsor seed").digest()
STRATA = ["site-a|young", "site-a|old", "site-b|young"]


def test_the_seed_regenerates_the_schedule_and_another_seed_does_not() -> None:
    a = generate_schedule(SEED, STRATA, ["drug", "placebo"], [1, 1], [4, 6], 30)
    b = generate_schedule(SEED, list(reversed(STRATA)), ["drug", "placebo"], [1, 1], [4, 6], 30)
    c = generate_schedule(hashlib.sha256(b"another seed").digest(), STRATA, ["drug", "placebo"], [1, 1], [4, 6], 30)
    assert a.commitment() == b.commitment()
    assert a.commitment().root != c.commitment().root
    arms_a = [x.arm for _, allocs in a.strata for x in allocs]
    arms_c = [x.arm for _, allocs in c.strata for x in allocs]
    assert arms_a != arms_c
    assert [s for s, _ in a.commitment().strata] == sorted(STRATA)  # code-point order, whatever the input order


@settings(max_examples=25, derandomize=True, deadline=None)
@given(st.sampled_from([([1, 1], [2, 4]), ([2, 1], [3, 6]), ([1, 1, 1], [3, 6, 9])]),
       st.integers(min_value=1, max_value=60))
def test_every_complete_block_holds_the_ratio(design: tuple[list[int], list[int]], slots: int) -> None:
    ratio, sizes = design
    arms = [f"arm{i}" for i in range(len(ratio))]
    schedule = generate_schedule(SEED, ["s"], arms, ratio, sizes, slots)
    sequence = [a.arm for a in schedule.strata[0][1]]
    assert len(sequence) == slots
    # imbalance at any point is bounded by the largest block: after each whole block the counts are in ratio
    unit = sum(ratio)
    counts = Counter(sequence)
    for arm, share in zip(arms, ratio, strict=True):
        assert abs(counts[arm] * unit - share * slots) <= share * max(sizes) * unit


def test_every_slot_verifies_open_and_sealed() -> None:
    schedule = generate_schedule(SEED, STRATA, ["drug", "placebo"], [1, 1], [2, 4], 9)
    commitment = schedule.commitment()
    assert commitment.size == 27
    for stratum, allocs in schedule.strata:
        for a in allocs:
            opened = schedule.reveal(stratum, a.index)
            sealed = schedule.reveal(stratum, a.index, sealed=True)
            assert opened.arm == a.arm and sealed.arm is None and sealed.salt is None
            assert verify_allocation(commitment, opened) == verify_allocation(commitment, sealed) == leaf_hash(a.leaf())
            assert sealed_allocation(stratum, a.index, a.arm, a.salt) == sealed.sealed


def test_an_altered_allocation_is_refused() -> None:
    schedule = generate_schedule(SEED, STRATA, ["drug", "placebo"], [1, 1], [2, 4], 8)
    commitment = schedule.commitment()
    good = schedule.reveal("site-a|old", 3)
    other_arm = "placebo" if good.arm == "drug" else "drug"
    cases = {
        "another arm": RevealedAllocation(good.stratum, 3, good.proof, other_arm, good.salt),
        "another salt": RevealedAllocation(good.stratum, 3, good.proof, good.arm, bytes(32)),
        "another slot": RevealedAllocation(good.stratum, 4, good.proof, good.arm, good.salt),
        "another stratum's proof": RevealedAllocation(good.stratum, 3, schedule.reveal("site-b|young", 3).proof,
                                                      good.arm, good.salt),
        "a sealed hash that is not the leaf": RevealedAllocation(good.stratum, 3, good.proof,
                                                                 sealed=hashlib.sha256(b"x").digest()),
    }
    for what, revealed in cases.items():
        with pytest.raises(AllocationError) as exc:
            verify_allocation(commitment, revealed)
        assert exc.value.reason == "proof", what
    with pytest.raises(AllocationError) as exc:
        verify_allocation(commitment, RevealedAllocation("site-c|young", 0, good.proof, good.arm, good.salt))
    assert exc.value.reason == "stratum"
    with pytest.raises(AllocationError) as exc:
        verify_allocation(commitment, RevealedAllocation(good.stratum, 8, good.proof, good.arm, good.salt))
    assert exc.value.reason == "index"
    with pytest.raises(AllocationError) as exc:
        verify_allocation(commitment, RevealedAllocation(good.stratum, 3, good.proof[:-1], good.arm, good.salt))
    assert exc.value.reason == "proof"


def test_a_proof_reveals_only_salted_hashes() -> None:
    """Every allocation is salted with 256 secret bits: the same arms under another seed give unrelated
    sibling hashes, and the unsalted guesses for a sibling (each arm, no salt known) never match."""
    schedule = generate_schedule(SEED, ["s"], ["drug", "placebo"], [1, 1], [2], 2)
    proof = schedule.reveal("s", 0).proof
    sibling = proof[0]  # slot 1's leaf hash
    for arm in ("drug", "placebo"):
        for salt in (bytes(32), SEED):
            assert sealed_allocation("s", 1, arm, salt) != sibling
    again = generate_schedule(hashlib.sha256(b"other").digest(), ["s"], ["drug", "placebo"], [1, 1], [2], 2)
    assert again.reveal("s", 0).proof[0] != sibling


def test_commitment_json_round_trip() -> None:
    c = generate_schedule(SEED, STRATA, ["a", "b"], [1, 1], [2], 3).commitment()
    assert AllocationCommitment.from_json(c.to_json()) == c
    assert c.offset("site-a|young") == 3 and c.offset("site-a|old") == 0
    with pytest.raises(KeyError):
        c.offset("nowhere")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seed": b"short"}, "32 secret bytes"),
    ({"strata": []}, "strata"),
    ({"strata": ["a", "a"]}, "strata"),
    ({"strata": ["bad stratum"]}, "strata"),
    ({"arms": ["only"]}, "two distinct arm"),
    ({"ratio": [1]}, "ratio"),
    ({"ratio": [0, 1]}, "ratio"),
    ({"block_sizes": [3]}, "multiple of 2"),
    ({"block_sizes": []}, "multiple of 2"),
    ({"slots": 0}, "slots per stratum"),
])
def test_bad_generator_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"seed": SEED, "strata": ["s"], "arms": ["a", "b"], "ratio": [1, 1],
                               "block_sizes": [2, 4], "slots": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_schedule(args["seed"], args["strata"], args["arms"], args["ratio"], args["block_sizes"],  # type: ignore[arg-type]
                          args["slots"])  # type: ignore[arg-type]
