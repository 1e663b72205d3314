"""Block environment, receipts and headers, with their canonical hashes.

Header (canonical JSON, hashed with SHA-256 to give the block hash)::

    {"app_hash": hex, "chain_id": str, "height": int, "prev_hash": hex, "proposer": hex,
     "receipts_root": hex, "time_ms": int, "tx_count": int, "txs_root": hex, "version": 1}

* ``prev_hash`` of block 1 is the genesis hash;
* ``txs_root`` is the RFC 6962 root over the transactions' wire bytes in block order;
* ``receipts_root`` is the RFC 6962 root over the receipts' canonical bytes in block order;
* ``app_hash`` is the state commitment *after* executing this block;
* the proposer signs the 32-byte block hash in signing domain ``block``.

Receipt (canonical JSON; the human message is stored beside it and never hashed)::

    {"code": int, "events": [{"type": str, "attrs": {...}}], "index": int, "result": any, "tx": hex}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from careledger.core import codec
from careledger.core.merkle import merkle_root

HEADER_VERSION = 1


@dataclass(frozen=True, slots=True)
class BlockEnv:
    """What the engine tells the executor about the block being executed."""

    chain_id: str
    height: int
    time_ms: int
    proposer: str  # hex public key of the proposing validator


@dataclass(frozen=True)
class Receipt:
    tx: str
    index: int
    code: int
    result: Any = None
    events: tuple[dict[str, Any], ...] = ()
    message: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "events": list(self.events), "index": self.index,
                "result": self.result, "tx": self.tx}

    def encode(self) -> bytes:
        """Canonical bytes (computed once; a receipt never changes)."""
        cached: bytes | None = self.__dict__.get("_encoded")
        if cached is None:
            cached = codec.encode(self.to_json())
            object.__setattr__(self, "_encoded", cached)
        return cached

    @classmethod
    def from_json(cls, doc: dict[str, Any], message: str = "") -> Receipt:
        return cls(tx=doc["tx"], index=doc["index"], code=doc["code"], result=doc["result"],
                   events=tuple(doc["events"]), message=message)


@dataclass(frozen=True, slots=True)
class Header:
    chain_id: str
    height: int
    time_ms: int
    prev_hash: str
    txs_root: str
    receipts_root: str
    app_hash: str
    proposer: str
    tx_count: int
    version: int = HEADER_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"app_hash": self.app_hash, "chain_id": self.chain_id, "height": self.height,
                "prev_hash": self.prev_hash, "proposer": self.proposer, "receipts_root": self.receipts_root,
                "time_ms": self.time_ms, "tx_count": self.tx_count, "txs_root": self.txs_root,
                "version": self.version}

    def encode(self) -> bytes:
        return codec.encode(self.to_json())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Header:
        return cls(chain_id=doc["chain_id"], height=doc["height"], time_ms=doc["time_ms"],
                   prev_hash=doc["prev_hash"], txs_root=doc["txs_root"], receipts_root=doc["receipts_root"],
                   app_hash=doc["app_hash"], proposer=doc["proposer"], tx_count=doc["tx_count"],
                   version=doc["version"])


def txs_root(raw_txs: list[bytes]) -> bytes:
    return merkle_root(raw_txs)


def receipts_root(receipts: list[Receipt]) -> bytes:
    return merkle_root([r.encode() for r in receipts])
