"""Preparing a CometBFT home to run CareLedger: genesis, validator key and config.toml.

CometBFT's ``genesis.json`` carries the CareLedger genesis document as its ``app_state`` (handed to
the app in InitChain) and the same ``chain_id``; its ``validators`` are written from the CareLedger
genesis, which stays authoritative (InitChain returns them). A CareLedger validator key is the
Ed25519 key of a CometBFT validator (``priv_validator_key.json``), written as 64 hex characters.

``config.toml`` is edited line by line inside its sections (the file is CometBFT's own template;
Python's ``tomllib`` reads but does not write TOML), and the result is re-read to check it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from careledger.core.genesis import Genesis

PUBKEY_TYPE_ED25519 = "tendermint/PubKeyEd25519"
SECTION_RE = re.compile(r"^\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?$")


class CometbftSetupError(Exception):
    """A CometBFT home cannot be prepared as asked."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def find_cometbft() -> Path | None:
    """``$COMETBFT_BIN``, else ``<repo>/.tools/bin/cometbft`` (scripts/install-cometbft.sh), else ``PATH``."""
    return _find_tool("COMETBFT_BIN", "cometbft")


def find_abci_cli() -> Path | None:
    """CometBFT's ``abci-cli`` (its example apps; the benchmark's out-of-process kvstore baseline):
    ``$ABCI_CLI_BIN``, else ``<repo>/.tools/bin/abci-cli`` (scripts/install-cometbft.sh), else ``PATH``."""
    return _find_tool("ABCI_CLI_BIN", "abci-cli")


def _find_tool(variable: str, name: str) -> Path | None:
    for candidate in (os.environ.get(variable), str(repo_root() / ".tools" / "bin" / name), shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def validator_address(pub_key: bytes) -> bytes:
    """CometBFT's address of an Ed25519 key: the first 20 bytes of SHA-256 of the key."""
    return hashlib.sha256(pub_key).digest()[:20]


def cometbft_init(binary: Path, home: Path) -> None:
    """``cometbft init`` (keeps existing keys and files)."""
    proc = subprocess.run([str(binary), "init", "--home", str(home)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CometbftSetupError(f"`cometbft init` failed: {proc.stderr.strip() or proc.stdout.strip()}")


def read_validator_pub_key(home: Path) -> bytes:
    """The Ed25519 public key in ``config/priv_validator_key.json``."""
    path = home / "config" / "priv_validator_key.json"
    try:
        doc = json.loads(path.read_text())
        pub = doc["pub_key"]
        if pub["type"] != PUBKEY_TYPE_ED25519:
            raise CometbftSetupError(f"{path}: validator key type {pub['type']!r} is not Ed25519")
        key = base64.b64decode(pub["value"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CometbftSetupError(f"{path} is not a CometBFT validator key file") from exc
    if len(key) != 32:
        raise CometbftSetupError(f"{path}: an Ed25519 public key is 32 bytes")
    return key


def dev_genesis(chain_id: str, admin_pub_hex: str, validator_pub_hex: str, time_ms: int,
                org_id: str = "org.dev") -> dict[str, Any]:
    """A one-organisation development consortium whose only validator is ``validator_pub_hex``."""
    return {
        "chain_id": chain_id, "crypto_suite": "ed25519-sha256", "genesis_time_ms": time_ms,
        "organisations": [{"admins": [admin_pub_hex], "api": None, "id": org_id, "name": "Development organisation",
                           "roles": ["hospital"]}],
        "validators": [{"org": org_id, "power": 10, "pub_key": validator_pub_hex}],
    }


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_genesis(home: Path, genesis: Genesis) -> None:
    """Put ``genesis`` into CometBFT's genesis.json: chain id, app_state and validators."""
    path = home / "config" / "genesis.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CometbftSetupError(f"{path} is not a CometBFT genesis file") from exc
    doc["chain_id"] = genesis.chain_id
    doc["app_state"] = genesis.to_json()
    doc["validators"] = [
        {"address": validator_address(bytes.fromhex(v.pub_key)).hex().upper(),
         "pub_key": {"type": PUBKEY_TYPE_ED25519, "value": base64.b64encode(bytes.fromhex(v.pub_key)).decode()},
         "power": str(v.power), "name": v.org}
        for v in genesis.validators
    ]
    _write_atomically(path, json.dumps(doc, indent=2) + "\n")


def toml_value(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def set_toml_values(text: str, values: dict[tuple[str, str], str | bool | int]) -> str:
    """Replace ``key = ...`` lines inside their ``[section]`` ("" is the top level).

    Raises CometbftSetupError naming any key that is not in the file.
    """
    section = ""
    seen: set[tuple[str, str]] = set()
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        match = SECTION_RE.match(line)
        if match:
            section = match.group(1)
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if not match and key is not None and (section, key) in values:
            newline = "\n" if line.endswith("\n") else ""
            out.append(f"{key} = {toml_value(values[(section, key)])}{newline}")
            seen.add((section, key))
        else:
            out.append(line)
    missing = sorted(set(values) - seen)
    if missing:
        raise CometbftSetupError(f"config.toml has no setting {', '.join(f'[{s}] {k}' for s, k in missing)}")
    return "".join(out)


def configure(home: Path, proxy_app: str, rpc_laddr: str = "tcp://127.0.0.1:26657",
              p2p_laddr: str = "tcp://0.0.0.0:26656", timeout_commit: str = "1s", create_empty_blocks: bool = True,
              moniker: str | None = None) -> dict[str, Any]:
    """Point CometBFT at the CareLedger ABCI server and set the listen addresses and block pace."""
    path = home / "config" / "config.toml"
    values: dict[tuple[str, str], str | bool | int] = {
        ("", "proxy_app"): proxy_app, ("", "abci"): "socket",
        ("rpc", "laddr"): rpc_laddr, ("p2p", "laddr"): p2p_laddr,
        ("consensus", "timeout_commit"): timeout_commit,
        ("consensus", "create_empty_blocks"): create_empty_blocks,
    }
    if moniker is not None:
        values[("", "moniker")] = moniker
    text = set_toml_values(path.read_text(), values)
    parsed = tomllib.loads(text)
    if parsed["proxy_app"] != proxy_app or parsed["consensus"]["timeout_commit"] != timeout_commit:
        raise CometbftSetupError("config.toml did not take the new settings")
    _write_atomically(path, text)
    return parsed


def setup_home(binary: Path, home: Path, genesis: Genesis, proxy_app: str, **config: Any) -> bytes:
    """``cometbft init`` a home for ``genesis`` and configure it; returns this node's validator key.

    Raises CometbftSetupError unless the home's validator key is one of the genesis validators.
    """
    cometbft_init(binary, home)
    pub = read_validator_pub_key(home)
    if pub.hex() not in {v.pub_key for v in genesis.validators}:
        raise CometbftSetupError(f"this node's validator key {pub.hex()} is not a validator in the CareLedger "
                                 "genesis")
    write_genesis(home, genesis)
    configure(home, proxy_app, **config)
    return pub
