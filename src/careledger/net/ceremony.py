"""The consortium ceremony: organisations on separate machines found one CometBFT network.

The flow (``careledger consortium ...``, docs/consortium.md section 3):

1. **join** (each organisation, on its own machine): create its CometBFT validator and p2p keys and
   its admin key, and write a *join file* with only their public halves, converted to what the
   genesis needs (hex; ``cometbft show-validator`` prints base64)::

       {"admins": [hex], "node_id": hex, "org": id, "p2p": "host:port", "validator": hex, "version": 1}

2. **genesis** (the coordinator): one short declarative *consortium file* (TOML) names the chain,
   the genesis time, the organisations with their roles, GS1 company prefixes and API, and where
   their keys come from (a join file, or keys written inline: hex, base64, or the JSON
   ``cometbft show-validator`` prints, as pasted); the tool writes ``genesis.json`` (CareLedger's),
   ``cometbft-genesis.json`` (CometBFT's, with CareLedger's as ``app_state``) and ``peers.json``::

       chain_id = "careledger-northwest-1"
       genesis_time = "2026-01-05T09:00:00Z"

       [[organisation]]
       id = "hospital-a"
       name = "St Mary's Hospital"
       roles = ["hospital"]
       join = "join-hospital-a.json"          # admins, validator key, node id and p2p address

       [[organisation]]
       id = "regulator"
       name = "Health Regulator"
       roles = ["regulator"]
       admins = ["<hex>"]                     # a member without a node

3. **verify** (every organisation): the *genesis hash* is the SHA-256 of ``cometbft-genesis.json``
   as written (``sha256sum`` prints it too); it covers CareLedger's genesis, which must equal its
   ``app_state`` byte for byte once parsed. Each organisation checks it against the hash the
   coordinator announced, and that its own keys are in it, before it starts.
4. **setup** (every organisation): install the genesis and configure its node (ABCI on an owner-only
   Unix socket, its peers, metrics and indexer on), so ``careledger abci node --node-dir DIR`` and
   ``cometbft start --home DIR/cometbft`` run it. ``setup`` verifies the hash again first.

The same consortium file also makes a multi-organisation **embedded** node for tests and demos
(:func:`embedded_home`): every organisation gets a fresh admin key in the home's ``keys/`` and the
node's own key is the only validator.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import tempfile
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from careledger.abci.cometbft import (
    CometbftSetupError,
    cometbft_init,
    find_cometbft,
    read_validator_pub_key,
    write_genesis,
)
from careledger.abci.snapshots import SnapshotPolicy
from careledger.core.errors import GenesisError
from careledger.core.genesis import Genesis, decode_genesis, parse_genesis
from careledger.keys import new_key, read_key
from careledger.net.layout import (
    DEFAULT_SNAPSHOT_INTERVAL,
    NetworkSpec,
    NodeSpec,
    Tuning,
    _configure_node,
    _init_careledger_home,
    p2p_node_id,
)

JOIN_VERSION = 1
ORG_KEYS = frozenset({"id", "name", "roles", "gs1_prefixes", "api", "join", "admins", "validator_key", "power"})
TOP_KEYS = frozenset({"chain_id", "genesis_time", "params", "organisation"})


class CeremonyError(CometbftSetupError):
    """A join file, consortium file or genesis is wrong, or a node cannot be set up from them."""


# -- keys as people paste them ------------------------------------------------------------------------------------

def public_key_hex(text: str) -> str:
    """An Ed25519 public key as 64 hex characters, from hex, base64, or the JSON ``cometbft show-validator``
    prints; raises CeremonyError."""
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
            if doc.get("type") != "tendermint/PubKeyEd25519":
                raise CeremonyError(f"validator key type {doc.get('type')!r} is not Ed25519")
            text = str(doc["value"])
        except (ValueError, KeyError, AttributeError) as exc:
            raise CeremonyError("not the output of `cometbft show-validator`") from exc
    if len(text) == 64:
        try:
            return bytes.fromhex(text).hex()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise CeremonyError(f"{text[:20]}... is neither hex nor base64 of an Ed25519 public key") from None
    if len(raw) != 32:
        raise CeremonyError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return raw.hex()


# -- 1. join ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JoinFile:
    org: str
    admins: list[str]
    validator: str
    node_id: str
    p2p: str  # host:port other organisations dial

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "version": JOIN_VERSION}

    @classmethod
    def load(cls, path: Path) -> JoinFile:
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != JOIN_VERSION:
                raise CeremonyError(f"{path}: join file version {doc.get('version')!r}, this release reads "
                                    f"{JOIN_VERSION}")
            join = cls(str(doc["org"]), [public_key_hex(a) for a in doc["admins"]], public_key_hex(doc["validator"]),
                       str(doc["node_id"]), str(doc["p2p"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CeremonyError(f"{path} is not a join file: {exc}") from None
        if len(join.node_id) != 40 or join.p2p.rpartition(":")[2].isdigit() is False:
            raise CeremonyError(f"{path}: node_id is 40 hex characters and p2p is host:port")
        return join


def join(home: Path, org: str, p2p: str, binary: Path | None = None) -> tuple[Path, JoinFile]:
    """Create an organisation's keys under ``home`` (``cometbft/``: validator and p2p keys;
    ``careledger/keys/admin.json``: its admin) and its join file ``home/join-<org>.json``.
    Existing keys are kept (running it again rewrites the join file only)."""
    binary = binary or find_cometbft()
    if binary is None:
        raise CeremonyError("cometbft not found: run scripts/install-cometbft.sh")
    if not p2p.rpartition(":")[2].isdigit():
        raise CeremonyError(f"--p2p {p2p!r} is not host:port")
    cmt_home = home / "cometbft"
    cometbft_init(binary, cmt_home)
    admin_path = home / "careledger" / "keys" / "admin.json"
    admin = read_key(admin_path) if admin_path.exists() else new_key(admin_path, "admin")
    result = JoinFile(org, [admin.public_hex], read_validator_pub_key(cmt_home).hex(), p2p_node_id(cmt_home), p2p)
    path = home / f"join-{org}.json"
    path.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    return path, result


# -- 2. genesis --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Consortium:
    """A consortium file, read: the CareLedger genesis it declares and each organisation's peer address."""

    genesis: Genesis
    peers: dict[str, str]  # org -> node_id@host:port, for organisations that run a node
    genesis_time_ms: int


def _time_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        try:
            stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise CeremonyError(f"genesis_time {value!r} is not an RFC 3339 time") from None
    if stamp.tzinfo is None:
        raise CeremonyError("genesis_time needs a time zone (e.g. 2026-01-05T09:00:00Z)")
    return int(stamp.timestamp() * 1000)


def read_consortium(path: Path) -> Consortium:
    """Read and check a consortium file; join files are found relative to it. Raises CeremonyError or
    GenesisError."""
    doc, peers, time_ms = _declared(path, embedded=False)
    if not doc["validators"]:
        raise CeremonyError(f"{path}: no organisation brings a validator key")
    return Consortium(parse_genesis(doc), peers, time_ms)


def _declared(path: Path, embedded: bool) -> tuple[dict[str, Any], dict[str, str], int]:
    """The genesis document a consortium file declares (not yet checked), its peers and its time (ms).
    With ``embedded`` organisations may lack keys (the embedded home makes them)."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CeremonyError(f"{path} is not a consortium file: {exc}") from None
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown or "chain_id" not in doc or "genesis_time" not in doc or not doc.get("organisation"):
        raise CeremonyError(f"{path}: a consortium file has chain_id, genesis_time, [params] and [[organisation]]"
                            + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    orgs, validators, peers = [], [], {}
    for entry in doc["organisation"]:
        extra = sorted(set(entry) - ORG_KEYS)
        if extra or "id" not in entry:
            raise CeremonyError(f"{path}: an organisation has id, name, roles, gs1_prefixes, api, join, admins, "
                                f"validator_key and power" + (f" (unknown: {', '.join(extra)})" if extra else ""))
        org_id = str(entry["id"])
        joined = JoinFile.load(path.parent / entry["join"]) if "join" in entry else None
        if joined is not None and joined.org != org_id:
            raise CeremonyError(f"{entry['join']} is the join file of {joined.org!r}, not of {org_id!r}")
        admins = [public_key_hex(a) for a in entry.get("admins", [])] or (joined.admins if joined else [])
        if not admins and not embedded:
            raise CeremonyError(f"organisation {org_id!r} has no admin key (a join file or admins = [...])")
        validator = (public_key_hex(entry["validator_key"]) if "validator_key" in entry
                     else joined.validator if joined else None)
        orgs.append({"admins": admins, "api": entry.get("api"), "id": org_id, "name": entry.get("name", org_id),
                     "gs1_company_prefixes": list(entry.get("gs1_prefixes", [])),
                     "roles": list(entry.get("roles", []))})
        if validator is not None:
            validators.append({"org": org_id, "power": int(entry.get("power", 10)), "pub_key": validator})
            if joined is not None:
                peers[org_id] = f"{joined.node_id}@{joined.p2p}"
    time_ms = _time_ms(doc["genesis_time"])
    genesis_doc: dict[str, Any] = {"chain_id": doc["chain_id"], "crypto_suite": "ed25519-sha256",
                                   "genesis_time_ms": time_ms, "organisations": orgs, "validators": validators}
    if "params" in doc:
        genesis_doc["params"] = doc["params"]
    return genesis_doc, peers, time_ms


def cometbft_genesis_text(genesis: Genesis, time_ms: int, binary: Path | None = None) -> str:
    """CometBFT's genesis.json for ``genesis``: CometBFT's default consensus parameters (from ``cometbft
    init``), the chain id, the time, the validators (base64, as CometBFT writes them) and CareLedger's
    genesis as ``app_state``."""
    binary = binary or find_cometbft()
    if binary is None:
        raise CeremonyError("cometbft not found: run scripts/install-cometbft.sh")
    with tempfile.TemporaryDirectory(prefix="careledger-genesis-") as tmp:
        home = Path(tmp)
        cometbft_init(binary, home)
        write_genesis(home, genesis)
        doc = json.loads((home / "config" / "genesis.json").read_text())
    stamp = dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)
    doc["genesis_time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}Z"
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_genesis_files(consortium_file: Path, out: Path, binary: Path | None = None) -> dict[str, Any]:
    """The coordinator's step: ``out/genesis.json``, ``out/cometbft-genesis.json`` and ``out/peers.json``;
    returns the hashes to announce."""
    consortium = read_consortium(consortium_file)
    out.mkdir(parents=True, exist_ok=True)
    genesis_text = json.dumps(consortium.genesis.to_json(), indent=2, sort_keys=True) + "\n"
    cmt_text = cometbft_genesis_text(consortium.genesis, consortium.genesis_time_ms, binary)
    (out / "genesis.json").write_text(genesis_text)
    (out / "cometbft-genesis.json").write_text(cmt_text)
    (out / "peers.json").write_text(json.dumps(consortium.peers, indent=2, sort_keys=True) + "\n")
    return summary(consortium.genesis, cmt_text.encode(), out)


def summary(genesis: Genesis, cmt_bytes: bytes, out: Path) -> dict[str, Any]:
    return {"chain_id": genesis.chain_id, "genesis_hash": hashlib.sha256(cmt_bytes).hexdigest(),
            "careledger_genesis_hash": genesis.hash.hex(), "dir": str(out),
            "organisations": [o.id for o in genesis.organisations],
            "validators": [{"org": v.org, "power": v.power, "pub_key": v.pub_key} for v in genesis.validators]}


# -- 3. verify ---------------------------------------------------------------------------------------------------

def verify_genesis(directory: Path, expect: str, home: Path | None = None) -> dict[str, Any]:
    """Check the files ``genesis`` wrote against the announced hash (SHA-256 of cometbft-genesis.json), that
    CareLedger's genesis is CometBFT's ``app_state`` with the same chain id and validators, and (with
    ``home``) that this organisation's admin and validator keys are in it. Raises CeremonyError naming
    the first difference; GenesisError when CareLedger's genesis is invalid."""
    try:
        cmt_bytes = (directory / "cometbft-genesis.json").read_bytes()
        genesis = decode_genesis((directory / "genesis.json").read_bytes())
        cmt = json.loads(cmt_bytes)
    except OSError as exc:
        raise CeremonyError(f"cannot read the genesis files in {directory}: {exc.strerror}") from None
    except ValueError as exc:
        raise CeremonyError(f"cometbft-genesis.json is not JSON: {exc}") from None
    actual = hashlib.sha256(cmt_bytes).hexdigest()
    if actual != expect.strip().lower():
        raise CeremonyError(f"the genesis hash is {actual}, not the {expect.strip()} announced: do not start")
    try:
        embedded = parse_genesis(cmt["app_state"])
    except (KeyError, GenesisError) as exc:
        raise CeremonyError(f"cometbft-genesis.json carries no valid CareLedger genesis: {exc}") from None
    if embedded.hash != genesis.hash:
        raise CeremonyError("genesis.json differs from the app_state of cometbft-genesis.json")
    if cmt.get("chain_id") != genesis.chain_id:
        raise CeremonyError("the two genesis files name different chain ids")
    cmt_validators = sorted((base64.b64decode(v["pub_key"]["value"]).hex(), int(v["power"]))
                            for v in cmt.get("validators", []))
    if cmt_validators != sorted((v.pub_key, v.power) for v in genesis.validators):
        raise CeremonyError("the two genesis files name different validators")
    out = summary(genesis, cmt_bytes, directory)
    if home is not None:
        out["member"] = check_member(genesis, home)
    return out


def check_member(genesis: Genesis, home: Path) -> dict[str, Any]:
    """This organisation's keys under ``home`` (as ``join`` made them) are in ``genesis``: its admin key
    as an admin of one organisation, its validator key (if it runs a node) as a validator of the same."""
    admin = read_key(home / "careledger" / "keys" / "admin.json").public_hex
    org = next((o.id for o in genesis.organisations if admin in o.admins), None)
    if org is None:
        raise CeremonyError(f"this organisation's admin key {admin[:16]}... is not in the genesis")
    validator = read_validator_pub_key(home / "cometbft").hex() if (home / "cometbft").exists() else None
    declared = {v.pub_key: v.org for v in genesis.validators}
    if validator is not None and declared.get(validator) not in (None, org):
        raise CeremonyError(f"this node's validator key is declared for {declared[validator]!r}, not {org!r}")
    return {"org": org, "admin": admin, "validator": validator if validator in declared else None}


# -- 4. setup ----------------------------------------------------------------------------------------------------

def setup_node(home: Path, directory: Path, expect: str, rpc: str = "127.0.0.1:26657", api: str = "127.0.0.1:8700",
               metrics: str = "127.0.0.1:26660", p2p_listen: str = "", local: bool = False,
               abci_transport: str = "unix", tuning: Tuning | None = None) -> NodeSpec:
    """Verify the genesis (see :func:`verify_genesis`), then make ``home`` a node directory: CometBFT's
    genesis and configuration (peers from ``peers.json``; ``local``: loopback peers allowed), the
    CareLedger home (genesis, validator key, ledger at genesis, snapshot policy) and ``node.json``."""
    from careledger.net.layout import make_node_spec

    checked = verify_genesis(directory, expect, home)
    genesis = decode_genesis((directory / "genesis.json").read_bytes())
    org = checked["member"]["org"]
    peers_doc = json.loads((directory / "peers.json").read_text())
    own = peers_doc.get(org, "")
    port = own.rpartition(":")[2] if own else "26656"
    role = next(o.roles[0] for o in genesis.organisations if o.id == org)
    base = make_node_spec(home.parent, 0, org, role, 0, abci_transport, name=home.name)
    node = NodeSpec(**{**asdict(base), "p2p": f"tcp://{p2p_listen or '0.0.0.0'}:{port}", "rpc": f"tcp://{rpc}",
                       "api": api, "metrics": metrics,
                       "abci": base.abci if abci_transport == "unix" else f"tcp://127.0.0.1:{int(port) + 2}"})
    spec = NetworkSpec(home.parent, genesis.chain_id, [node])
    shutil.copyfile(directory / "cometbft-genesis.json", home / "cometbft" / "config" / "genesis.json")
    peers = ",".join(v for k, v in sorted(peers_doc.items()) if k != org)
    extra: dict[tuple[str, str], str | bool | int] = {("p2p", "persistent_peers"): peers}
    if not local:
        extra |= {("p2p", "addr_book_strict"): True, ("p2p", "allow_duplicate_ip"): False}
    _configure_node(spec, node, tuning or Tuning(), extra)
    if not (home / "careledger" / "data" / "ledger.sqlite").exists():
        _init_careledger_home(spec, node, genesis, SnapshotPolicy(DEFAULT_SNAPSHOT_INTERVAL))
    (home / "node.json").write_text(json.dumps(asdict(node), indent=2) + "\n")
    return node


# -- the embedded node ---------------------------------------------------------------------------------------------

def embedded_home(consortium_file: Path, home: Path, api: str = "127.0.0.1:8700") -> dict[str, Any]:
    """A solo (embedded) node home for tests and demos with the consortium file's organisations, roles
    and GS1 prefixes: each organisation gets a new admin key, ``home/keys/<org>.json``, and the node's
    key is the only validator (of the first organisation). Join files and keys in the file are ignored."""
    from careledger.node.home import init_home

    doc, _, time_ms = _declared(consortium_file, embedded=True)
    if home.exists() and any(home.iterdir()):
        raise CeremonyError(f"{home} is not empty")
    keys_dir = home / "keys"
    admins = {o["id"]: new_key(keys_dir / f"{o['id']}.json", o["id"]) for o in doc["organisations"]}
    node_key = new_key(home / ".node_key.json", "node")
    doc["organisations"] = [{**o, "admins": [admins[o["id"]].public_hex]} for o in doc["organisations"]]
    doc["validators"] = [{"org": doc["organisations"][0]["id"], "power": 10, "pub_key": node_key.public_hex}]
    genesis = parse_genesis(doc)
    genesis_file = home / ".genesis.json"
    genesis_file.write_text(json.dumps(genesis.to_json(), indent=2, sort_keys=True) + "\n")
    try:
        init_home(home, genesis_file, home / ".node_key.json", time_ms, api=api)
    finally:
        genesis_file.unlink(missing_ok=True)
        (home / ".node_key.json").unlink(missing_ok=True)
    return {"home": str(home), "chain_id": genesis.chain_id, "genesis_hash": genesis.hash.hex(),
            "keys": {org: str(keys_dir / f"{org}.json") for org in admins}}
