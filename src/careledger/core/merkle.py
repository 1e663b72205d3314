"""RFC 6962 / RFC 9162 Merkle trees over SHA-256.

``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``. A tree of n > 1
leaves splits at k, the largest power of two smaller than n; odd leaves are never duplicated. The
root of the empty tree is ``SHA-256("")``. Inclusion proofs are RFC 9162 audit paths (section 2.1.3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """An inclusion proof does not lead to the expected root."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of already-hashed leaves, computed bottom-up in O(n)."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha = hashlib.sha256
    # Bottom-up pairing gives the same tree as RFC 6962's recursive split: an odd node is promoted.
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    sha = hashlib.sha256
    return root_from_leaf_hashes([sha(b"\x00" + x).digest() for x in leaves])


def inclusion_proof(leaves_hashed: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 audit path for leaf ``index`` among the given leaf hashes."""
    n = len(leaves_hashed)
    if not 0 <= index < n:
        raise IndexError("leaf index out of range")
    path: list[bytes] = []

    def walk(lo: int, hi: int, m: int) -> None:
        size = hi - lo
        if size == 1:
            return
        k = _split(size)
        if m < k:
            walk(lo, lo + k, m)
            path.append(root_from_leaf_hashes(leaves_hashed[lo + k : hi]))
        else:
            walk(lo + k, hi, m - k)
            path.append(root_from_leaf_hashes(leaves_hashed[lo : lo + k]))

    walk(0, n, index)
    return path


def root_from_proof(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf's data and its audit path (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < tree_size:
        raise ProofError("leaf index out of range")
    fn, sn = index, tree_size - 1
    r = leaf_hash(leaf)
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


def verify_inclusion(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``leaf`` sits at ``index`` of the tree with ``root``."""
    if root_from_proof(leaf, index, tree_size, path) != root:
        raise ProofError("audit path does not lead to the expected root")
