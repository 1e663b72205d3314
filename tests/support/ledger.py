"""An in-memory ledger that executes blocks exactly as an engine drives the executor (no I/O)."""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import InvalidTx
from careledger.core.state import MemoryState
from careledger.core.tx import sign_tx
from support.consortium import BLOCK_INTERVAL_MS, GENESIS_TIME_MS, Consortium


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
