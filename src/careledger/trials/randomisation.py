"""Stratified block randomisation, sponsor side (off the ledger): the seeded sequence and its reveals.

:func:`generate_schedule` draws, for each stratum, permuted blocks whose sizes are chosen at random
from ``block_sizes`` (each a multiple of the sum of the allocation ratio) and fills them with the
arms in that ratio, shuffled (Fisher-Yates). Every draw comes from HMAC-SHA256 keyed by the
sponsor's secret ``seed`` (counter mode, rejection sampling, so unbiased), and so does every
allocation's 32-byte salt: the seed alone regenerates the whole schedule. Keep it like a private
key; the ledger never sees it.

:meth:`AllocationSchedule.commitment` is what the sponsor registers and
:meth:`AllocationSchedule.reveal` what the sponsor's randomisation service hands a site at each
enrolment (leaf format, commitment and verification: :mod:`careledger.contracts.trials.allocation`).

Deterministic given the seed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from careledger.contracts.trials.allocation import (
    ARM_RE,
    MAX_SLOTS,
    STRATUM_RE,
    AllocationCommitment,
    RevealedAllocation,
    allocation_leaf,
)
from careledger.core.merkle import leaf_hash
from careledger.trials.anchor_tree import AnchorTree

MIN_SEED_BYTES = 32
_DRBG_TAG = b"careledger/randomisation/v1\x00"


@dataclass(frozen=True, slots=True)
class Allocation:
    stratum: str
    index: int
    arm: str
    salt: bytes

    def leaf(self) -> bytes:
        return allocation_leaf(self.stratum, self.index, self.arm, self.salt)


class AllocationSchedule:
    """The sponsor's whole sequence: every stratum's allocations, with the tree over their leaves."""

    def __init__(self, strata: Sequence[tuple[str, Sequence[Allocation]]]) -> None:
        ordered = sorted(strata, key=lambda s: s[0])
        names = [name for name, _ in ordered]
        if len(set(names)) != len(names):
            raise ValueError("strata repeat")
        self.strata: tuple[tuple[str, tuple[Allocation, ...]], ...] = tuple((n, tuple(a)) for n, a in ordered)
        self._tree = AnchorTree(leaf_hash(a.leaf()) for _, allocs in self.strata for a in allocs)
        self._offsets: dict[str, int] = {}
        at = 0
        for name, allocs in self.strata:
            self._offsets[name] = at
            at += len(allocs)

    def commitment(self) -> AllocationCommitment:
        return AllocationCommitment(self._tree.root(),
                                    tuple((name, len(allocs)) for name, allocs in self.strata))

    def allocation(self, stratum: str, index: int) -> Allocation:
        for name, allocs in self.strata:
            if name == stratum:
                return allocs[index]
        raise KeyError(stratum)

    def reveal(self, stratum: str, index: int, *, sealed: bool = False) -> RevealedAllocation:
        """Slot ``index`` of ``stratum`` with its audit path; ``sealed`` keeps arm and salt back (masked)."""
        a = self.allocation(stratum, index)
        proof = tuple(self._tree.proof(self._offsets[stratum] + index))
        if sealed:
            return RevealedAllocation(stratum, index, proof, sealed=leaf_hash(a.leaf()))
        return RevealedAllocation(stratum, index, proof, arm=a.arm, salt=a.salt)


class _Drbg:
    """HMAC-SHA256 in counter mode, keyed by the seed; unbiased integers by rejection sampling."""

    def __init__(self, seed: bytes, label: bytes) -> None:
        self._key = seed
        self._label = _DRBG_TAG + label + b"\x00"
        self._counter = 0
        self._pool = b""

    def _bytes(self, n: int) -> bytes:
        while len(self._pool) < n:
            self._pool += hmac.new(self._key, self._label + self._counter.to_bytes(8, "big"), hashlib.sha256).digest()
            self._counter += 1
        out, self._pool = self._pool[:n], self._pool[n:]
        return out

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        if n <= 0:
            raise ValueError("n must be positive")
        limit = (1 << 64) - (1 << 64) % n
        while True:
            x = int.from_bytes(self._bytes(8), "big")
            if x < limit:
                return x % n


def _salt(seed: bytes, stratum: str, index: int) -> bytes:
    return hmac.new(seed, _DRBG_TAG + b"salt\x00" + stratum.encode() + b"\x00" + index.to_bytes(8, "big"),
                    hashlib.sha256).digest()


def generate_schedule(seed: bytes, strata: Sequence[str], arms: Sequence[str], ratio: Sequence[int],
                      block_sizes: Sequence[int], slots_per_stratum: int) -> AllocationSchedule:
    """Stratified permuted-block randomisation from a secret seed (sponsor side, off the ledger).

    ``ratio[i]`` is arm ``i``'s share (1:1 is ``[1, 1]``); every block size must be a positive
    multiple of ``sum(ratio)``. Each stratum gets ``slots_per_stratum`` allocations: whole blocks,
    the last one cut short. Raises ValueError for a seed shorter than 32 bytes, repeated or
    malformed strata or arms, a ratio or block size that does not fit, or too many slots.
    """
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError("the randomisation seed must be at least 32 secret bytes")
    if not strata or len(set(strata)) != len(strata) or not all(STRATUM_RE.match(s) for s in strata):
        raise ValueError("strata must be distinct names of 1-64 letters, digits or ._:|-")
    if len(arms) < 2 or len(set(arms)) != len(arms) or not all(ARM_RE.match(a) for a in arms):
        raise ValueError("at least two distinct arm labels are needed")
    if len(ratio) != len(arms) or any(r < 1 for r in ratio):
        raise ValueError("the ratio needs one positive share per arm")
    unit = sum(ratio)
    if not block_sizes or any(b < unit or b % unit for b in block_sizes):
        raise ValueError(f"every block size must be a positive multiple of {unit} (the ratio's sum)")
    if not 1 <= slots_per_stratum <= MAX_SLOTS:
        raise ValueError(f"slots per stratum must lie in 1..{MAX_SLOTS}")
    out: list[tuple[str, list[Allocation]]] = []
    for stratum in strata:
        drbg = _Drbg(seed, b"blocks\x00" + stratum.encode())
        arms_of_stratum: list[str] = []
        while len(arms_of_stratum) < slots_per_stratum:
            size = block_sizes[drbg.below(len(block_sizes))]
            block = [arm for arm, share in zip(arms, ratio, strict=True) for _ in range(share * (size // unit))]
            for i in range(len(block) - 1, 0, -1):  # Fisher-Yates
                j = drbg.below(i + 1)
                block[i], block[j] = block[j], block[i]
            arms_of_stratum.extend(block)
        out.append((stratum, [Allocation(stratum, k, arm, _salt(seed, stratum, k))
                              for k, arm in enumerate(arms_of_stratum[:slots_per_stratum])]))
    return AllocationSchedule(out)


__all__ = ["MIN_SEED_BYTES", "Allocation", "AllocationSchedule", "generate_schedule"]
