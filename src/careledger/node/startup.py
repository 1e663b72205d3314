"""Opening a ledger store for a node: refuse a missing, foreign, damaged or rolled-back store before
anything runs, in time independent of the ledger's size.

Both engines open their store here (:func:`open_store`): a store of the previous schema is migrated,
then :func:`careledger.node.integrity.check_startup` checks the head, the last block, the state
commitment and the head record. The solo node also checks the last block's signature
(:func:`check_last_signature`), since it signed it itself. Full scans (every row, every signature,
a replay) are ``careledger verify``'s.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from careledger.chain.executor import Chain, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.errors import LedgerError, NotFound, StoreCorrupted
from careledger.core.genesis import Genesis, parse_genesis
from careledger.node.integrity import check_startup, migrate
from careledger.node.store import Store


def open_store(path: Any, genesis: Genesis | None = None, check: bool = True,
               create: bool = False, sync: str = "full", allow_behind: bool = False) -> tuple[Store, Chain]:
    """Open a ledger store (initialising it from ``genesis`` only when ``create``), migrating a store of
    the previous schema.

    Refuses, with StoreCorrupted, a store that is missing, empty, of another genesis or of an
    unsupported schema (STORE_SCHEMA_UNSUPPORTED); with ``check``, also one that fails the start-up
    check (STORE_CORRUPTED), is behind its head record (STORE_ROLLED_BACK) or does not hold the block
    its head record names (HEAD_RECORD_MISMATCH). A node never starts from a wrong state.
    ``allow_behind`` (the CometBFT engine, which replays what its block store holds) accepts a store
    behind its head record.
    """
    store = Store(path, create=create, sync=sync)
    try:
        if not store.is_initialised():
            if genesis is None or not create:
                raise StoreCorrupted("ledger store holds no chain (run `careledger init`)")
            changes = genesis_state(genesis)
            store.init_genesis(genesis.encode(), genesis.hash, changes, genesis_app_hash(genesis, changes))
        stored = store.get_meta("genesis")
        assert stored is not None
        try:
            stored_genesis = parse_genesis(codec.decode_trusted(stored))
        except (LedgerError, ValueError, KeyError, TypeError) as exc:  # the meta rows carry no checksum
            raise StoreCorrupted("the store's genesis record is unreadable") from exc
        if genesis is not None and stored_genesis.hash != genesis.hash:
            raise StoreCorrupted("the store belongs to a different genesis")
        migrate(store)
        if check:
            if store.get_meta("genesis_app_hash") != genesis_app_hash(stored_genesis, genesis_state(stored_genesis)):
                raise StoreCorrupted("the store's genesis app hash does not match its genesis")
            check_startup(store, repair_head=True, allow_behind=allow_behind)
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreCorrupted(f"ledger store is damaged: {exc}") from exc
    except Exception:
        store.close()
        raise
    return store, Chain(stored_genesis, default_registry())


def check_last_signature(store: Store, chain: Chain) -> None:
    """Refuse (StoreCorrupted) a store whose last block's proposer signature does not verify.

    The solo engine signs every block it stores; the start-up check covers the last block's hash,
    link and transactions but not its signature column. ``careledger verify`` checks every block's.
    """
    try:
        head = store.head()
        if head.height == 0:
            return
        header, block_hash, signature = store.block(head.height)
        try:
            chain.suite.verify(bytes.fromhex(header.proposer), "block", chain.chain_id, block_hash, signature)
        except (LedgerError, ValueError) as exc:
            raise StoreCorrupted(f"block {head.height} signature does not verify") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupted(f"database file is damaged: {exc}") from exc


def genesis_of(store: Store) -> Genesis:
    raw = store.get_meta("genesis")
    if raw is None:
        raise NotFound("store has no genesis")
    return parse_genesis(codec.decode_trusted(raw))
