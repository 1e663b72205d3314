"""Fixtures shared by every layer's tests. Helpers live in :mod:`support` (tests/support/).

* ``consortium`` / ``chain`` / ``ledger``: a deterministic eight-organisation consortium and an
  in-memory ledger over it (``support.ledger.Ledger``);
* ``node_home`` / ``node``: a real home directory with a real SQLite ledger, created by
  ``careledger.node.home.init_home`` and run by the solo engine; closed on teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.chain.executor import Chain
from support import GENESIS_TIME_MS, Consortium, Ledger, make_consortium

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
