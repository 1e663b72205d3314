"""The state machine: genesis, admission checks and block execution. Pure: no clock, no I/O.

Two kinds of bad transaction are kept apart, as in ethereum/execution-specs:

* *invalid* (:class:`InvalidTx`): malformed, badly signed, wrong chain, unknown type, wrong nonce,
  unknown or revoked signer. Such a transaction is refused at admission and never enters a block;
  a block containing one is itself invalid.
* *failed* (:class:`TxFailed`): valid, but refused by its contract (missing role, wrong state).
  It is included with a receipt carrying a non-zero code; its nonce is consumed and every other
  write rolls back.

Both engines (solo and CometBFT) drive :class:`BlockExecution` and nothing else, so the same blocks
give the same receipts and app hashes under either.

**Rules versions.** The rules version in force for a block is ledger state, agreed by governance
with the height it takes effect at (:mod:`careledger.contracts.governance.rules`). The executor reads
it for the block's height and hands it to contracts as ``ctx.params["rules_version"]``; a transaction
kind this release introduced for a later version (:attr:`Chain.since_rules`) is invalid
(RULES_NOT_ACTIVE) before that version is in force; and a block at a height whose version this
release does not implement (above :attr:`Chain.rules_version`) is not executed at all
(UPGRADE_REQUIRED), so an un-upgraded node stops where the consortium switches instead of diverging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from careledger.contracts import governance, identity
from careledger.contracts.base import Handler, Registry, Signer, TxContext
from careledger.contracts.governance.layout import RULES_KEY
from careledger.contracts.governance.rules import rules_version_at
from careledger.core.block import BlockEnv, Header, Receipt, receipts_root, txs_root
from careledger.core.crypto import SUITES, CryptoSuite
from careledger.core.errors import AuthError, Code, InvalidTx, LedgerError, NonceError
from careledger.core.genesis import Genesis
from careledger.core.state import MemoryState, Overlay, StateReader, compute_app_hash
from careledger.core.tx import Tx, decode_tx, verify_tx_signature

log = logging.getLogger("careledger.executor")

RULES_VERSION = 1
"""The highest rules version this release implements (see the module docstring)."""
SINCE_RULES: Mapping[tuple[str, int], int] = {}
"""Transaction kinds ``(type, version)`` this release executes only from a later rules version on."""


def nonce_key(pub: str) -> str:
    return f"nonce/{pub}"


@dataclass(frozen=True)
class Chain:
    """The static facts execution depends on: genesis, contracts and crypto suite, and the rules versions
    this software implements (``rules_version``, the highest; ``since_rules``, the transaction kinds that
    need a later version than the genesis one)."""

    genesis: Genesis
    registry: Registry
    rules_version: int = RULES_VERSION
    since_rules: Mapping[tuple[str, int], int] = field(default_factory=lambda: dict(SINCE_RULES), compare=False)

    def block_params(self, state: StateReader | Overlay, height: int) -> dict[str, Any]:
        """The parameters contracts see in the block at ``height``: genesis' plus the rules version in force.

        Raises LedgerError (UPGRADE_REQUIRED) when that version is above what this release implements.
        """
        version = rules_version_at(state, height)
        if version > self.rules_version:
            raise LedgerError(f"the consortium put rules version {version} in force at or before height {height}; "
                              f"this release implements up to version {self.rules_version}: upgrade the node",
                              Code.UPGRADE_REQUIRED)
        return {**self.params, "rules_version": version}

    def check_rules(self, checked: CheckedTx, params: dict[str, Any]) -> None:
        """Raises InvalidTx (RULES_NOT_ACTIVE) when ``checked``'s kind needs a rules version not yet in force."""
        tx = checked.tx
        needed = self.since_rules.get((tx.type, tx.version))
        if needed is not None and params["rules_version"] < needed:
            raise InvalidTx(f"{tx.type} v{tx.version} takes effect with rules version {needed}; version "
                            f"{params['rules_version']} is in force", Code.RULES_NOT_ACTIVE)

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    @property
    def suite(self) -> CryptoSuite:
        return SUITES[self.genesis.crypto_suite]

    @cached_property
    def params(self) -> dict[str, Any]:
        return self.genesis.params.model_dump()

    @property
    def max_tx_bytes(self) -> int:
        return self.genesis.params.max_tx_bytes


@dataclass(frozen=True, slots=True)
class CheckedTx:
    """A transaction that passed every stateless check, with its typed payload."""

    tx: Tx
    handler: Handler[Any]
    payload: Any


def genesis_state(genesis: Genesis) -> dict[str, bytes | None]:
    """The writes that genesis makes: chain facts, parameters, organisations, admins, validators."""
    overlay = Overlay(MemoryState())
    overlay.put("chain", {"chain_id": genesis.chain_id, "crypto_suite": genesis.crypto_suite,
                          "genesis_hash": genesis.hash.hex()})
    overlay.put("params", genesis.params.model_dump())
    for org in genesis.organisations:
        identity.write_organisation(overlay, org, 0)
    for v in genesis.validators:
        governance.put_validator(overlay, v.pub_key, governance.ValidatorRecord(v.org, v.power))
    return overlay.writes


def genesis_app_hash(genesis: Genesis, changes: dict[str, bytes | None]) -> bytes:
    return compute_app_hash(0, genesis.hash, changes)


def check_stateless(chain: Chain, raw: bytes, verify_signature: bool = True) -> CheckedTx:
    """Every check that needs no state, in the order of docs/protocol.md section 4.1: the envelope
    (:func:`decode_tx`), the (type, version) handler, the payload, and last the signature.

    Raises InvalidTx: the envelope's codes, UNKNOWN_TX_TYPE, INVALID_PAYLOAD (or a contract's own
    stateless code, e.g. a GS1 check digit), then BAD_SIGNATURE. Every engine runs this one order,
    so a transaction with several faults gets the same code from every node and every path.
    """
    tx = decode_tx(raw, chain.chain_id, chain.suite, chain.max_tx_bytes, verify_signature=False)
    handler = chain.registry.get(tx.type, tx.version)
    payload = handler.parse(tx.payload)
    if verify_signature:
        verify_tx_signature(tx, chain.suite)
    return CheckedTx(tx, handler, payload)


def read_hints(checked: CheckedTx, admission: bool = False) -> list[str]:
    """State keys executing ``checked`` will read: a prefetch hint that never changes results.

    With ``admission`` only the keys admission reads (nonce and signer); contracts' own hints
    serve block execution.
    """
    keys = [nonce_key(checked.tx.signer_hex), identity.key_key(checked.tx.signer_hex), RULES_KEY]
    if not admission and checked.handler.read_hints is not None:
        keys.extend(checked.handler.read_hints(checked.payload))
    return keys


def committed_nonce(state: StateReader | Overlay, pub: str) -> int:
    raw = state.get_raw(nonce_key(pub))
    return 0 if raw is None else int(raw)


def check_signer(state: StateReader | Overlay, checked: CheckedTx) -> Signer:
    """The signer must be registered and active, unless the handler is open to new keys."""
    signer = identity.resolve_signer(state, checked.tx.signer_hex)
    if signer.kind == "unregistered":
        if not checked.handler.open_to_unregistered:
            raise AuthError("signer is not a member of the consortium nor a registered patient",
                            Code.UNKNOWN_SIGNER)
    elif not signer.active:
        raise AuthError("signer's membership has been revoked", Code.SIGNER_REVOKED)
    return signer


def check_nonce(expected: int, nonce: int) -> None:
    if nonce < expected:
        raise NonceError(f"nonce {nonce} was already used (next is {expected})", Code.NONCE_REPLAYED)
    if nonce > expected:
        raise NonceError(f"nonce {nonce} is ahead of the next expected nonce {expected}", Code.NONCE_OUT_OF_ORDER)


def check_admission(chain: Chain, state: StateReader, env: BlockEnv, checked: CheckedTx, expected_nonce: int) -> None:
    """The mempool's check against committed state: rules version, nonce, signer, and the contract's
    authorisation, as in the block ``env`` describes.

    Raises InvalidTx (rules not active, nonce, signer), TxFailed (authorisation) or LedgerError
    (UPGRADE_REQUIRED). Writes nothing.
    """
    params = chain.block_params(state, env.height)
    chain.check_rules(checked, params)
    check_nonce(expected_nonce, checked.tx.nonce)
    signer = check_signer(state, checked)
    ctx = TxContext(env=env, tx_hash=checked.tx.hash_hex, index=0, signer=signer, params=params)
    checked.handler.authorize(Overlay(state), ctx, checked.payload)


@dataclass
class BlockResult:
    header_fields: dict[str, Any]
    txs: list[bytes]
    receipts: list[Receipt]
    changes: dict[str, bytes | None]
    app_hash: bytes
    validator_updates: list[dict[str, Any]] = field(default_factory=list)

    def header(self, prev_hash: str, proposer: str) -> Header:
        f = self.header_fields
        return Header(chain_id=f["chain_id"], height=f["height"], time_ms=f["time_ms"], prev_hash=prev_hash,
                      txs_root=f["txs_root"], receipts_root=f["receipts_root"], app_hash=self.app_hash.hex(),
                      proposer=proposer, tx_count=len(self.txs))


class BlockExecution:
    """Executes one block's transactions in order on a staged copy of the state.

    Raises LedgerError (UPGRADE_REQUIRED) when the block's height has a rules version this release does
    not implement.
    """

    def __init__(self, chain: Chain, base: StateReader, env: BlockEnv, prev_app_hash: bytes) -> None:
        self.chain = chain
        self.env = env
        self.prev_app_hash = prev_app_hash
        self.state = Overlay(base)
        self.txs: list[bytes] = []
        self.receipts: list[Receipt] = []
        self._params = chain.block_params(base, env.height)  # fixed for the block, whatever it schedules

    @property
    def rules_version(self) -> int:
        return int(self._params["rules_version"])

    def add(self, checked: CheckedTx) -> Receipt:
        """Execute ``checked`` as the next transaction of the block.

        Raises InvalidTx (rules not active, nonce, unknown or revoked signer) and leaves the block
        unchanged: the transaction must not be included. Otherwise returns its receipt, success or failure.
        """
        tx = checked.tx
        self.chain.check_rules(checked, self._params)
        check_nonce(committed_nonce(self.state, tx.signer_hex) + 1, tx.nonce)
        signer = check_signer(self.state, checked)
        index = len(self.txs)
        ctx = TxContext(env=self.env, tx_hash=tx.hash_hex, index=index, signer=signer, params=self._params)
        self.state.writes[nonce_key(tx.signer_hex)] = str(tx.nonce).encode()
        staged = Overlay(self.state)
        code, message, result = 0, "", None
        try:
            checked.handler.authorize(staged, ctx, checked.payload)
            result = checked.handler.apply(staged, ctx, checked.payload)
        except LedgerError as exc:
            code, message = int(exc.code), exc.message
        except Exception as exc:  # a contract bug must still give every node the same receipt
            log.exception("contract %s raised unexpectedly", tx.type)
            code, message = int(Code.INTERNAL_ERROR), f"internal error in {tx.type}: {type(exc).__name__}"
        if code == 0:
            staged.merge_into(self.state)
            receipt = Receipt(tx=tx.hash_hex, index=index, code=0, result=result, events=tuple(ctx.events))
        else:
            receipt = Receipt(tx=tx.hash_hex, index=index, code=code, message=message)
        self.txs.append(tx.raw)
        self.receipts.append(receipt)
        return receipt

    def finish(self) -> BlockResult:
        changes = self.state.writes
        app_hash = compute_app_hash(self.env.height, self.prev_app_hash, changes)
        updates = [dict(e["attrs"]) for r in self.receipts for e in r.events if e["type"] == "validator_update"]
        fields = {"chain_id": self.env.chain_id, "height": self.env.height, "time_ms": self.env.time_ms,
                  "txs_root": txs_root(self.txs).hex(), "receipts_root": receipts_root(self.receipts).hex()}
        return BlockResult(fields, self.txs, self.receipts, dict(changes), app_hash, updates)


def execute_block(chain: Chain, base: StateReader, env: BlockEnv, prev_app_hash: bytes, raw_txs: Iterable[bytes],
                  checker: Callable[[bytes], CheckedTx] | None = None) -> BlockResult:
    """Execute a decided block strictly: any invalid transaction makes the whole block invalid."""
    run = BlockExecution(chain, base, env, prev_app_hash)
    check = checker or (lambda raw: check_stateless(chain, raw))
    for i, raw in enumerate(raw_txs):
        try:
            run.add(check(raw))
        except InvalidTx as exc:
            raise InvalidTx(f"block {env.height} tx {i} is invalid: {exc.message}", exc.code) from exc
    return run.finish()
