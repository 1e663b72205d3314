"""Shared fixtures: a deterministic eight-organisation consortium, an in-memory ledger and a real node.

* :class:`Consortium`: a genesis with one organisation per role (hospital, clinic, pharmacy,
  manufacturer, distributor, insurer, research, regulator), each with one admin key, and one
  validator key. Keys derive from fixed labels (``seeded_key``), so every run signs the same bytes
  and a failure can be reproduced exactly.
* :class:`Ledger`: executes blocks in memory through ``core.executor.BlockExecution`` over
  ``core.state.MemoryState``: the same code both engines drive. It signs transactions with
  automatic nonces, keeps apart *invalid* transactions (refused by ``add``, never included) from
  *failed* ones (included with a non-zero receipt), and reads committed state.
* ``node`` / ``node_home``: a real home directory with a real SQLite ledger, created by
  ``careledger.node.home.init_home`` and run by the solo engine; closed on teardown.

Tests may import the helper classes directly (``from conftest import Ledger, seeded_key``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from careledger.abci.cometbft import find_abci_cli, find_cometbft
from careledger.chain.executor import (
    BlockExecution,
    BlockResult,
    Chain,
    CheckedTx,
    check_admission,
    check_stateless,
    committed_nonce,
    genesis_app_hash,
    genesis_state,
)
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import InvalidTx
from careledger.core.genesis import Genesis, parse_genesis
from careledger.core.state import MemoryState
from careledger.core.tx import sign_tx

CHAIN_ID = "careledger-test"
GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_INTERVAL_MS = 1_000
ORG_ROLES = ("hospital", "clinic", "pharmacy", "manufacturer", "distributor", "insurer", "research", "regulator")


def seeded_key(label: str) -> SigningKey:
    """A reproducible Ed25519 key: its seed is SHA-256 of ``careledger-test/<label>``."""
    return SigningKey(hashlib.sha256(b"careledger-test/" + label.encode()).digest())


@dataclass
class Consortium:
    """A genesis document plus the private keys of every organisation admin and of the validator."""

    doc: dict[str, Any]
    admins: dict[str, SigningKey]
    validator: SigningKey

    @property
    def genesis(self) -> Genesis:
        return parse_genesis(self.doc)

    @property
    def chain_id(self) -> str:
        return str(self.doc["chain_id"])

    @property
    def org_ids(self) -> list[str]:
        return [o["id"] for o in self.doc["organisations"]]

    @property
    def genesis_time_ms(self) -> int:
        return int(self.doc["genesis_time_ms"])

    def admin(self, org: str) -> SigningKey:
        return self.admins[org]

    def chain(self) -> Chain:
        return Chain(self.genesis, default_registry())

    def write_genesis(self, path: Path) -> Path:
        path.write_text(json.dumps(self.doc, indent=2, sort_keys=True) + "\n")
        return path


def make_consortium(org_ids: tuple[str, ...] = ORG_ROLES, roles: tuple[str, ...] | None = None,
                    chain_id: str = CHAIN_ID, label: str = "", params: dict[str, Any] | None = None) -> Consortium:
    """One organisation per id with the role of the same position in ``roles`` (default: id == role)."""
    roles = roles or org_ids
    admins = {org: seeded_key(f"{label}admin/{org}") for org in org_ids}
    validator = seeded_key(f"{label}validator/0")
    doc: dict[str, Any] = {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": GENESIS_TIME_MS,
        "organisations": [{"admins": [admins[org].public_hex], "api": None, "id": org,
                           "name": f"{org.title()} organisation", "roles": [role]}
                          for org, role in zip(org_ids, roles, strict=True)],
        "validators": [{"org": org_ids[0], "power": 10, "pub_key": validator.public_hex}],
    }
    if params:
        doc["params"] = params
    return Consortium(doc, admins, validator)


@dataclass
class BlockOutcome:
    """What happened to one block: the included transactions' receipts and the refused ones."""

    result: BlockResult
    receipts: list[Receipt]
    invalid: list[tuple[bytes, InvalidTx]] = field(default_factory=list)

    @property
    def codes(self) -> list[int]:
        return [r.code for r in self.receipts]


class Ledger:
    """A chain executed block by block in memory, exactly as an engine would drive the executor."""

    def __init__(self, consortium: Consortium, chain: Chain | None = None) -> None:
        self.consortium = consortium
        self.chain = chain or consortium.chain()
        genesis = self.chain.genesis
        changes = genesis_state(genesis)
        self.state = MemoryState()
        self.state.apply(changes)
        self.app_hash = genesis_app_hash(genesis, changes)
        self.block_hash = genesis.hash
        self.height = 0
        self.history: list[BlockOutcome] = []
        self._issued: dict[str, int] = {}

    # -- transactions ---------------------------------------------------------------------------------
    def committed_nonce(self, key: SigningKey | str) -> int:
        pub = key if isinstance(key, str) else key.public_hex
        return committed_nonce(self.state, pub)

    def tx(self, key: SigningKey, tx_type: str, payload: dict[str, Any], *, nonce: int | None = None,
           version: int = 1, chain_id: str | None = None) -> bytes:
        """Sign a transaction; without ``nonce``, the signer's next one (counting unexecuted ones)."""
        if nonce is None:
            nonce = max(self.committed_nonce(key), self._issued.get(key.public_hex, 0)) + 1
            self._issued[key.public_hex] = nonce
        return sign_tx(key, chain_id or self.chain.chain_id, tx_type, version, nonce, payload)

    def check(self, raw: bytes) -> CheckedTx:
        return check_stateless(self.chain, raw)

    def env(self, height: int | None = None) -> BlockEnv:
        height = self.height + 1 if height is None else height
        return BlockEnv(self.chain.chain_id, height, GENESIS_TIME_MS + height * BLOCK_INTERVAL_MS,
                        self.consortium.validator.public_hex)

    def admit(self, raw: bytes) -> CheckedTx:
        """The mempool's checks against committed state (raises InvalidTx or TxFailed)."""
        checked = self.check(raw)
        check_admission(self.chain, self.state, self.env(), checked, self.committed_nonce(checked.tx.signer_hex) + 1)
        return checked

    # -- blocks ---------------------------------------------------------------------------------------
    def block(self, *raws: bytes) -> BlockOutcome:
        """Execute and commit one block. Invalid transactions are left out, as a block builder would."""
        run = BlockExecution(self.chain, self.state, self.env(), self.app_hash)
        invalid: list[tuple[bytes, InvalidTx]] = []
        for raw in raws:
            try:
                run.add(self.check(raw))
            except InvalidTx as exc:
                invalid.append((raw, exc))
        result = run.finish()
        self.state.apply(result.changes)
        self.app_hash = result.app_hash
        self.block_hash = result.header(self.block_hash.hex(), self.consortium.validator.public_hex).hash
        self.height += 1
        self._issued.clear()
        outcome = BlockOutcome(result, list(result.receipts), invalid)
        self.history.append(outcome)
        return outcome

    def run(self, key: SigningKey, tx_type: str, payload: dict[str, Any], **kw: Any) -> Receipt:
        """One transaction in a block of its own; it must be included (valid), success or failure."""
        outcome = self.block(self.tx(key, tx_type, payload, **kw))
        assert not outcome.invalid, f"transaction was invalid: {outcome.invalid[0][1]}"
        return outcome.receipts[0]

    def refused(self, raw: bytes) -> InvalidTx:
        """Execute ``raw`` in a block of its own and return why it was left out (it must be)."""
        outcome = self.block(raw)
        assert not outcome.receipts, f"transaction was included with code {outcome.receipts[0].code}"
        return outcome.invalid[0][1]

    # -- state ----------------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        raw = self.state.get_raw(key)
        return None if raw is None else codec.decode(raw)

    def snapshot(self) -> dict[str, bytes]:
        return dict(self.state.items)

    # -- common transactions --------------------------------------------------------------------------
    def enrol(self, org: str, member: SigningKey, roles: list[str], admin: SigningKey | None = None) -> Receipt:
        admin = admin or self.consortium.admin(org)
        return self.run(admin, "identity.enrol_member", {"member": member.public_hex, "org": org, "roles": roles})

    def register_patient(self, patient: SigningKey) -> Receipt:
        return self.run(patient, "identity.register_patient", {})

    def propose(self, org: str, action: dict[str, Any], title: str = "a proposal") -> Receipt:
        return self.run(self.consortium.admin(org), "governance.propose", {"action": action, "title": title})

    def vote(self, org: str, proposal: str, approve: bool = True) -> Receipt:
        return self.run(self.consortium.admin(org), "governance.vote", {"approve": approve, "proposal": proposal})


# -- fixtures -------------------------------------------------------------------------------------------

@pytest.fixture
def consortium() -> Consortium:
    """Eight organisations, one per role, one admin each; the hospital runs the only validator."""
    return make_consortium()


@pytest.fixture
def chain(consortium: Consortium) -> Chain:
    return consortium.chain()


@pytest.fixture
def ledger(consortium: Consortium, chain: Chain) -> Ledger:
    return Ledger(consortium, chain)


@pytest.fixture
def genesis_file(tmp_path: Path, consortium: Consortium) -> Path:
    return consortium.write_genesis(tmp_path / "genesis.json")


@pytest.fixture
def node_home(tmp_path: Path, consortium: Consortium, genesis_file: Path) -> Any:
    """A real home (config, genesis, validator key, SQLite ledger); admin keys in ``keys/<org>-admin.json``."""
    from careledger.keys import write_key
    from careledger.node.home import init_home

    key_file = tmp_path / "validator-key.json"
    write_key(key_file, consortium.validator, "validator")
    home = init_home(tmp_path / "home", genesis_file, key_file, GENESIS_TIME_MS, chain_id=consortium.chain_id)
    for org, key in consortium.admins.items():
        write_key(home.keys_dir / f"{org}-admin.json", key, f"{org}-admin")
    return home


@pytest.fixture
def node(node_home: Any) -> Iterator[Any]:
    """A started solo-engine node over ``node_home``; stopped and closed on teardown."""
    n = node_home.open_node()
    n.start()
    try:
        yield n
    finally:
        n.close()


def require_tool(path: Path | None, name: str) -> Path:
    """A real part a test needs (found by ``find_cometbft`` / ``find_abci_cli``). Without it the test
    is skipped, except under ``CI=true``, where a missing real part fails the run."""
    if path is None:
        message = f"{name} not found: run scripts/install-cometbft.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_cometbft() -> Path:
    return require_tool(find_cometbft(), "cometbft")


def require_abci_cli() -> Path:
    return require_tool(find_abci_cli(), "abci-cli")
