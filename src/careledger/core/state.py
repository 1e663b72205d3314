"""State: a sorted key/value map of canonical JSON values, read through layers of staged writes.

Keys are UTF-8 strings named by contract (``identity/org/<id>``, ``nonce/<key>``, ...). Values are
stored as canonical bytes and decoded afresh on every read, so no contract can alter a lower layer
by mutating what it read. A transaction writes into its own :class:`Overlay`; on success the overlay
is merged into the block's overlay, on failure it is dropped. The block's writes form its
*changeset*, from which the app hash is derived (see :func:`compute_app_hash`).

App hash construction (all integers big-endian)::

    leaf(key, value)  = u32(len(key)) || key || 0x01 || value      (value: canonical JSON bytes)
    leaf(key, absent) = u32(len(key)) || key || 0x00               (a deletion)
    changes_root(h)   = RFC 6962 Merkle root of the leaves, sorted by key bytes
    app_hash(0)       = SHA-256("CareLedger/app/v1" || 0x00 || u64(0) || genesis_hash || changes_root(0))
    app_hash(h)       = SHA-256("CareLedger/app/v1" || 0x00 || u64(h) || app_hash(h-1) || changes_root(h))

The state at height h is the fold of the changesets 0..h, so app_hash(h) commits to the whole state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from sortedcontainers import SortedDict  # type: ignore[import-untyped]

from careledger.core import codec
from careledger.core.merkle import merkle_root

APP_HASH_TAG = b"CareLedger/app/v1\x00"


class StateReader(Protocol):
    """Read access to a state layer. ``scan`` yields ``(key, raw value)`` in key order."""

    def get_raw(self, key: str) -> bytes | None: ...

    def scan_raw(self, prefix: str) -> Iterator[tuple[str, bytes]]: ...


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix + "\U0010ffff"


class MemoryState:
    """A committed state held in memory, kept in key order (genesis building, tests, replay)."""

    def __init__(self, items: Mapping[str, bytes] | None = None) -> None:
        self.items: SortedDict = SortedDict(items or {})

    def get_raw(self, key: str) -> bytes | None:
        return self.items.get(key)  # type: ignore[no-any-return]

    def scan_raw(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        for key in list(self.items.irange(prefix, prefix_end(prefix), inclusive=(True, False))):
            yield key, self.items[key]

    def apply(self, changes: Mapping[str, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.items.pop(key, None)
            else:
                self.items[key] = value


class Overlay:
    """Staged writes over a base layer. ``None`` in ``writes`` marks a deletion."""

    __slots__ = ("base", "writes")

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.writes: dict[str, bytes | None] = {}

    # reads -----------------------------------------------------------------------------------
    def get_raw(self, key: str) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get_raw(key)

    def get(self, key: str) -> Any:
        raw = self.get_raw(key)
        return None if raw is None else codec.decode_trusted(raw)

    def has(self, key: str) -> bool:
        return self.get_raw(key) is not None

    def scan_raw(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        mine = sorted((k, v) for k, v in self.writes.items() if k.startswith(prefix))
        base = self.base.scan_raw(prefix)
        i = 0
        for key, value in base:
            while i < len(mine) and mine[i][0] < key:
                if mine[i][1] is not None:
                    yield mine[i][0], mine[i][1]  # type: ignore[misc]
                i += 1
            if i < len(mine) and mine[i][0] == key:
                if mine[i][1] is not None:
                    yield key, mine[i][1]  # type: ignore[misc]
                i += 1
            else:
                yield key, value
        for key, v in mine[i:]:
            if v is not None:
                yield key, v

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        for key, raw in self.scan_raw(prefix):
            yield key, codec.decode_trusted(raw)

    # writes ----------------------------------------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        self.writes[key] = codec.encode(value)

    def delete(self, key: str) -> None:
        self.writes[key] = None

    def merge_into(self, parent: Overlay) -> None:
        parent.writes.update(self.writes)


def changes_root(changes: Mapping[str, bytes | None]) -> bytes:
    leaves = []
    for key in sorted(changes, key=str.encode):
        k = key.encode()
        value = changes[key]
        head = len(k).to_bytes(4, "big") + k
        leaves.append(head + b"\x00" if value is None else head + b"\x01" + value)
    return merkle_root(leaves)


def compute_app_hash(height: int, previous: bytes, changes: Mapping[str, bytes | None]) -> bytes:
    """app_hash(h) from app_hash(h-1) (or the genesis hash at h = 0) and block h's changeset."""
    return hashlib.sha256(APP_HASH_TAG + height.to_bytes(8, "big") + previous + changes_root(changes)).digest()
