"""Inclusion proofs for a transaction and its receipt, and their offline verifier.

A proof bundle (canonical JSON) carries everything needed to check, with nothing but the
consortium's genesis, that a transaction and its receipt are in a signed block::

    {"header": {...}, "block_signature": hex64,
     "tx": hex(wire bytes), "receipt": {...}, "index": int,
     "tx_path": [hex32, ...], "receipt_path": [hex32, ...], "version": 1}

:func:`verify_proof` checks, in order: the header's chain id; the block signature by one of the
genesis validators (domain ``block``); the transaction's audit path to ``txs_root``; the receipt's
audit path to ``receipts_root``; that the receipt names the transaction's hash and index. It raises
:class:`ProofInvalid` naming the first check that fails and returns the verified receipt otherwise.

Blocks of a CometBFT network (``engine="cometbft"``) carry no CareLedger signature: CometBFT's
commit (more than 2/3 of the voting power precommitting) certifies them, and that commit lives in
CometBFT's block store, not in the bundle. For them the proposer must be the CometBFT address
(first 20 bytes of SHA-256) of one of the validator keys and the signature must be empty; the
Merkle checks are the same. What is then *not* checked offline is that the header itself was
committed: compare its block hash (or app hash, which CometBFT's next header carries) with a node
you trust or a CometBFT light client. The default (``engine="solo"``) never accepts an unsigned header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from careledger.core.block import Header, Receipt
from careledger.core.crypto import SUITES
from careledger.core.errors import AuthError, Code, LedgerError
from careledger.core.merkle import ProofError, leaf_hash, verify_inclusion
from careledger.core.merkle import inclusion_proof as audit_path

PROOF_VERSION = 1


class ProofInvalid(LedgerError):
    default_code = Code.BAD_REQUEST


def build_proof(header: Header, signature: bytes, raw_txs: list[bytes], receipts: list[Receipt],
                index: int) -> dict[str, Any]:
    tx_leaves = [leaf_hash(raw) for raw in raw_txs]
    receipt_leaves = [leaf_hash(r.encode()) for r in receipts]
    return {
        "block_signature": signature.hex(), "header": header.to_json(), "index": index,
        "receipt": receipts[index].to_json(), "receipt_path": [p.hex() for p in audit_path(receipt_leaves, index)],
        "tx": raw_txs[index].hex(), "tx_path": [p.hex() for p in audit_path(tx_leaves, index)],
        "version": PROOF_VERSION,
    }


def cometbft_address(pub_hex: str) -> str:
    """CometBFT's address of an Ed25519 validator key, as stored in a CometBFT-made header (hex)."""
    return hashlib.sha256(bytes.fromhex(pub_hex)).digest()[:20].hex()


def verify_proof(bundle: dict[str, Any], chain_id: str, validator_keys: Iterable[str],
                 suite_name: str = "ed25519-sha256", engine: str = "solo") -> Receipt:
    """Check a proof bundle offline against the chain id and the validators' public keys (hex).

    ``engine="cometbft"`` accepts consensus-certified blocks as the module docstring describes."""
    suite = SUITES[suite_name]
    try:
        if bundle.get("version") != PROOF_VERSION:
            raise ProofInvalid("unsupported proof version")
        header = Header.from_json(bundle["header"])
        signature = bytes.fromhex(bundle["block_signature"])
        raw_tx = bytes.fromhex(bundle["tx"])
        receipt = Receipt.from_json(bundle["receipt"])
        index = bundle["index"]
        if type(index) is not int:
            raise ProofInvalid("proof index must be an integer")
        tx_path = [bytes.fromhex(p) for p in bundle["tx_path"]]
        receipt_path = [bytes.fromhex(p) for p in bundle["receipt_path"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProofInvalid(f"malformed proof bundle: {exc}") from exc
    if header.chain_id != chain_id:
        raise ProofInvalid(f"proof is for chain {header.chain_id!r}, expected {chain_id!r}", Code.WRONG_CHAIN)
    keys = set(validator_keys)
    if engine == "cometbft" and not signature:
        if header.proposer not in {cometbft_address(k) for k in keys}:
            raise ProofInvalid("block proposer is not the CometBFT address of a consortium validator",
                               Code.UNKNOWN_SIGNER)
    else:
        if header.proposer not in keys:
            raise ProofInvalid("block proposer is not a consortium validator", Code.UNKNOWN_SIGNER)
        try:
            suite.verify(bytes.fromhex(header.proposer), "block", chain_id, header.hash, signature)
        except (AuthError, ValueError) as exc:
            raise ProofInvalid("block signature does not verify", Code.BAD_SIGNATURE) from exc
    try:
        verify_inclusion(raw_tx, index, header.tx_count, tx_path, bytes.fromhex(header.txs_root))
    except ProofError as exc:
        raise ProofInvalid(f"transaction is not in the block: {exc}") from exc
    try:
        verify_inclusion(receipt.encode(), index, header.tx_count, receipt_path, bytes.fromhex(header.receipts_root))
    except ProofError as exc:
        raise ProofInvalid(f"receipt is not in the block: {exc}") from exc
    if receipt.tx != hashlib.sha256(raw_tx).hexdigest() or receipt.index != index:
        raise ProofInvalid("receipt does not belong to this transaction")
    return receipt
