"""A node's home directory: its configuration, genesis, keys and data.

Layout::

    HOME/config.json      node configuration (versioned data, see NodeConfig)
    HOME/genesis.json     the consortium's genesis
    HOME/node_key.json    the node's validator key (signs blocks under the solo engine)
    HOME/keys/*.json      the local keyring (organisation admins, members, patients)
    HOME/data/ledger.sqlite  blocks, receipts and state
    HOME/data/ledger.head    the head record: the last block this node committed (careledger.node.headrecord)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from careledger.core.crypto import SigningKey
from careledger.core.errors import GenesisError
from careledger.core.genesis import Genesis, decode_genesis
from careledger.keys import new_key, read_key
from careledger.node.solo import EngineConfig, Node
from careledger.node.startup import check_last_signature, open_store
from careledger.node.store import SYNC_MODES

CONFIG_VERSION = 1
AUDIT_WAIT_MODES = ("committed", "admitted")


class HomeError(Exception):
    pass


@dataclass(frozen=True)
class NodeConfig:
    api: str = "127.0.0.1:8700"
    engine: str = "solo"
    block_interval_ms: int = 25
    max_block_txs: int = 2_000
    mempool_capacity: int = 50_000
    org: str | None = None
    version: int = CONFIG_VERSION
    # vault gateway: release content once the read's audit entry is "committed" (default) or "admitted"
    audit_wait: str = "committed"
    # SQLite's synchronous mode for commits: "full" survives power loss (default), "normal" a crash only
    sync: str = "full"
    # a node halted by a full disk resumes once this much is free in its data directory
    disk_reserve_mb: int = 16

    def __post_init__(self) -> None:
        if self.audit_wait not in AUDIT_WAIT_MODES:
            raise HomeError(f"config.json: audit_wait must be one of {list(AUDIT_WAIT_MODES)}, "
                            f"not {self.audit_wait!r}")
        if self.sync not in SYNC_MODES:
            raise HomeError(f"config.json: sync must be one of {list(SYNC_MODES)}, not {self.sync!r}")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> NodeConfig:
        if doc.get("version") != CONFIG_VERSION:
            raise HomeError(f"config.json has version {doc.get('version')!r}; this release reads {CONFIG_VERSION}")
        known = set(cls.__dataclass_fields__)
        unknown = set(doc) - known
        if unknown:
            raise HomeError(f"config.json has unknown settings: {sorted(unknown)}")
        return cls(**doc)

    @property
    def engine_config(self) -> EngineConfig:
        return EngineConfig(self.block_interval_ms, self.max_block_txs, self.mempool_capacity,
                            disk_reserve_bytes=self.disk_reserve_mb * 2**20)

    @property
    def api_host_port(self) -> tuple[str, int]:
        host, _, port = self.api.rpartition(":")
        return host or "127.0.0.1", int(port)


class Home:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def genesis_path(self) -> Path:
        return self.path / "genesis.json"

    @property
    def node_key_path(self) -> Path:
        return self.path / "node_key.json"

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @property
    def db_path(self) -> Path:
        return self.path / "data" / "ledger.sqlite"

    def exists(self) -> bool:
        return self.config_path.exists()

    def config(self) -> NodeConfig:
        try:
            return NodeConfig.from_json(json.loads(self.config_path.read_text()))
        except FileNotFoundError as exc:
            raise HomeError(f"{self.path} is not a CareLedger home (run `careledger init --home {self.path}`)") \
                from exc

    def write_config(self, config: NodeConfig) -> None:
        self.config_path.write_text(json.dumps(asdict(config), indent=2) + "\n")

    def genesis(self) -> Genesis:
        return load_genesis(self.genesis_path)

    def node_key(self) -> SigningKey:
        return read_key(self.node_key_path)

    def key(self, name: str) -> SigningKey:
        return read_key(self.keys_dir / f"{name}.json")

    def key_names(self) -> list[str]:
        return sorted(p.stem for p in self.keys_dir.glob("*.json"))

    def open_node(self, check: bool = True) -> Node:
        config = self.config()
        store, chain = open_store(self.db_path, self.genesis(), check=check, sync=config.sync)
        try:
            if check:
                check_last_signature(store, chain)
            return Node(store, chain, self.node_key(), config.engine_config)
        except Exception:
            store.close()
            raise


def dev_genesis(chain_id: str, admin: SigningKey, validator: SigningKey, time_ms: int,
                org_id: str = "org.dev", roles: tuple[str, ...] = ("hospital",)) -> dict[str, Any]:
    return {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": time_ms,
        "organisations": [{"admins": [admin.public_hex], "api": None, "id": org_id, "name": "Development organisation",
                           "roles": list(roles)}],
        "validators": [{"org": org_id, "power": 10, "pub_key": validator.public_hex}],
    }


def init_home(path: Path, genesis_file: Path | None, node_key_file: Path | None, time_ms: int,
              chain_id: str = "careledger-dev", api: str = "127.0.0.1:8700") -> Home:
    """Create a home. Without a genesis file, a one-organisation development consortium is generated."""
    home = Home(path)
    if home.exists():
        raise HomeError(f"{path} already holds a CareLedger home")
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    home.keys_dir.mkdir(exist_ok=True)
    if node_key_file is not None:
        node_key = read_key(node_key_file)
        from careledger.keys import write_key
        write_key(home.node_key_path, node_key, "node")
    else:
        node_key = new_key(home.node_key_path, "node")
    if genesis_file is not None:
        genesis = load_genesis(genesis_file)
        home.genesis_path.write_text(json.dumps(genesis.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        admin = new_key(home.keys_dir / "admin.json", "admin")
        doc = dev_genesis(chain_id, admin, node_key, time_ms)
        home.genesis_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        genesis = home.genesis()
    validators = {v.pub_key for v in genesis.validators}
    org = next((v.org for v in genesis.validators if v.pub_key == node_key.public_hex), None)
    if node_key.public_hex not in validators:
        org = None
    home.write_config(NodeConfig(api=api, org=org))
    store, _ = open_store(home.db_path, genesis, create=True)
    store.close()
    return home


def load_genesis(path: Path) -> Genesis:
    """The genesis document in the file at ``path``; GenesisError when it cannot be read or is invalid."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GenesisError(f"cannot read genesis file {path}: {exc.strerror}") from exc
    return decode_genesis(data)
