"""The trial's anchor tree kept in full, off the ledger: roots and inclusion proofs for any size.

The ledger keeps only the frontier (:mod:`careledger.contracts.trials.anchors`). A holder of all the
leaves (the sponsor, a monitor, a regulator rebuilding them from the anchors in committed state with
``careledger.contracts.trials.anchor_leaves``) keeps every level of perfect subtrees here and
answers RFC 9162 inclusion proofs in O(log² n) hashes at worst, for the current size or any earlier
one (the locked size). The proofs verify with ``careledger.core.merkle.verify_inclusion`` and with
:func:`careledger.contracts.trials.anchors.verify_anchored`.
"""

from __future__ import annotations

from collections.abc import Iterable

from careledger.contracts.trials.anchors import frontier_root
from careledger.core.merkle import leaf_hash, node_hash

HASH_BYTES = 32


def _largest_power_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class AnchorTree:
    """An append-only tree with every level of perfect subtrees kept: roots and proofs for any size.

    ``levels[h][j]`` is the root of the perfect subtree of ``2**h`` leaves starting at ``j * 2**h``.
    Memory is about two hashes per leaf.
    """

    __slots__ = ("levels",)

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> int:
        """Append a leaf *hash*; returns its index. Raises ValueError for a hash that is not 32 bytes."""
        if len(leaf) != HASH_BYTES:
            raise ValueError("a leaf hash is 32 bytes")
        index = len(self.levels[0])
        self.levels[0].append(leaf)
        h = 0
        while len(self.levels[h]) % 2 == 0:
            if len(self.levels) == h + 1:
                self.levels.append([])
            self.levels[h + 1].append(node_hash(self.levels[h][-2], self.levels[h][-1]))
            h += 1
        return index

    def append_data(self, data: bytes) -> int:
        return self.append(leaf_hash(data))

    def frontier(self, size: int | None = None) -> tuple[bytes, ...]:
        """The frontier of the first ``size`` leaves (default: all), as the ledger keeps it."""
        n = self.size if size is None else size
        self._check_size(n)
        out: list[bytes] = []
        start = 0
        for h in range(n.bit_length() - 1, -1, -1):
            if n >> h & 1:
                out.append(self.levels[h][start >> h])
                start += 1 << h
        return tuple(out)

    def root(self, size: int | None = None) -> bytes:
        return frontier_root(self.frontier(size))

    def _subtree(self, lo: int, hi: int) -> bytes:
        """Root of leaves ``lo..hi-1``; every range RFC 6962's recursion visits is aligned."""
        n = hi - lo
        if n & (n - 1) == 0:
            return self.levels[n.bit_length() - 1][lo // n]
        k = _largest_power_below(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 audit path for leaf ``index`` in the tree of the first ``size`` leaves."""
        n = self.size if size is None else size
        self._check_size(n)
        if not 0 <= index < n:
            raise IndexError("leaf index out of range")
        path: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _largest_power_below(hi - lo)
            if index < lo + k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo = lo + k
        path.reverse()  # RFC 9162 lists the path from the leaf upwards
        return path

    def _check_size(self, n: int) -> None:
        if not 0 <= n <= self.size:
            raise ValueError(f"the tree has {self.size} leaves, not {n}")


__all__ = ["AnchorTree"]
