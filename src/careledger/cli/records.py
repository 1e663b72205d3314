"""``careledger records|consent|audit``: vaults, FHIR import and reads, consents, break-glass, access logs.

All commands talk to a running node's HTTP API (``--url``, default: the home's configured API) and sign
as a key of the home's keyring (``--as NAME`` = ``HOME/keys/NAME.json``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from careledger.cli.common import HomeOption, console, expand, fail, load_key, node_url, print_json

records_app = typer.Typer(help="Health records: custodian vaults, FHIR import, reads, erasure.", no_args_is_help=True)
consent_app = typer.Typer(help="Patient consents, delegates and break-glass sessions.", no_args_is_help=True)
audit_app = typer.Typer(help="The patient's access log.", no_args_is_help=True)

AsKey = Annotated[str, typer.Option("--as", help="Sign as this key of the home's keyring (HOME/keys/NAME.json).")]
Url = Annotated[str | None, typer.Option(help="Node API URL (default: the home's configured API).")]
Patient = Annotated[str | None, typer.Option(help="Patient pseudonym (default: the signing key's own).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Purpose = Annotated[str, typer.Option(help="Purpose of use (v3 PurposeOfUse: TREAT, HPAYMT, HRESCH, ...).")]


def _client(home: Path, who: str, url: str | None) -> Any:
    from careledger.client import Client
    from careledger.client.records import RecordsClient

    return RecordsClient(Client(node_url(home, url)), load_key(home, who), gateways={})


def _run(fn: Any) -> Any:
    from careledger.client import ClientError

    try:
        return fn()
    except ClientError as exc:
        fail(f"{exc.name} ({exc.code}): {exc.message}")


# -- records --------------------------------------------------------------------------------------------------

@records_app.command("vault-init")
def vault_init(org: Annotated[str, typer.Option(help="The custodian organisation.")], home: Path = HomeOption,
               enrol_as: Annotated[str | None, typer.Option(help="Admin key that enrols the gateway key now.")] = None,
               url: Url = None) -> None:
    """Create HOME/vault/ORG: organisation key, gateway key and encrypted store."""
    from careledger.vault.store import Vault, VaultError

    try:
        vault = Vault.create(expand(home) / "vault" / org, org)
    except VaultError as exc:
        fail(exc.message)
    gateway = vault.gateway_key.public_hex
    vault.close()
    console.print(f"[green]vault created[/] for {org}: org key {vault.org_key.key_id}, gateway key {gateway}")
    if enrol_as:
        rc = _client(home, enrol_as, url)
        _run(lambda: rc.ledger.send(rc.key, "identity.enrol_member", 1,
                                    {"member": gateway, "org": org, "roles": ["data_steward"], "handle": "gateway"}))
        console.print("gateway key enrolled as a data steward")
    else:
        console.print(f"next: an admin of {org} enrols {gateway} with role data_steward")


@records_app.command("import")
def records_import(file: Annotated[Path, typer.Argument(help="FHIR R4 resource or Bundle (JSON).")],
                   patient: Annotated[str, typer.Option(help="Patient pseudonym.")],
                   custodian: Annotated[str, typer.Option(help="Custodian organisation.")],
                   who: AsKey, home: Path = HomeOption, url: Url = None, as_json: Json = False) -> None:
    """Validate, encrypt, store and anchor every resource of FILE for PATIENT at CUSTODIAN."""
    rc = _client(home, who, url)
    start = time.perf_counter()
    result = _run(lambda: rc.store(custodian, patient, expand(file).read_bytes()))
    if as_json:
        print_json(result)
        return
    n = len(result["records"])
    console.print(f"[green]imported[/] {n} resources for {patient} at {custodian} up to block {result['height']} "
                  f"({n / (time.perf_counter() - start):,.0f} resources/s)")


@records_app.command("list")
def records_list(who: AsKey, patient: Patient = None, purpose: Purpose = "TREAT", home: Path = HomeOption,
                 url: Url = None, as_json: Json = False) -> None:
    """The patient's records this key may see (by custodian, type, date)."""
    rc = _client(home, who, url)
    rows = _run(lambda: rc.index(patient or rc.pseudonym, purpose))
    if as_json:
        print_json(rows)
        return
    table = Table("record", "custodian", "type", "version", "date", "status")
    for r in rows:
        table.add_row(r["record"], r["custodian"], r["type"], str(r["version"]), r["date"], r["status"])
    console.print(table)


@records_app.command("fetch")
def records_fetch(records: Annotated[list[str], typer.Argument(help="Record ids.")],
                  custodian: Annotated[str, typer.Option(help="Custodian organisation.")], who: AsKey,
                  patient: Patient = None, purpose: Purpose = "TREAT",
                  emergency: Annotated[bool, typer.Option(help="Break-glass read (needs an open session).")] = False,
                  gateway: Annotated[str | None, typer.Option(help="Custodian gateway URL.")] = None,
                  home: Path = HomeOption, url: Url = None) -> None:
    """Read records through the custodian's gateway; each is checked against its ledger anchor."""
    rc = _client(home, who, url)
    if gateway:
        rc.gateway_urls[custodian] = gateway
    fetched = _run(lambda: rc.read(custodian, patient or rc.pseudonym, records, purpose, emergency=emergency))
    import json

    print_json([{"record": f.record, "version": f.version, "mode": f.mode, "emergency": f.emergency,
                 "verified": True, "resource": json.loads(f.resource_json())} for f in fetched])


@records_app.command("erase")
def records_erase(record: str, custodian: Annotated[str, typer.Option(help="Custodian organisation.")], who: AsKey,
                  reason: Annotated[str, typer.Option(help="patient_request, custodian_policy, ...")] = (
                      "patient_request"),
                  home: Path = HomeOption, url: Url = None) -> None:
    """Erase a record: the ledger records it, the custodian destroys key, salt and ciphertext."""
    rc = _client(home, who, url)
    result = _run(lambda: rc.erase(record, reason, custodian=custodian))
    console.print(f"[green]erased[/] {record}: {result['versions_destroyed']} version(s) destroyed, "
                  f"recorded at block {result['height']}")


# -- consent --------------------------------------------------------------------------------------------------

@consent_app.command("grant")
def consent_grant(who: AsKey, purpose: Annotated[list[str], typer.Option(help="Purposes (repeat).")],
                  org: Annotated[str | None, typer.Option(help="Grantee organisation.")] = None,
                  member: Annotated[str | None, typer.Option(help="Grantee member key.")] = None,
                  study: Annotated[str | None, typer.Option(help="Grantee research study id.")] = None,
                  type_: Annotated[list[str] | None, typer.Option("--type", help="Resource types (repeat).")] = None,
                  record: Annotated[list[str] | None, typer.Option(help="Specific records (repeat).")] = None,
                  days: Annotated[int | None, typer.Option(help="Valid for this many days from now.")] = None,
                  deny: Annotated[bool, typer.Option(help="A deny provision (overrides permits).")] = False,
                  patient: Patient = None, home: Path = HomeOption, url: Url = None) -> None:
    """Grant (or deny) access to an organisation, a member or a study."""
    grantees = [(k, v) for k, v in (("org", org), ("member", member), ("study", study)) if v]
    if len(grantees) != 1:
        fail("name exactly one of --org, --member, --study")
    rc = _client(home, who, url)
    now = int(time.time() * 1000)
    period = {"end_ms": now + days * 86_400_000, "start_ms": None} if days else None
    result = _run(lambda: rc.grant(patient or rc.pseudonym, grantees[0][0], grantees[0][1], purpose,
                                   resource_types=type_, records=record, period=period,
                                   provision="deny" if deny else "permit"))
    receipt = result["receipt"]
    if receipt["code"]:
        fail(f"{receipt['name']} ({receipt['code']}): {receipt['message']}")
    console.print(f"[green]consent[/] {receipt['result']['consent']} ({receipt['result']['provision']})")


@consent_app.command("revoke")
def consent_revoke(consent: str, who: AsKey, home: Path = HomeOption, url: Url = None) -> None:
    """Revoke a consent; it stops covering from the next block."""
    rc = _client(home, who, url)
    receipt = _run(lambda: rc.revoke(consent))["receipt"]
    if receipt["code"]:
        fail(f"{receipt['name']} ({receipt['code']}): {receipt['message']}")
    console.print(f"[green]revoked[/] {consent}")


@consent_app.command("list")
def consent_list(who: AsKey, patient: Patient = None, fhir: Annotated[bool, typer.Option(
                 help="Print FHIR Consent resources.")] = False, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's consents, with history (patient or delegate only)."""
    rc = _client(home, who, url)
    doc = _run(lambda: rc.view(patient, fhir=fhir))
    if fhir:
        print_json(doc["consents_fhir"])
        return
    table = Table("consent", "provision", "grantee", "purposes", "types", "status")
    for c in doc["consents"]:
        table.add_row(c["id"], c["provision"], f"{c['grantee']['kind']}:{c['grantee']['id'][:20]}",
                      ",".join(c["purposes"]), ",".join(c["resource_types"]) or "all", c["status"])
    console.print(table)


@consent_app.command("delegate")
def consent_delegate(delegate: Annotated[str, typer.Argument(help="The delegate's public key (hex).")], who: AsKey,
                     home: Path = HomeOption, url: Url = None) -> None:
    """Appoint a delegate (e.g. a guardian) who may act for the signing patient."""
    rc = _client(home, who, url)
    receipt = _run(lambda: rc.appoint_delegate(delegate))["receipt"]
    if receipt["code"]:
        fail(f"{receipt['name']} ({receipt['code']}): {receipt['message']}")
    console.print("[green]delegate appointed[/]")


@consent_app.command("break-glass")
def consent_break_glass(patient: Annotated[str, typer.Option(help="Patient pseudonym.")], who: AsKey,
                        reason: Annotated[str, typer.Option(help="unconscious, life_threatening, ...")],
                        minutes: Annotated[int, typer.Option(help="Session length (max 240).")] = 240,
                        home: Path = HomeOption, url: Url = None) -> None:
    """Open a time-limited emergency (break-glass) session for one patient."""
    rc = _client(home, who, url)
    receipt = _run(lambda: rc.break_glass(patient, reason, minutes))["receipt"]
    if receipt["code"]:
        fail(f"{receipt['name']} ({receipt['code']}): {receipt['message']}")
    console.print(f"[yellow]break-glass open[/] until {receipt['result']['expires_ms']} (flagged in the audit trail)")


# -- audit ----------------------------------------------------------------------------------------------------

@audit_app.command("log")
def audit_log(who: AsKey, patient: Patient = None, fhir: Annotated[bool, typer.Option(
              help="Print FHIR AuditEvent resources.")] = False, home: Path = HomeOption, url: Url = None,
              as_json: Json = False) -> None:
    """The patient's access log: every read, granted, denied and emergency (patient or delegate only)."""
    rc = _client(home, who, url)
    doc = _run(lambda: rc.view(patient, fhir=fhir))
    if fhir:
        print_json(doc["access_log_fhir"])
        return
    if as_json:
        print_json(doc["access_log"])
        return
    table = Table("block", "custodian", "requester", "org", "record", "purpose", "outcome", "flag")
    for e in doc["access_log"]:
        flag = "EMERGENCY" if e["emergency"] else ""
        outcome = "granted" if e["outcome"] == "granted" else f"denied {e['code']}"
        table.add_row(str(e["height"]), e["custodian"], e["requester"][:12] + "…", str(e["requester_org"]),
                      str(e["record"]), e["purpose"], outcome, flag)
    console.print(table)
