"""The vector builder: fixed keys, a genesis, and blocks executed in memory and recorded as a vector.

Everything is fixed: keys come from 32-byte seeds ``SHA-256("careledger-vectors/" + label)``, block
times are ``genesis_time_ms + 1000 * height``, and Ed25519 signatures are deterministic, so a vector
is byte-for-byte the same on every run, machine and hash seed. The format is described in
:mod:`vectors.generate`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from careledger.chain.executor import (
    BlockExecution,
    Chain,
    check_stateless,
    committed_nonce,
    genesis_app_hash,
    genesis_state,
)
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.block import BlockEnv
from careledger.core.crypto import SigningKey
from careledger.core.errors import InvalidTx
from careledger.core.genesis import parse_genesis
from careledger.core.state import MemoryState
from careledger.core.tx import body_of, sign_tx

FORMAT = "careledger-vector/1"
CHAIN_ID = "careledger-vectors"
GENESIS_TIME_MS = 1_750_000_000_000
BLOCK_INTERVAL_MS = 1000
# (organisation id, its role, its GS1 Company Prefixes)
Org = tuple[str, str, tuple[str, ...]]
ORGS: tuple[Org, ...] = (("hospital-a", "hospital", ()), ("pharmacy-b", "pharmacy", ()), ("insurer-c", "insurer", ()),
                         ("regulator-d", "regulator", ()))


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"careledger-vectors/" + label.encode()).digest())


def admin(org: str) -> SigningKey:
    return key(f"admin/{org}")


VALIDATOR = key("validator/0")


def genesis_doc(params: dict[str, Any] | None = None, orgs: tuple[Org, ...] = ORGS) -> dict[str, Any]:
    """The normalised genesis of a vector: one admin per organisation, the first one's validator."""
    organisations = []
    for org, role, prefixes in orgs:
        decl: dict[str, Any] = {"admins": [admin(org).public_hex], "id": org, "name": org.split("-")[0].title(),
                                "roles": [role]}
        if prefixes:
            decl["gs1_company_prefixes"] = list(prefixes)
        organisations.append(decl)
    doc: dict[str, Any] = {
        "chain_id": CHAIN_ID, "genesis_time_ms": GENESIS_TIME_MS, "organisations": organisations,
        "validators": [{"org": orgs[0][0], "power": 10, "pub_key": VALIDATOR.public_hex}],
    }
    if params:
        doc["params"] = params
    return parse_genesis(doc).to_json()


def signed_with(signer: SigningKey, signature: bytes, tx_type: str, payload: dict[str, Any], nonce: int,
                chain_id: str = CHAIN_ID, version: int = 1, signer_hex: str | None = None) -> bytes:
    """A transaction whose ``sig`` is ``signature``, whatever it signs (for the refused-signature vectors)."""
    body = body_of(chain_id, tx_type, version, signer_hex or signer.public_hex, nonce, payload)
    return codec.encode({"body": body, "sig": signature.hex()})


def body_bytes(signer_hex: str, tx_type: str, payload: dict[str, Any], nonce: int, chain_id: str = CHAIN_ID,
               version: int = 1) -> bytes:
    """The canonical body a signature over the transaction covers."""
    return codec.encode(body_of(chain_id, tx_type, version, signer_hex, nonce, payload))


class Builder:
    """Executes blocks in memory and records them as a vector's ``pre`` and ``block``."""

    def __init__(self, params: dict[str, Any] | None = None, orgs: tuple[Org, ...] = ORGS) -> None:
        self.genesis_json = genesis_doc(params, orgs)
        self.genesis = parse_genesis(self.genesis_json)
        self.chain = Chain(self.genesis, default_registry())
        changes = genesis_state(self.genesis)
        self.state = MemoryState()
        self.state.apply(changes)
        self.genesis_app_hash = genesis_app_hash(self.genesis, changes)
        self.app_hash = self.genesis_app_hash
        self.height = 0
        self.pre_blocks: list[dict[str, Any]] = []
        self._issued: dict[str, int] = {}
        self.last: dict[str, Any] = {}

    def next_nonce(self, signer: SigningKey) -> int:
        """The signer's next nonce, counting the transactions built for the coming block."""
        nonce = max(committed_nonce(self.state, signer.public_hex), self._issued.get(signer.public_hex, 0)) + 1
        self._issued[signer.public_hex] = nonce
        return nonce

    def tx(self, signer: SigningKey, tx_type: str, payload: dict[str, Any], nonce: int | None = None,
           version: int = 1) -> bytes:
        if nonce is None:
            nonce = self.next_nonce(signer)
        return sign_tx(signer, CHAIN_ID, tx_type, version, nonce, payload)

    def _env(self) -> BlockEnv:
        h = self.height + 1
        return BlockEnv(CHAIN_ID, h, GENESIS_TIME_MS + BLOCK_INTERVAL_MS * h, VALIDATOR.public_hex)

    def _execute(self, raws: list[bytes]) -> dict[str, Any]:
        env = self._env()
        run = BlockExecution(self.chain, self.state, env, self.app_hash)
        results = []
        for raw in raws:
            try:
                receipt = run.add(check_stateless(self.chain, raw))
                results.append({"code": receipt.code, "included": True, "tx": receipt.tx})
            except InvalidTx as exc:
                results.append({"code": int(exc.code), "included": False, "tx": hashlib.sha256(raw).hexdigest()})
        result = run.finish()
        self.state.apply(result.changes)
        self.app_hash = result.app_hash
        self.height = env.height
        self._issued.clear()
        return {"block": {"height": env.height, "proposer": env.proposer, "time_ms": env.time_ms,
                          "txs": [raw.decode() for raw in raws]},
                "changes": {k: None if v is None else codec.decode(v) for k, v in sorted(result.changes.items())},
                "results": results, "receipts": [r.to_json() for r in result.receipts],
                "txs_root": result.header_fields["txs_root"], "receipts_root": result.header_fields["receipts_root"],
                "app_hash": result.app_hash.hex()}

    def pre(self, *raws: bytes) -> list[dict[str, Any]]:
        """A block of the history; every transaction in it must be valid (included). Never empty: an
        engine makes no ledger block without a transaction, so the heights would no longer line up."""
        assert raws, "a pre block needs at least one transaction"
        out = self._execute(list(raws))
        assert all(r["included"] for r in out["results"]), out["results"]
        self.pre_blocks.append({**out["block"], "app_hash": out["app_hash"]})
        self.last = out
        return out["receipts"]  # type: ignore[no-any-return]

    def vector(self, name: str, description: str, raws: list[bytes], state_keys: list[str],
               expect: list[tuple[bool, int]]) -> dict[str, Any]:
        pre = {"blocks": self.pre_blocks, "genesis": self.genesis_json, "genesis_app_hash": self.genesis_app_hash.hex(),
               "genesis_hash": self.genesis.hash.hex()}
        out = self._execute(raws)
        got = [(r["included"], r["code"]) for r in out["results"]]
        assert got == expect, f"{name}: expected {expect}, got {got}"
        state = {}
        for k in sorted(state_keys):
            raw = self.state.get_raw(k)
            state[k] = None if raw is None else codec.decode(raw)
        post = {"app_hash": out["app_hash"], "changes": out["changes"], "receipts": out["receipts"],
                "receipts_root": out["receipts_root"], "results": out["results"], "state": state,
                "txs_root": out["txs_root"]}
        return {"block": out["block"], "description": description, "format": FORMAT, "name": name, "post": post,
                "pre": pre}


# -- helpers every contract's vectors use ------------------------------------------------------------

def nonce(k: SigningKey) -> str:
    return f"nonce/{k.public_hex}"


def ikey(k: SigningKey) -> str:
    return f"identity/key/{k.public_hex}"


def pseudonym(k: SigningKey) -> str:
    return "pt-" + hashlib.sha256(k.public_key).digest()[:16].hex()


def enrol(b: Builder, org: str, member: SigningKey, roles: list[str]) -> bytes:
    return b.tx(admin(org), "identity.enrol_member", {"member": member.public_hex, "org": org, "roles": roles})
