"""Opening a ledger store for a node: refuse a missing, foreign or damaged store before anything runs.

Both engines open their store here (:func:`open_store`); the solo node also re-checks every stored
block signature (:func:`check_block_signatures`), since it signed them itself.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from careledger.chain.executor import Chain, genesis_app_hash, genesis_state
from careledger.chain.registry import default_registry
from careledger.core import codec
from careledger.core.errors import LedgerError, NotFound, StoreCorrupted
from careledger.core.genesis import Genesis, parse_genesis
from careledger.node.store import Store


def open_store(path: Any, genesis: Genesis | None = None, check: bool = True,
               create: bool = False) -> tuple[Store, Chain]:
    """Open a ledger store (initialising it from ``genesis`` only when ``create``).

    Refuses, with StoreCorrupted, a store that is missing, empty, of another genesis, or that fails
    its integrity check; a node never starts from a wrong state.
    """
    store = Store(path, create=create)
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
        if check:
            store.check_integrity()
            if store.get_meta("genesis_app_hash") != genesis_app_hash(stored_genesis, genesis_state(stored_genesis)):
                raise StoreCorrupted("the store's genesis app hash does not match its genesis")
    except sqlite3.DatabaseError as exc:
        store.close()
        raise StoreCorrupted(f"ledger store is damaged: {exc}") from exc
    except Exception:
        store.close()
        raise
    return store, Chain(stored_genesis, default_registry())


def check_block_signatures(store: Store, chain: Chain) -> None:
    """Refuse (StoreCorrupted) a store in which a block's proposer signature does not verify.

    :meth:`Store.check_integrity` covers headers (hash links) but not the signature column. The
    solo engine signs every block it stores, so a solo node checks them all before it starts.
    """
    try:
        for height, block_hash, header, signature in store.iter_blocks():
            proposer = codec.decode_trusted(header)["proposer"]
            try:
                chain.suite.verify(bytes.fromhex(proposer), "block", chain.chain_id, block_hash, signature)
            except (LedgerError, ValueError) as exc:
                raise StoreCorrupted(f"block {height} signature does not verify") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupted(f"database file is damaged: {exc}") from exc


def genesis_of(store: Store) -> Genesis:
    raw = store.get_meta("genesis")
    if raw is None:
        raise NotFound("store has no genesis")
    return parse_genesis(codec.decode_trusted(raw))
