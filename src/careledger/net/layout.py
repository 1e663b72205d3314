"""``careledger net init``: a local consortium of N organisations, one CometBFT validator node each.

Layout of ``DIR``::

    DIR/network.json                  chain id and every node's name, organisation, ports and node id
    DIR/genesis.json                  the CareLedger genesis (also CometBFT's app_state)
    DIR/nodeK/node.json               this node's addresses (read by `python -m careledger.abci node`)
    DIR/nodeK/cometbft/               CometBFT home: config.toml, genesis.json, validator and p2p keys
    DIR/nodeK/careledger/             CareLedger home: config.json (engine "cometbft"), genesis.json,
                                      node_key.json (= the CometBFT validator key), keys/admin.json
                                      (the organisation's admin), data/ledger.sqlite (initialised at
                                      genesis); vault/<org>/ once `careledger records vault-init`
                                      has created the organisation's vault
                                      and data/statesync.json (how often it takes state-sync
                                      snapshots, see :mod:`careledger.abci.snapshots`)
    DIR/nodeK/logs/, DIR/nodeK/run/   process logs and pid files (`careledger net start`); run/ (0700)
                                      also holds the ABCI socket, abci.sock (0600)

Ports of node K, all on 127.0.0.1: ``base + 10K`` p2p, ``+1`` RPC, ``+3`` HTTP API, ``+4``
CometBFT's Prometheus metrics (``/metrics``); ``+2`` is the ABCI port when TCP is asked for
(``abci_transport="tcp"``), otherwise CometBFT reaches the app on the node's Unix socket, which
only the owner can open. CometBFT's transaction indexer is on (``kv``), so ``tx_search`` works.
Organisation K has role ``ORG_ROLES[K mod 8]`` (hospital, clinic, pharmacy, manufacturer, ...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from careledger.abci.cometbft import (
    CometbftSetupError,
    cometbft_init,
    find_cometbft,
    read_validator_pub_key,
    set_toml_values,
    write_genesis,
)
from careledger.abci.snapshots import SnapshotPolicy
from careledger.core.crypto import SigningKey
from careledger.core.genesis import ORG_ROLES, Genesis, parse_genesis
from careledger.keys import new_key, write_key
from careledger.net.netns import Namespaces
from careledger.node.home import NodeConfig
from careledger.node.startup import open_store

NETWORK_VERSION = 1
PROXY_APPS = frozenset({"", "kvstore", "kvstore-socket"})  # "": CareLedger
ABCI_TRANSPORTS = ("unix", "tcp")
PORT_STRIDE = 10
PORTS_PER_NODE = 5  # p2p, RPC, ABCI (TCP only), HTTP API, metrics
MAX_UNIX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
DEFAULT_SNAPSHOT_INTERVAL = 100  # CometBFT heights between state-sync snapshots


def make_node_spec(root: Path, index: int, org: str, role: str, base_port: int, abci_transport: str = "unix",
                   name: str | None = None, host: str = "127.0.0.1") -> NodeSpec:
    """The addresses of node ``index`` (its CometBFT home must exist: ids and keys are read from it).

    Raises CometbftSetupError for an unknown transport, or a socket path too long for a Unix socket."""
    if abci_transport not in ABCI_TRANSPORTS:
        raise CometbftSetupError(f"ABCI transport {abci_transport!r} is not one of {ABCI_TRANSPORTS}")
    name = name or f"node{index}"
    cmt_home = root / name / "cometbft"
    port = base_port + PORT_STRIDE * index
    if abci_transport == "unix":
        socket_path = str((root / name / "run" / "abci.sock").absolute())
        if len(socket_path.encode()) > MAX_UNIX_SOCKET_PATH:
            raise CometbftSetupError(f"the ABCI socket path {socket_path} is longer than a Unix socket allows "
                                     f"({MAX_UNIX_SOCKET_PATH} bytes): choose a shorter directory, or --abci tcp")
        abci = f"unix://{socket_path}"
    else:
        abci = f"tcp://127.0.0.1:{port + 2}"
    return NodeSpec(name=name, index=index, org=org, role=role, node_id=p2p_node_id(cmt_home),
                    validator=read_validator_pub_key(cmt_home).hex(), p2p=f"tcp://{host}:{port}",
                    rpc=f"tcp://{host}:{port + 1}", abci=abci, api=f"{host}:{port + 3}",
                    metrics=f"{host}:{port + 4}")


@dataclass(frozen=True)
class Tuning:
    """CometBFT settings chosen for throughput on one machine (see docs/consortium.md)."""

    timeout_commit: str = "300ms"
    create_empty_blocks: bool = False  # the app keeps its app hash over an empty block, so this is safe
    mempool_size: int = 50_000
    cache_size: int = 100_000
    flush_throttle: str = "10ms"
    peer_gossip_sleep: str = "30ms"
    log_level: str = "*:error,consensus:info,state:info,main:info"
    indexer: str = "kv"  # CometBFT's own index, so its `tx_search` and `block_search` work
    prometheus: bool = True  # CometBFT's metrics, each node on its own port (base + 10K + 4)

    def values(self) -> dict[tuple[str, str], str | bool | int]:
        return {("consensus", "timeout_commit"): self.timeout_commit,
                ("consensus", "create_empty_blocks"): self.create_empty_blocks,
                ("consensus", "peer_gossip_sleep_duration"): self.peer_gossip_sleep,
                ("mempool", "size"): self.mempool_size, ("mempool", "cache_size"): self.cache_size,
                ("p2p", "flush_throttle_timeout"): self.flush_throttle,
                ("p2p", "send_rate"): 52_428_800, ("p2p", "recv_rate"): 52_428_800,
                ("", "log_level"): self.log_level, ("tx_index", "indexer"): self.indexer,
                ("rpc", "max_open_connections"): 2000, ("rpc", "max_request_batch_size"): 500,
                ("instrumentation", "prometheus"): self.prometheus}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int
    org: str
    role: str
    node_id: str  # CometBFT's p2p id
    validator: str  # hex Ed25519 public key
    p2p: str
    rpc: str
    abci: str
    api: str
    cometbft_home: str = "cometbft"
    careledger_home: str = "careledger"
    metrics: str = ""  # HOST:PORT of CometBFT's Prometheus metrics ("" in a network.json of an older release)

    @property
    def rpc_url(self) -> str:
        return self.rpc.replace("tcp://", "http://")

    @property
    def api_url(self) -> str:
        return f"http://{self.api}"

    @property
    def p2p_port(self) -> int:
        return int(self.p2p.rsplit(":", 1)[1])

    @property
    def abci_socket(self) -> Path | None:
        """The ABCI Unix socket's path (None when the node's ABCI is on TCP)."""
        return Path(self.abci[len("unix://"):]) if self.abci.startswith("unix://") else None

    @property
    def abci_port(self) -> int:
        """The ABCI TCP port (only when the node's ABCI is on TCP)."""
        return int(self.abci.rsplit(":", 1)[1])

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics}/metrics" if self.metrics else ""


@dataclass(frozen=True)
class NetworkSpec:
    root: Path
    chain_id: str
    nodes: list[NodeSpec]
    proxy_app: str = ""  # "": CareLedger; benchmark baselines: "kvstore" (CometBFT's built-in app),
    # "kvstore-socket" (CometBFT's kvstore example app out of process, over the ABCI socket like CareLedger)
    netns: str = ""  # "PREFIX/10.A.B": each node in its own network namespace (careledger.net.netns)

    @property
    def namespaces(self) -> Namespaces | None:
        if not self.netns:
            return None
        prefix, subnet = self.netns.split("/")
        return Namespaces(prefix, subnet)

    def node_dir(self, node: NodeSpec | int) -> Path:
        spec = self.nodes[node] if isinstance(node, int) else node
        return self.root / spec.name

    def cometbft_home(self, node: NodeSpec | int) -> Path:
        spec = self.nodes[node] if isinstance(node, int) else node
        return self.node_dir(spec) / spec.cometbft_home

    def careledger_home(self, node: NodeSpec | int) -> Path:
        spec = self.nodes[node] if isinstance(node, int) else node
        return self.node_dir(spec) / spec.careledger_home

    def db_path(self, node: NodeSpec | int) -> Path:
        return self.careledger_home(node) / "data" / "ledger.sqlite"

    def genesis(self) -> Genesis:
        return parse_genesis(json.loads((self.root / "genesis.json").read_text()))

    def admin_key(self, node: NodeSpec | int) -> SigningKey:
        from careledger.keys import read_key

        return read_key(self.careledger_home(node) / "keys" / "admin.json")

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "netns": self.netns, "nodes": [asdict(n) for n in self.nodes],
                "proxy_app": self.proxy_app, "version": NETWORK_VERSION}

    @classmethod
    def load(cls, root: Path) -> NetworkSpec:
        path = root / "network.json"
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise CometbftSetupError(f"{root} holds no network (run `careledger net init --home {root}`)") from None
        if doc.get("version") != NETWORK_VERSION:
            raise CometbftSetupError(f"{path} has version {doc.get('version')!r}; this release reads "
                                     f"{NETWORK_VERSION}")
        return cls(root, doc["chain_id"], [NodeSpec(**n) for n in doc["nodes"]], doc.get("proxy_app", ""),
                   doc.get("netns", ""))


def p2p_node_id(cometbft_home: Path) -> str:
    """CometBFT's node id: hex of the first 20 bytes of SHA-256 of the p2p Ed25519 public key."""
    doc = json.loads((cometbft_home / "config" / "node_key.json").read_text())
    raw = base64.b64decode(doc["priv_key"]["value"])
    return hashlib.sha256(raw[32:]).digest()[:20].hex()


def validator_signing_key(cometbft_home: Path) -> SigningKey:
    """The validator's Ed25519 key from ``priv_validator_key.json`` (its seed is the first 32 bytes)."""
    doc = json.loads((cometbft_home / "config" / "priv_validator_key.json").read_text())
    key = SigningKey(base64.b64decode(doc["priv_key"]["value"])[:32])
    if key.public_key != read_validator_pub_key(cometbft_home):
        raise CometbftSetupError(f"{cometbft_home}: validator key file is inconsistent")
    return key


def org_of(index: int) -> tuple[str, str]:
    role = ORG_ROLES[index % len(ORG_ROLES)]
    return f"{role}-{index}", role


def init_network(root: Path, validators: int, chain_id: str = "careledger-net", base_port: int = 26600,
                 tuning: Tuning | None = None, binary: Path | None = None, proxy_app: str = "",
                 time_ms: int | None = None,
                 organisations: list[tuple[dict[str, Any], SigningKey]] | None = None, abci_transport: str = "unix",
                 snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, snapshot_keep: int = 2,
                 namespaces: Namespaces | None = None) -> NetworkSpec:
    """Create the network's directories, keys, one genesis and every node's configuration.

    CometBFT reaches each node's app on the node's owner-only Unix socket (``abci_transport="tcp"``:
    on a loopback port instead); every node takes a state-sync snapshot every ``snapshot_interval``
    CometBFT heights (0: none) and keeps the newest ``snapshot_keep`` (a joining node fetches the chunks
    of the one it picked for a while: keep enough for that at the network's pace). With ``namespaces``
    each node runs in a network namespace of its own at its own address (the fault matrix's partition).

    ``organisations`` (declarations without ``admins``, with their admin key) replaces the generated
    ones: the first ``validators`` of them run a node each, the others are members without a node.
    ``proxy_app="kvstore"`` makes a network of CometBFT's built-in kvstore app instead (no CareLedger
    ledger; the benchmark's baseline), ``"kvstore-socket"`` one of CometBFT's kvstore example app run
    as a separate process over the ABCI socket. Raises CometbftSetupError.
    """
    if proxy_app not in PROXY_APPS:
        raise CometbftSetupError(f"unknown app {proxy_app!r} (one of {sorted(PROXY_APPS)})")
    if organisations is not None and len(organisations) < validators:
        raise CometbftSetupError("every validator node needs an organisation")
    if not 1 <= validators <= 64:
        raise CometbftSetupError("a local network has 1 to 64 validators")
    if root.exists() and any(root.iterdir()):
        raise CometbftSetupError(f"{root} is not empty")
    binary = binary or find_cometbft()
    if binary is None:
        raise CometbftSetupError("cometbft not found: run scripts/install-cometbft.sh")
    tuning = tuning or Tuning()
    time_ms = int(time.time() * 1000) if time_ms is None else time_ms
    if abci_transport not in ABCI_TRANSPORTS:
        raise CometbftSetupError(f"ABCI transport {abci_transport!r} is not one of {ABCI_TRANSPORTS}")
    root = root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    nodes: list[NodeSpec] = []
    admins: list[SigningKey] = []
    for i in range(validators):
        name = f"node{i}"
        cmt_home = root / name / "cometbft"
        cometbft_init(binary, cmt_home)
        org, role = org_of(i)
        if organisations is not None:
            org, role = organisations[i][0]["id"], organisations[i][0]["roles"][0]
        nodes.append(make_node_spec(root, i, org, role, base_port, "tcp" if proxy_app == "kvstore" else abci_transport,
                                    host=namespaces.address(i) if namespaces else "127.0.0.1"))
        admin_path = root / name / "careledger" / "keys" / "admin.json"
        if organisations is not None:
            write_key(admin_path, organisations[i][1], "admin")
            admins.append(organisations[i][1])
        else:
            admins.append(new_key(admin_path, "admin"))
    declared = ([{**decl, "admins": [key.public_hex]} for decl, key in organisations] if organisations is not None
                else [{"admins": [admins[n.index].public_hex], "api": f"http://{n.api}", "id": n.org,
                       "name": f"{n.role.title()} {n.index}", "roles": [n.role]} for n in nodes])
    genesis = parse_genesis({
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": time_ms,
        "organisations": declared,
        "validators": [{"org": n.org, "power": 10, "pub_key": n.validator} for n in nodes],
    })
    (root / "genesis.json").write_text(json.dumps(genesis.to_json(), indent=2, sort_keys=True) + "\n")
    spec = NetworkSpec(root, chain_id, nodes, proxy_app,
                       f"{namespaces.prefix}/{namespaces.subnet}" if namespaces else "")
    _write_cometbft_genesis(spec, genesis, time_ms)
    for node in nodes:
        _configure_node(spec, node, tuning)
        if not proxy_app:
            _init_careledger_home(spec, node, genesis, SnapshotPolicy(snapshot_interval, snapshot_keep))
        (spec.node_dir(node) / "node.json").write_text(json.dumps(asdict(node), indent=2) + "\n")
    (root / "network.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    return spec


def _write_cometbft_genesis(spec: NetworkSpec, genesis: Genesis, time_ms: int) -> None:
    """One CometBFT genesis.json, byte for byte the same on every node (its time too)."""
    first = spec.cometbft_home(0)
    write_genesis(first, genesis)
    doc = json.loads((first / "config" / "genesis.json").read_text())
    doc["genesis_time"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time_ms // 1000)) + \
        f".{time_ms % 1000:03d}Z"
    if spec.proxy_app:
        doc.pop("app_state", None)  # kvstore takes no app state
    text = json.dumps(doc, indent=2) + "\n"
    for node in spec.nodes:
        (spec.cometbft_home(node) / "config" / "genesis.json").write_text(text)


def _configure_node(spec: NetworkSpec, node: NodeSpec, tuning: Tuning,
                    extra: dict[tuple[str, str], str | bool | int] | None = None) -> None:
    path = spec.cometbft_home(node) / "config" / "config.toml"
    peers = ",".join(f"{n.node_id}@{n.p2p.removeprefix('tcp://')}" for n in spec.nodes if n.name != node.name)
    values = {**tuning.values(),
              ("", "proxy_app"): "kvstore" if spec.proxy_app == "kvstore" else node.abci,
              ("", "moniker"): f"{node.name}-{node.org}",
              ("rpc", "laddr"): node.rpc, ("p2p", "laddr"): node.p2p, ("p2p", "persistent_peers"): peers,
              ("p2p", "addr_book_strict"): False, ("p2p", "allow_duplicate_ip"): True, ("p2p", "pex"): False,
              **({("instrumentation", "prometheus_listen_addr"): node.metrics} if node.metrics else {}),
              **(extra or {})}
    path.write_text(set_toml_values(path.read_text(), values))
    run = spec.node_dir(node) / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    run.chmod(0o700)


def _init_careledger_home(spec: NetworkSpec, node: NodeSpec, genesis: Genesis, snapshots: SnapshotPolicy) -> None:
    home = spec.careledger_home(node)
    (home / "data").mkdir(parents=True, exist_ok=True)
    snapshots.save(home / "data")
    (home / "genesis.json").write_text(json.dumps(genesis.to_json(), indent=2, sort_keys=True) + "\n")
    write_key(home / "node_key.json", validator_signing_key(spec.cometbft_home(node)), "node")
    config = NodeConfig(api=node.api, engine="cometbft", org=node.org)
    (home / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    # no vault here: `careledger records vault-init --home HOME --org ORG` creates HOME/vault/ORG/ (its
    # organisation key and gateway key), which the node's records gateway opens at start-up
    store, _ = open_store(home / "data" / "ledger.sqlite", genesis, check=False, create=True)
    store.close()


def remove_network(root: Path) -> None:
    """Delete a network directory created by :func:`init_network` (it must hold network.json)."""
    if not (root / "network.json").exists():
        raise CometbftSetupError(f"{root} holds no network")
    shutil.rmtree(root)


@dataclass(frozen=True)
class StateSyncTrust:
    """What a node joining by state sync trusts: a recent block of the network (height and hash, from a
    node the operator trusts) and at least two RPC servers its light client checks headers against."""

    rpc_servers: tuple[str, ...]
    height: int
    hash: str
    period: str = "168h0m0s"  # must stay below the unbonding period of a real network

    def values(self) -> dict[tuple[str, str], str | bool | int]:
        if len(self.rpc_servers) < 2 or self.height < 1 or len(self.hash) != 64:
            raise CometbftSetupError("state sync needs two RPC servers, a trusted height >= 1 and its block hash")
        return {("statesync", "enable"): True, ("statesync", "rpc_servers"): ",".join(self.rpc_servers),
                ("statesync", "trust_height"): self.height, ("statesync", "trust_hash"): self.hash.upper(),
                ("statesync", "trust_period"): self.period, ("statesync", "discovery_time"): "5s"}


def add_node(spec: NetworkSpec, org: str, role: str, tuning: Tuning | None = None,
             binary: Path | None = None, state_sync: StateSyncTrust | None = None,
             snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, snapshot_keep: int = 2) -> NetworkSpec:
    """Create one more node for organisation ``org`` (a full node until governance makes its key a
    validator); it peers with every existing node. With ``state_sync`` it joins from a snapshot of its
    peers (at most a snapshot interval behind), else by replaying every block from genesis. Returns the
    updated spec (network.json rewritten)."""
    binary = binary or find_cometbft()
    if binary is None:
        raise CometbftSetupError("cometbft not found: run scripts/install-cometbft.sh")
    index = len(spec.nodes)
    name = f"node{index}"
    cmt_home = spec.root / name / "cometbft"
    cometbft_init(binary, cmt_home)
    base = min(n.p2p_port for n in spec.nodes)
    transport = "unix" if spec.nodes[0].abci.startswith("unix://") else "tcp"
    node = make_node_spec(spec.root, index, org, role, base, transport)
    if spec.netns:
        raise CometbftSetupError("adding a node to a network in namespaces is not supported")
    grown = NetworkSpec(spec.root, spec.chain_id, [*spec.nodes, node], spec.proxy_app)
    shutil.copyfile(spec.cometbft_home(0) / "config" / "genesis.json", cmt_home / "config" / "genesis.json")
    _configure_node(grown, node, tuning or Tuning(), state_sync.values() if state_sync else None)
    new_key(spec.root / name / "careledger" / "keys" / "admin.json", "admin")
    if not spec.proxy_app:
        _init_careledger_home(grown, node, spec.genesis(), SnapshotPolicy(snapshot_interval, snapshot_keep))
    (grown.node_dir(node) / "node.json").write_text(json.dumps(asdict(node), indent=2) + "\n")
    (spec.root / "network.json").write_text(json.dumps(grown.to_json(), indent=2) + "\n")
    return grown
