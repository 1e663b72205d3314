"""The anchor tree's frontier (on the ledger) and the full tree (off it): the frontier's root is RFC
6962's, proofs verify with the core's verifier, state and root cost stay O(log n), and a datum
changed after lock no longer reaches the locked root."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from careledger.contracts.trials import anchors
from careledger.contracts.trials.anchors import (
    frontier_append,
    frontier_root,
    root_from_leaf_hash,
    verify_anchored,
    verify_leaf_hash,
)
from careledger.core import merkle
from careledger.core.merkle import ProofError, leaf_hash, merkle_root, verify_inclusion
from careledger.trials.anchor_tree import AnchorTree


def _leaves(n: int) -> list[bytes]:
    return [f"visit-{i}".encode() for i in range(n)]


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_frontier_root_is_the_rfc6962_root(n: int) -> None:
    frontier: tuple[bytes, ...] = ()
    for i, data in enumerate(_leaves(n)):
        frontier = frontier_append(frontier, i, leaf_hash(data))
        assert len(frontier) == (i + 1).bit_count() <= (i + 1).bit_length()
    assert frontier_root(frontier) == merkle_root(_leaves(n))


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.data())
def test_proofs_verify_with_the_core_verifier_at_any_size(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    tree = AnchorTree(leaf_hash(x) for x in leaves)
    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = merkle_root(leaves[:size])
    assert tree.root(size) == root
    path = tree.proof(index, size)
    assert path == merkle.inclusion_proof([leaf_hash(x) for x in leaves[:size]], index)
    verify_inclusion(leaves[index], index, size, path, root)
    verify_anchored(leaves[index], index, size, path, root)


def test_root_from_leaf_hash_matches_the_core_walk() -> None:
    leaves = _leaves(13)
    tree = AnchorTree(leaf_hash(x) for x in leaves)
    for i in range(13):
        path = tree.proof(i)
        assert root_from_leaf_hash(leaf_hash(leaves[i]), i, 13, path) == merkle.root_from_proof(leaves[i], i, 13, path)


def test_a_datum_changed_after_lock_is_detected() -> None:
    leaves = _leaves(10)
    tree = AnchorTree(leaf_hash(x) for x in leaves)
    locked = tree.root()
    path = tree.proof(4)
    with pytest.raises(ProofError):
        verify_anchored(b"visit-4 (edited)", 4, 10, path, locked)
    with pytest.raises(ProofError):  # the same datum claimed at another index
        verify_anchored(leaves[4], 5, 10, path, locked)
    with pytest.raises(ProofError):  # a path shortened or lengthened
        verify_anchored(leaves[4], 4, 10, path[:-1], locked)
    with pytest.raises(ProofError):
        verify_leaf_hash(leaf_hash(leaves[4]), 4, 10, [*path, locked], locked)
    with pytest.raises(ProofError):
        verify_leaf_hash(leaf_hash(leaves[4]), 10, 10, path, locked)


def test_frontier_mismatch_and_bad_input_are_refused() -> None:
    with pytest.raises(ValueError, match="frontier entries"):
        frontier_append((), 1, leaf_hash(b"x"))
    with pytest.raises(ValueError, match="32 bytes"):
        AnchorTree().append(b"short")
    tree = AnchorTree(leaf_hash(x) for x in _leaves(3))
    with pytest.raises(ValueError):
        tree.root(4)
    with pytest.raises(IndexError):
        tree.proof(3)
    assert frontier_root(()) == merkle.EMPTY_ROOT


def test_root_and_append_cost_log_n_hashes_at_a_million_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's work per append and for the lock root is bounded by bit_length(n), not n."""
    calls = 0
    real = anchors.node_hash  # type: ignore[attr-defined]  # the module's own import, patched below

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(anchors, "node_hash", counting)
    # the frontier of 2**20 - 1 leaves: one perfect subtree per bit (values do not matter for the cost)
    size = 2**20 - 1
    frontier = tuple(hashlib.sha256(bytes([i])).digest() for i in range(size.bit_count()))
    calls = 0
    frontier_root(frontier)
    assert calls == size.bit_count() - 1 == 19
    calls = 0
    grown = frontier_append(frontier, size, leaf_hash(b"one more"))  # the worst case: every level merges
    assert calls == 20 and len(grown) == 1
    calls = 0
    small = tuple(hashlib.sha256(bytes([i])).digest() for i in range((10).bit_count()))
    frontier_root(small)
    assert calls == 1
