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
from careledger.keys import Passphrase, new_key, read_key, read_key_document, read_public_key, write_key_document
from careledger.node.solo import EngineConfig, Node
from careledger.node.startup import check_last_signature, open_store
from careledger.node.store import SYNC_MODES

CONFIG_VERSION = 1
AUDIT_WAIT_MODES = ("committed", "admitted")
CLIENT_TLS_MODES = ("off", "organisations")


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
    # serving the API (docs/architecture.md, "Operating a node"): HTTPS with a certificate and key (PEM
    # files, relative to the home or absolute); client certificates verified against tls_client_ca;
    # client_tls "organisations": gateway reads by organisation members need a registered certificate
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    client_tls: str = "off"
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    open_read_rate: float = 20.0  # requests a second per client on the open read routes; 0: no limit
    open_read_burst: int = 40

    def __post_init__(self) -> None:
        if self.audit_wait not in AUDIT_WAIT_MODES:
            raise HomeError(f"config.json: audit_wait must be one of {list(AUDIT_WAIT_MODES)}, "
                            f"not {self.audit_wait!r}")
        if self.sync not in SYNC_MODES:
            raise HomeError(f"config.json: sync must be one of {list(SYNC_MODES)}, not {self.sync!r}")
        if self.client_tls not in CLIENT_TLS_MODES:
            raise HomeError(f"config.json: client_tls must be one of {list(CLIENT_TLS_MODES)}, not {self.client_tls!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise HomeError("config.json: tls_cert and tls_key go together")
        if self.client_tls != "off" and self.tls_client_ca is None:
            raise HomeError("config.json: client_tls 'organisations' needs tls_client_ca")
        numbers = (self.header_timeout_s, self.keep_alive_s, self.max_connections, self.open_read_burst)
        if any(isinstance(n, bool) or not isinstance(n, int | float) or n <= 0 for n in numbers) \
                or isinstance(self.open_read_rate, bool) or not isinstance(self.open_read_rate, int | float) \
                or self.open_read_rate < 0:
            raise HomeError("config.json: header_timeout_s, keep_alive_s, max_connections and open_read_burst must "
                            "be positive numbers, open_read_rate zero or more")

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

    def resolve(self, name: str | None) -> Path | None:
        """A file named in config.json: relative to the home, or absolute."""
        return None if name is None else (self.path / Path(name).expanduser())

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

    def node_key(self, passphrase: Passphrase = None) -> SigningKey:
        """The node's validator key (``passphrase`` opens a version-2 file; see :func:`careledger.keys.read_key`)."""
        return read_key(self.node_key_path, passphrase)

    def node_public_key(self) -> str:
        """The node key's public half, without opening an encrypted file."""
        return read_public_key(self.node_key_path)

    def key(self, name: str, passphrase: Passphrase = None) -> SigningKey:
        return read_key(self.keys_dir / f"{name}.json", passphrase)

    def public_key(self, name: str) -> str:
        """The public half of ``HOME/keys/NAME.json``, without opening an encrypted file."""
        return read_public_key(self.keys_dir / f"{name}.json")

    def key_names(self) -> list[str]:
        return sorted(p.stem for p in self.keys_dir.glob("*.json"))

    def open_node(self, check: bool = True, passphrase: Passphrase = None) -> Node:
        """Open the store and the embedded node (not started); ``passphrase`` opens an encrypted node key."""
        config = self.config()
        node_key = self.node_key(passphrase)
        store, chain = open_store(self.db_path, self.genesis(), check=check, sync=config.sync)
        try:
            if check:
                check_last_signature(store, chain)
            return Node(store, chain, node_key, config.engine_config)
        except Exception:
            store.close()
            raise


def dev_genesis(chain_id: str, admin: SigningKey, validator: str, time_ms: int,
                org_id: str = "org.dev", roles: tuple[str, ...] = ("hospital",)) -> dict[str, Any]:
    return {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": time_ms,
        "organisations": [{"admins": [admin.public_hex], "api": None, "id": org_id, "name": "Development organisation",
                           "roles": list(roles)}],
        "validators": [{"org": org_id, "power": 10, "pub_key": validator}],
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
    if node_key_file is not None:  # copied as it is: an encrypted key stays encrypted
        node_public = read_public_key(node_key_file)
        write_key_document(home.node_key_path, read_key_document(node_key_file))
    else:
        node_public = new_key(home.node_key_path, "node").public_hex
    if genesis_file is not None:
        genesis = load_genesis(genesis_file)
        home.genesis_path.write_text(json.dumps(genesis.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        admin = new_key(home.keys_dir / "admin.json", "admin")
        doc = dev_genesis(chain_id, admin, node_public, time_ms)
        home.genesis_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        genesis = home.genesis()
    validators = {v.pub_key for v in genesis.validators}
    org = next((v.org for v in genesis.validators if v.pub_key == node_public), None)
    if node_public not in validators:
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
