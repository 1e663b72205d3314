"""Concealed, verifiable randomisation on the ledger: the allocation commitment and its verification.

Each allocation of the sponsor's sequence is a leaf::

    leaf data = canonical JSON {"arm": a, "index": k, "salt": hex(32 bytes), "stratum": s}

and the commitment registered with the trial is the RFC 6962 Merkle root over all leaves, strata
in code-point order of their names, each stratum's slots in order, together with the list of
``(stratum, slots)``. A stratum's slot ``k`` is leaf ``offset(stratum) + k``. Because every leaf is
salted with 256 secret bits, the sibling hashes in one allocation's proof reveal nothing about any
other allocation, and a site cannot predict the next one; because the root is public before the
first enrolment, the sponsor cannot change an allocation afterwards.

An enrolment reveals one slot: for an open-label trial the arm and salt, for a masked trial only
the *sealed allocation* (the leaf hash), the arm and salt following at unblinding.
:func:`verify_allocation` checks either form against the commitment. The sponsor's generator of the
sequence is off the ledger (``careledger.trials.randomisation``).

Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from careledger.contracts.trials.anchors import root_from_leaf_hash
from careledger.core import codec
from careledger.core.merkle import ProofError, leaf_hash

SCHEME = "stratified-block/v1"
SALT_BYTES = 32
MAX_SLOTS = 1_000_000
"""Slots in one stratum at most (a sequence longer than the trial's target is never needed)."""
STRATUM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:|-]{0,63}$")
ARM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


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


__all__ = ["ARM_RE", "MAX_SLOTS", "SALT_BYTES", "SCHEME", "STRATUM_RE", "AllocationCommitment", "AllocationError",
           "RevealedAllocation", "allocation_leaf", "sealed_allocation", "verify_allocation"]
