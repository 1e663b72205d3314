"""The trial's anchor tree as the ledger keeps it: an RFC 6962 frontier, O(log n) state, append and root.

The trial's case-report anchors form one RFC 6962 / RFC 9162 tree (the same hashing as
:mod:`careledger.core.merkle`: ``leaf = SHA-256(0x00 ‖ data)``, ``node = SHA-256(0x01 ‖ l ‖ r)``), so
its root equals ``merkle_root`` over the same leaves and its inclusion proofs verify with
``careledger.core.merkle.verify_inclusion``.

The ledger keeps only the *frontier*: the roots of the perfect subtrees that the leaves ``0..n-1``
decompose into, one per set bit of ``n``, largest (leftmost) first. A tree of n leaves has at most
``bit_length(n)`` of them (20 at a million leaves), so:

* :func:`frontier_append` merges equal-sized subtrees like a binary counter: at most
  ``bit_length(n)`` node hashes, one on average;
* :func:`frontier_root` folds the frontier right to left: at most ``bit_length(n) - 1`` node
  hashes, whatever the number of leaves — the database-lock root costs the same at 10 or 1M.

Why the fold gives the RFC 6962 root: for n not a power of two, RFC 6962 splits at k, the largest
power of two below n; the left part is the perfect subtree of the highest set bit (the first
frontier entry) and the right part is the tree of the remaining ``n - k`` leaves, whose frontier is
the rest. For n a power of two the tree is the single perfect subtree.

The full tree, for proofs, is kept off the ledger (``careledger.trials.anchor_tree.AnchorTree``).
"""

from __future__ import annotations

from collections.abc import Sequence

from careledger.core.merkle import EMPTY_ROOT, ProofError, leaf_hash, node_hash


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> tuple[bytes, ...]:
    """The frontier after appending the leaf *hash* ``leaf`` to a tree of ``size`` leaves.

    Raises ValueError when the frontier does not match ``size`` (one entry per set bit).
    """
    if len(frontier) != size.bit_count():
        raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier entries, not {len(frontier)}")
    out = list(frontier)
    node, n = leaf, size
    while n & 1:  # each trailing one bit is a perfect subtree of the same size as ``node``: merge
        node = node_hash(out.pop(), node)
        n >>= 1
    out.append(node)
    return tuple(out)


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of the tree whose frontier this is (``SHA-256("")`` for the empty tree)."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1]
    for sub in reversed(frontier[:-1]):
        acc = node_hash(sub, acc)
    return acc


def root_from_leaf_hash(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes:
    """The root an RFC 9162 audit path leads to from an already-hashed leaf (section 2.1.3.2).

    Same walk as :func:`careledger.core.merkle.root_from_proof`, which takes the leaf's data; here
    the caller holds only the leaf hash (a sealed allocation, or an anchor leaf). Raises
    :class:`ProofError` for an index outside the tree or a path of the wrong length.
    """
    if not 0 <= index < tree_size:
        raise ProofError("leaf index out of range")
    fn, sn = index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ProofError("audit path is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("audit path is too short")
    return r


def verify_leaf_hash(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless the leaf hash ``leaf`` sits at ``index`` of the tree with ``root``."""
    if root_from_leaf_hash(leaf, index, tree_size, path) != root:
        raise ProofError("audit path does not lead to the expected root")


def verify_anchored(data: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> None:
    """Check that anchored ``data`` (a leaf's bytes, rebuilt from the vault's copy) is unchanged since ``root``.

    A datum changed after lock changes its commitment, so its leaf, so the root its proof leads to:
    raises :class:`ProofError`. The same for a leaf moved to another index.
    """
    verify_leaf_hash(leaf_hash(data), index, tree_size, path, root)


__all__ = ["ProofError", "frontier_append", "frontier_root", "root_from_leaf_hash", "verify_anchored",
           "verify_leaf_hash"]
