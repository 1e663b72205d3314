"""Inclusion proofs of anchored visits, from committed state: the trial's full anchor tree, kept per trial.

The ledger keeps only each trial's frontier; a proof needs every leaf. :class:`AnchorIndex` rebuilds
a trial's :class:`~careledger.trials.anchor_tree.AnchorTree` from the visit records in committed
state (``O(n)`` the first time, and again only when the tree has grown since), and then answers
any visit's RFC 9162 audit path in ``O(log² n)``. A locked trial is proved against its lock, so its
tree never needs rebuilding. Trees are kept for the ``capacity`` trials asked about most recently
(about 64 bytes per leaf: 64 MB at a million anchors).

A node's state is read key by key, so a block may commit while the leaves are read. Leaves are
append-only and a visit's earlier versions never change, so the leaves below the size read *before*
the scan are all there; only those are used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from careledger.contracts.trials.anchors import frontier_root, verify_leaf_hash
from careledger.contracts.trials.layout import (
    Reader,
    get_status,
    get_tree,
    get_visit,
    iter_visits,
    visit_leaf_data,
)
from careledger.core import codec
from careledger.core.errors import Code, LedgerError, NotFound
from careledger.core.merkle import ProofError, leaf_hash
from careledger.trials.anchor_tree import AnchorTree


@dataclass(frozen=True, slots=True)
class AnchorProof:
    """A visit version's inclusion in the trial's anchor tree of ``tree_size`` leaves with ``root``."""

    trial: str
    subject: str
    visit: str
    version: int
    leaf_index: int
    tree_size: int
    root: bytes
    leaf: dict[str, Any]  # the leaf's canonical JSON object (its bytes are the leaf data)
    path: tuple[bytes, ...]
    against: str  # "lock" | "current" | "size"

    def to_json(self) -> dict[str, Any]:
        return {"against": self.against, "leaf": self.leaf, "leaf_hash": leaf_hash(codec.encode(self.leaf)).hex(),
                "leaf_index": self.leaf_index, "path": [p.hex() for p in self.path], "root": self.root.hex(),
                "subject": self.subject, "trial": self.trial, "tree_size": self.tree_size, "version": self.version,
                "visit": self.visit}


def check_anchor_proof(doc: dict[str, Any]) -> None:
    """Check a proof document (:meth:`AnchorProof.to_json`) offline: its leaf's bytes hash to
    ``leaf_hash`` and its path leads from there to ``root``. Raises
    :class:`careledger.core.merkle.ProofError` when it does not, ValueError or KeyError when it is not
    a proof document."""
    leaf = leaf_hash(codec.encode(doc["leaf"]))
    if leaf.hex() != doc["leaf_hash"]:
        raise ProofError("the leaf does not hash to the stated leaf hash")
    verify_leaf_hash(leaf, int(doc["leaf_index"]), int(doc["tree_size"]), [bytes.fromhex(p) for p in doc["path"]],
                     bytes.fromhex(doc["root"]))


class AnchorIndex:
    """Trials' anchor trees rebuilt from committed state, for proofs (thread-safe)."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._trees: OrderedDict[str, AnchorTree] = OrderedDict()
        self._lock = threading.Lock()
        self.rebuilds = 0  # how many times a tree was (re)built from state: for tests and operators

    def tree(self, state: Reader, trial: str, size: int) -> AnchorTree:
        """The trial's tree holding at least its first ``size`` leaves. Raises NotFound
        (TRIAL_UNKNOWN) for an unknown trial, LedgerError (STORE_CORRUPTED) when committed state lacks
        one of them."""
        with self._lock:
            cached = self._trees.get(trial)
            if cached is not None and cached.size >= size:
                self._trees.move_to_end(trial)
                return cached
        if get_status(state, trial) is None:
            raise NotFound(f"no registered trial {trial!r}", Code.TRIAL_UNKNOWN)
        leaves: dict[int, bytes] = {}
        for subject, visit, rec in iter_visits(state, trial):
            for v in rec.versions:
                if v.leaf < size:
                    leaves[v.leaf] = visit_leaf_data(trial, subject, visit, v)
        if len(leaves) != size:
            raise LedgerError(f"trial {trial}: committed state holds {len(leaves)} of the anchor tree's first "
                              f"{size} leaves", Code.STORE_CORRUPTED)
        tree = AnchorTree(leaf_hash(leaves[i]) for i in range(size))
        with self._lock:
            self.rebuilds += 1
            current = self._trees.get(trial)
            if current is None or current.size < tree.size:
                self._trees[trial] = tree
            self._trees.move_to_end(trial)
            while len(self._trees) > self.capacity:
                self._trees.popitem(last=False)
            return self._trees[trial]

    def prove(self, state: Reader, trial: str, subject: str, visit: str, version: int | None = None,
              size: int | None = None) -> AnchorProof:
        """The proof that ``visit`` of ``subject`` (its latest version, or ``version``) is in the trial's
        anchor tree: of ``size`` leaves when given, else at the lock for a locked trial, else as the
        tree stands now. Raises NotFound: TRIAL_UNKNOWN, NOT_FOUND (no such visit or version);
        LedgerError BAD_REQUEST (``size`` beyond the tree, or too small to hold that version)."""
        status = get_status(state, trial)
        if status is None:
            raise NotFound(f"no registered trial {trial!r}", Code.TRIAL_UNKNOWN)
        ledger_tree = get_tree(state, trial)
        current = ledger_tree.size
        if size is not None:
            if not 1 <= size <= current:
                raise LedgerError(f"the anchor tree has {current} leaves; no tree of {size}", Code.BAD_REQUEST)
            n, against = size, "size"
        elif status.lock is not None:
            n, against = status.lock.size, "lock"
        else:
            n, against = current, "current"
        rec = get_visit(state, trial, subject, visit)
        if rec is None:
            raise NotFound(f"no anchored visit {visit!r} of {subject} in trial {trial}", Code.NOT_FOUND)
        chosen = rec.head if version is None else next((v for v in rec.versions if v.version == version), None)
        if chosen is None:
            raise NotFound(f"visit {visit!r} has no version {version}", Code.NOT_FOUND)
        if chosen.leaf >= n:
            raise LedgerError(f"version {chosen.version} is leaf {chosen.leaf}, beyond a tree of {n} leaves",
                              Code.BAD_REQUEST)
        tree = self.tree(state, trial, n)
        root = tree.root(n)
        if n == current and root != frontier_root(ledger_tree.frontier):
            raise LedgerError(f"trial {trial}: the rebuilt anchor tree's root differs from the ledger's",
                              Code.STORE_CORRUPTED)
        if against == "lock" and status.lock is not None and root.hex() != status.lock.root:
            raise LedgerError(f"trial {trial}: the rebuilt anchor tree's root differs from the lock's",
                              Code.STORE_CORRUPTED)
        leaf = codec.decode_trusted(visit_leaf_data(trial, subject, visit, chosen))
        return AnchorProof(trial, subject, visit, chosen.version, chosen.leaf, n, root, leaf,
                           tuple(tree.proof(chosen.leaf, n)), against)


__all__ = ["AnchorIndex", "AnchorProof", "check_anchor_proof"]
