"""Concealed, verifiable stratified block randomisation: the sponsor's sequence and its commitment.

**Generation (sponsor side, off the ledger).** :func:`generate_schedule` draws, for each stratum,
permuted blocks whose sizes are chosen at random from ``block_sizes`` (each a multiple of the sum of
the allocation ratio) and fills them with the arms in that ratio, shuffled (Fisher-Yates). Every
draw comes from HMAC-SHA256 keyed by the sponsor's secret ``seed`` (counter mode, rejection sampling,
so unbiased), and so does every allocation's 32-byte salt: the seed alone regenerates the whole
schedule. Keep it like a private key; the ledger never sees it.

**Commitment (published at registration).** Each allocation is a leaf::

    leaf data = canonical JSON {"arm": a, "index": k, "salt": hex(32 bytes), "stratum": s}

and the commitment is the RFC 6962 Merkle root over all leaves, strata in code-point order of
their names, each stratum's slots in order, together with the list of ``(stratum, slots)``. A
stratum's slot ``k`` is leaf ``offset(stratum) + k``. Because every leaf is salted with 256 secret
bits, the sibling hashes in one allocation's proof reveal nothing about any other allocation, and a
site cannot predict the next one; because the root is public before the first enrolment, the
sponsor cannot change an allocation afterwards.

**Reveal (at each enrolment).** :meth:`AllocationSchedule.reveal` gives one slot's allocation with
its audit path. For an open-label trial it carries the arm and salt; for a masked trial only the
*sealed allocation* (the leaf hash) travels, and arm and salt are revealed at unblinding.
:func:`verify_allocation` checks either form against the commitment.

Pure and deterministic given the seed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

from careledger.core import codec
from careledger.core.merkle import ProofError, leaf_hash
from careledger.trials.anchor_tree import AnchorTree, frontier_root, root_from_leaf_hash

SCHEME = "stratified-block/v1"
SALT_BYTES = 32
MIN_SEED_BYTES = 32
MAX_SLOTS = 1_000_000
"""Slots in one stratum at most (a sequence longer than the trial's target is never needed)."""
STRATUM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:|-]{0,63}$")
ARM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_DRBG_TAG = b"careledger/randomisation/v1\x00"


class AllocationError(ValueError):
    """A revealed allocation does not match the commitment; ``reason`` names which check failed."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "stratum" | "index" | "proof" | "arm"


def allocation_leaf(stratum: str, index: int, arm: str, salt: bytes) -> bytes:
    """The leaf data of one allocation: canonical JSON of arm, index, salt (hex) and stratum."""
    if len(salt) != SALT_BYTES:
        raise ValueError("an allocation salt is 32 bytes")
    return codec.encode({"arm": arm, "index": index, "salt": salt.hex(), "stratum": stratum})


def sealed_allocation(stratum: str, index: int, arm: str, salt: bytes) -> bytes:
    """The allocation's leaf hash: what a masked trial's enrolment carries instead of the arm."""
    return leaf_hash(allocation_leaf(stratum, index, arm, salt))


@dataclass(frozen=True, slots=True)
class AllocationCommitment:
    """What the ledger holds: the root and each stratum's number of slots, strata sorted by name."""

    root: bytes
    strata: tuple[tuple[str, int], ...]

    @property
    def size(self) -> int:
        return sum(n for _, n in self.strata)

    def slots(self, stratum: str) -> int | None:
        for name, n in self.strata:
            if name == stratum:
                return n
        return None

    def offset(self, stratum: str) -> int:
        """Index of the stratum's slot 0 among all leaves; raises KeyError for an unknown stratum."""
        at = 0
        for name, n in self.strata:
            if name == stratum:
                return at
            at += n
        raise KeyError(stratum)

    def to_json(self) -> dict[str, object]:
        return {"root": self.root.hex(), "scheme": SCHEME, "strata": [[s, n] for s, n in self.strata]}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> AllocationCommitment:
        strata = doc["strata"]
        assert isinstance(strata, list)
        return cls(bytes.fromhex(str(doc["root"])), tuple((str(s), int(n)) for s, n in strata))


@dataclass(frozen=True, slots=True)
class RevealedAllocation:
    """One slot's allocation as an enrolment carries it: open (arm and salt) or sealed (leaf hash)."""

    stratum: str
    index: int
    proof: tuple[bytes, ...]
    arm: str | None = None
    salt: bytes | None = None
    sealed: bytes | None = None

    def leaf_hash(self) -> bytes:
        """The leaf hash this reveal claims: computed from arm and salt when open, else the sealed hash."""
        if self.arm is not None and self.salt is not None:
            return sealed_allocation(self.stratum, self.index, self.arm, self.salt)
        if self.sealed is None:
            raise AllocationError("an allocation carries either arm and salt or the sealed hash", "arm")
        return self.sealed

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"index": self.index, "proof": [p.hex() for p in self.proof],
                                  "stratum": self.stratum}
        if self.arm is not None and self.salt is not None:
            doc["arm"], doc["salt"] = self.arm, self.salt.hex()
        else:
            doc["sealed"] = self.leaf_hash().hex()
        return doc


def verify_allocation(commitment: AllocationCommitment, revealed: RevealedAllocation) -> bytes:
    """Check a revealed allocation against the commitment; returns its leaf hash.

    Raises :class:`AllocationError` with reason ``stratum`` (not in the commitment), ``index``
    (outside the stratum's slots) or ``proof`` (the path does not lead to the root: a wrong arm,
    salt, index or sealed hash, or a forged path).
    """
    slots = commitment.slots(revealed.stratum)
    if slots is None:
        raise AllocationError(f"stratum {revealed.stratum!r} is not in the commitment", "stratum")
    if not 0 <= revealed.index < slots:
        raise AllocationError(f"stratum {revealed.stratum!r} has {slots} slots; no slot {revealed.index}", "index")
    leaf = revealed.leaf_hash()
    try:
        root = root_from_leaf_hash(leaf, commitment.offset(revealed.stratum) + revealed.index, commitment.size,
                                   revealed.proof)
    except ProofError as exc:
        raise AllocationError(f"allocation proof is malformed: {exc}", "proof") from None
    if root != commitment.root:
        raise AllocationError("the allocation does not match the committed sequence", "proof")
    return leaf


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
        return AllocationCommitment(frontier_root(self._tree.frontier()),
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


__all__ = ["SCHEME", "Allocation", "AllocationCommitment", "AllocationError", "AllocationSchedule",
           "RevealedAllocation", "allocation_leaf", "generate_schedule", "sealed_allocation", "verify_allocation"]
