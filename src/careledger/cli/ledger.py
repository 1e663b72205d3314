"""Transaction and query commands that talk to a running node's HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import HomeOption, emit, fail, key_path, load_key, node_url, print_receipt, read_file
from careledger.core.errors import Code

identity_app = typer.Typer(help="Organisations, members and patients.", no_args_is_help=True)
governance_app = typer.Typer(help="Consortium proposals and votes.", no_args_is_help=True)
tx_app = typer.Typer(help="Look up transactions and blocks.", no_args_is_help=True)

AsOption = typer.Option("--as", help="Signing key: a name in HOME/keys or a key file path.")
UrlOption = typer.Option(help="Node API URL; default: the home's configured API.")


def _client(home: Path, url: str | None) -> Any:
    from careledger.client import Client

    return Client(node_url(home, url))


_key = load_key


def _public(home: Path, member: str) -> str:
    """A public key given as hex, or the public half of a key file (an encrypted one stays closed)."""
    from careledger.keys import read_public_key

    return member if len(member) == 64 else read_public_key(key_path(home, member))


def _send(home: Path, url: str | None, signer: str, tx_type: str, payload: dict[str, Any]) -> None:
    result = _client(home, url).send(_key(home, signer), tx_type, 1, payload, wait=True)
    print_receipt(tx_type, result)


@identity_app.command("enrol")
def enrol(
    org: str, member: str,
    role: Annotated[list[str], typer.Option(help="Role (repeatable): physician, nurse, pharmacist, ...")],
    signer: Annotated[str, AsOption] = "admin",
    handle: Annotated[str | None, typer.Option(help="Opaque staff handle (no personal data).")] = None,
    home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Enrol MEMBER (a public key, or a key name in the keyring) in ORG with roles."""
    pub = _public(home, member)
    payload: dict[str, Any] = {"member": pub, "org": org, "roles": sorted(role)}
    if handle:
        payload["handle"] = handle
    _send(home, url, signer, "identity.enrol_member", payload)


@identity_app.command("revoke")
def revoke(
    org: str, member: str, reason: Annotated[str, typer.Option(help="Why (no personal data).")] = "revoked",
    signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Revoke MEMBER of ORG; their transactions fail from the next block."""
    pub = _public(home, member)
    _send(home, url, signer, "identity.revoke_member", {"member": pub, "org": org, "reason": reason})


@identity_app.command("register-patient")
def register_patient(
    signer: Annotated[str, AsOption], home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Register the signing key as a patient's pseudonymous key."""
    _send(home, url, signer, "identity.register_patient", {})


@identity_app.command("set-tls")
def set_tls(
    org: str,
    cert: Annotated[list[Path] | None, typer.Option(help="A PEM certificate of ORG's TLS clients (repeatable, at "
                                                         "most 4); none clears the registration.")] = None,
    signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Register the SHA-256 fingerprints of ORG's TLS client certificates, for gateways that require
    mutual TLS of organisations (replaces those registered before)."""
    import hashlib
    import ssl

    fingerprints = []
    for path in cert or []:
        try:
            der = ssl.PEM_cert_to_DER_cert(read_file(path, limit=64 * 1024).decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            fail(f"{path} is not a PEM certificate", name=Code.FILE_UNREADABLE.name, code=int(Code.FILE_UNREADABLE))
        fingerprints.append(hashlib.sha256(der).hexdigest())
    _send(home, url, signer, "identity.set_org_tls", {"fingerprints": sorted(set(fingerprints)), "org": org})


@identity_app.command("orgs")
def orgs(home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None) -> None:
    """List the consortium's organisations."""
    emit(_client(home, url).organisations())


@identity_app.command("whois")
def whois(key: str, home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None) -> None:
    """Who a public key is on the ledger."""
    emit(_client(home, url).key_info(key))


@governance_app.command("propose-org")
def propose_org(
    org_id: str, name: str,
    role: Annotated[list[str], typer.Option(help="Organisation role (repeatable).")],
    admin_key: Annotated[list[str], typer.Option(help="Admin public key (repeatable).")],
    signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Propose adding an organisation to the consortium."""
    action = {"kind": "add_organisation",
              "organisation": {"admins": admin_key, "id": org_id, "name": name, "roles": role}}
    _send(home, url, signer, "governance.propose", {"action": action, "title": f"Add {org_id}"})


@governance_app.command("propose-removal")
def propose_removal(
    org: str, signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Propose removing an organisation from the consortium."""
    _send(home, url, signer, "governance.propose",
          {"action": {"kind": "remove_organisation", "org": org}, "title": f"Remove {org}"})


@governance_app.command("propose-validator")
def propose_validator(
    org: str, pub_key: str, power: int, signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Propose adding, re-weighting (power > 0) or removing (power 0) a validator."""
    _send(home, url, signer, "governance.propose",
          {"action": {"kind": "set_validator", "org": org, "power": power, "pub_key": pub_key},
           "title": f"Validator {pub_key[:12]} power {power}"})


@governance_app.command("propose-prefixes")
def propose_prefixes(
    org: str, prefix: Annotated[list[str] | None, typer.Argument(help="GS1 Company Prefixes (none: clear them)")]
    = None, signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Propose ORG's GS1 Company Prefixes (they replace its current ones; none may overlap another's)."""
    prefixes = list(prefix or [])
    _send(home, url, signer, "governance.propose",
          {"action": {"kind": "set_gs1_prefixes", "org": org, "prefixes": prefixes},
           "title": f"GS1 Company Prefixes of {org}: {', '.join(prefixes) or 'none'}"})


@governance_app.command("propose-rules")
def propose_rules(
    version: int, height: int, signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Propose that rules VERSION take effect at block HEIGHT (every node switches at that block)."""
    _send(home, url, signer, "governance.propose",
          {"action": {"kind": "schedule_rules", "height": height, "version": version},
           "title": f"Rules version {version} from height {height}"})


@governance_app.command("vote")
def vote(
    proposal: str, approve: Annotated[bool, typer.Option("--yes/--no", help="Approve or reject.")] = True,
    signer: Annotated[str, AsOption] = "admin", home: Path = HomeOption,
    url: Annotated[str | None, UrlOption] = None,
) -> None:
    """Cast your organisation's vote on a proposal."""
    _send(home, url, signer, "governance.vote", {"approve": approve, "proposal": proposal})


@governance_app.command("list")
def proposals(home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None) -> None:
    """List proposals."""
    emit(_client(home, url).proposals())


@tx_app.command("get")
def tx_get(tx_hash: Annotated[str, typer.Argument(help="The transaction's hash, or - to read it from a JSON "
                                                       "document on stdin (what `--json` write commands print).")],
           home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None) -> None:
    """A committed transaction with its receipt and inclusion proof (save it for `careledger proof verify`)."""
    if tx_hash == "-":
        tx_hash = _hash_from_stdin()
    emit(_client(home, url).tx(tx_hash))


def _hash_from_stdin() -> str:
    """The ``tx_hash`` of the JSON document on stdin (e.g. ``careledger --json identity enrol … | tx get -``)."""
    import json
    import sys

    from careledger.cli.common import fail

    try:
        doc = json.loads(sys.stdin.read())
    except ValueError:
        fail("stdin is not a JSON document with a tx_hash")
    tx_hash = doc.get("tx_hash") if isinstance(doc, dict) else None
    if not isinstance(tx_hash, str):
        fail("the JSON document on stdin has no tx_hash")
    return tx_hash


@tx_app.command("block")
def block(height: str = "latest", home: Path = HomeOption, url: Annotated[str | None, UrlOption] = None) -> None:
    """A block header with its transaction hashes."""
    emit(_client(home, url).block(height))
