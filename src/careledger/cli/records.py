"""``careledger records|consent|audit``: vaults, FHIR import and reads, consents, break-glass, access logs.

All commands talk to a running node's HTTP API (``--url``, default: the home's configured API) and sign
as a key of the home's keyring (``--as NAME`` = ``HOME/keys/NAME.json``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import (
    HomeOption,
    emit,
    fail,
    load_key,
    node_url,
    note,
    print_receipt,
    print_table,
    progress,
    read_file,
    say,
)

records_app = typer.Typer(help="Health records: custodian vaults, FHIR import, reads, erasure.", no_args_is_help=True)
consent_app = typer.Typer(help="Patient consents, delegates and break-glass sessions.", no_args_is_help=True)
audit_app = typer.Typer(help="The patient's access log.", no_args_is_help=True)

AsKey = Annotated[str, typer.Option("--as", help="Sign as this key of the home's keyring (HOME/keys/NAME.json).")]
Url = Annotated[str | None, typer.Option(help="Node API URL (default: the home's configured API).")]
Patient = Annotated[str | None, typer.Option(help="Patient pseudonym (default: the signing key's own).")]
Purpose = Annotated[str, typer.Option(help="Purpose of use (v3 PurposeOfUse: TREAT, HPAYMT, HRESCH, ...).")]


def _client(home: Path, who: str, url: str | None) -> Any:
    from careledger.client import Client
    from careledger.client.records import RecordsClient

    return RecordsClient(Client(node_url(home, url)), load_key(home, who), gateways={})


# -- records --------------------------------------------------------------------------------------------------

@records_app.command("vault-init")
def vault_init(org: Annotated[str, typer.Option(help="The custodian organisation.")], home: Path = HomeOption,
               enrol_as: Annotated[str | None, typer.Option(help="Admin key that enrols the gateway key now.")] = None,
               url: Url = None) -> None:
    """Create HOME/vault/ORG: organisation key, gateway key and encrypted store."""
    from careledger.cli.common import expand
    from careledger.vault.store import Vault

    vault = Vault.create(expand(home) / "vault" / org, org)
    gateway = vault.gateway_key.public_hex
    vault.close()
    doc: dict[str, Any] = {"org": org, "org_key": vault.org_key.key_id, "gateway_key": gateway, "enrolled": False}
    if enrol_as:
        rc = _client(home, enrol_as, url)
        result = rc.ledger.send(rc.key, "identity.enrol_member", 1,
                                {"member": gateway, "org": org, "roles": ["data_steward"], "handle": "gateway"})
        doc["enrolled"] = result["receipt"]["code"] == 0
        doc["enrolment"] = result
    emit(doc, lambda: say(f"[green]vault created[/] for {org}: org key {doc['org_key']}, gateway key {gateway}"
                          + ("; gateway key enrolled as a data steward" if doc["enrolled"] else "")))
    if not enrol_as:
        note(f"next: an admin of {org} enrols {gateway} with role data_steward")
    elif not doc["enrolled"]:
        print_receipt("identity.enrol_member", doc["enrolment"])


@records_app.command("import")
def records_import(files: Annotated[list[Path], typer.Argument(help="FHIR R4 resources or Bundles (JSON files).")],
                   patient: Annotated[str, typer.Option(help="Patient pseudonym.")],
                   custodian: Annotated[str, typer.Option(help="Custodian organisation.")],
                   who: AsKey, home: Path = HomeOption, url: Url = None) -> None:
    """Validate, encrypt, store and anchor every resource of each FILE for PATIENT at CUSTODIAN."""
    from careledger.api.records import MAX_STORE_BYTES

    rc = _client(home, who, url)
    start = time.perf_counter()
    results = []
    with progress("importing files", len(files)) as update:
        for i, file in enumerate(files):
            results.append({"file": str(file), **rc.store(custodian, patient, read_file(file, MAX_STORE_BYTES))})
            update(i + 1, None)
    count = sum(len(r["records"]) for r in results)
    seconds = time.perf_counter() - start
    doc = {"files": results, "resources": count, "height": max(r["height"] for r in results), "seconds": seconds}
    emit(doc if len(files) > 1 else results[0],
         lambda: say(f"[green]imported[/] {count} resources for {patient} at {custodian} up to block {doc['height']} "
                     f"({count / seconds:,.0f} resources/s)"))


@records_app.command("list")
def records_list(who: AsKey, patient: Patient = None, purpose: Purpose = "TREAT",
                 emergency: Annotated[bool, typer.Option(
                     "--emergency",
                     help="List under an open break-glass session (purpose ETREAT; flagged in the audit trail).")]
                 = False, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's records this key may see (by custodian, type, date)."""
    rc = _client(home, who, url)
    if emergency and purpose == "TREAT":
        purpose = "ETREAT"
    rows = rc.index(patient or rc.pseudonym, purpose, emergency=emergency)
    emit(rows, lambda: print_table(["record", "custodian", "type", "version", "date", "status"],
                                   ([r["record"], r["custodian"], r["type"], r["version"], r["date"], r["status"]]
                                    for r in rows)))


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
    fetched = rc.read(custodian, patient or rc.pseudonym, records, purpose, emergency=emergency)
    import json

    emit([{"record": f.record, "version": f.version, "mode": f.mode, "emergency": f.emergency,
           "verified": True, "resource": json.loads(f.resource_json())} for f in fetched])


@records_app.command("erase")
def records_erase(record: str, custodian: Annotated[str, typer.Option(help="Custodian organisation.")], who: AsKey,
                  reason: Annotated[str, typer.Option(help="patient_request, custodian_policy, ...")] = (
                      "patient_request"),
                  home: Path = HomeOption, url: Url = None) -> None:
    """Erase a record: the ledger records it, the custodian destroys key, salt and ciphertext."""
    rc = _client(home, who, url)
    result = rc.erase(record, reason, custodian=custodian)
    emit(result, lambda: say(f"[green]erased[/] {record}: {result['versions_destroyed']} version(s) destroyed, "
                             f"recorded at block {result['height']}"))


def _outcome(label: str, result: dict[str, Any], line: Any) -> None:
    """A consent transaction's outcome: ``line(receipt result)`` when it succeeded; exit 3 when refused."""
    receipt = result["receipt"]
    if receipt["code"]:
        print_receipt(label, result)
    emit(result, lambda: say(line(receipt["result"])))


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
    result = rc.grant(patient or rc.pseudonym, grantees[0][0], grantees[0][1], purpose, resource_types=type_,
                      records=record, period=period, provision="deny" if deny else "permit")
    _outcome("consent.grant", result, lambda r: f"[green]consent[/] {r['consent']} ({r['provision']})")


@consent_app.command("revoke")
def consent_revoke(consent: str, who: AsKey, home: Path = HomeOption, url: Url = None) -> None:
    """Revoke a consent; it stops covering from the next block."""
    rc = _client(home, who, url)
    _outcome("consent.revoke", rc.revoke(consent), lambda r: f"[green]revoked[/] {consent}")


@consent_app.command("list")
def consent_list(who: AsKey, patient: Patient = None, fhir: Annotated[bool, typer.Option(
                 help="Print FHIR Consent resources.")] = False, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's consents, with history (patient or delegate only)."""
    rc = _client(home, who, url)
    doc = rc.view(patient, fhir=fhir)
    if fhir:
        emit(doc["consents_fhir"])
        return
    emit(doc["consents"], lambda: print_table(
        ["consent", "provision", "grantee", "purposes", "types", "status"],
        ([c["id"], c["provision"], f"{c['grantee']['kind']}:{c['grantee']['id']}", ",".join(c["purposes"]),
          ",".join(c["resource_types"]) or "all", c["status"]] for c in doc["consents"])))


@consent_app.command("delegate")
def consent_delegate(delegate: Annotated[str, typer.Argument(help="The delegate's public key (hex).")], who: AsKey,
                     home: Path = HomeOption, url: Url = None) -> None:
    """Appoint a delegate (e.g. a guardian) who may act for the signing patient."""
    rc = _client(home, who, url)
    _outcome("consent.appoint_delegate", rc.appoint_delegate(delegate), lambda r: "[green]delegate appointed[/]")


@consent_app.command("break-glass")
def consent_break_glass(patient: Annotated[str, typer.Option(help="Patient pseudonym.")], who: AsKey,
                        reason: Annotated[str, typer.Option(help="unconscious, life_threatening, ...")],
                        minutes: Annotated[int, typer.Option(help="Session length (max 240).")] = 240,
                        home: Path = HomeOption, url: Url = None) -> None:
    """Open a time-limited emergency (break-glass) session for one patient."""
    rc = _client(home, who, url)
    _outcome("consent.break_glass", rc.break_glass(patient, reason, minutes),
             lambda r: f"[yellow]break-glass open[/] until {r['expires_ms']} (flagged in the audit trail)")


# -- audit ----------------------------------------------------------------------------------------------------

@audit_app.command("log")
def audit_log(who: AsKey, patient: Patient = None, fhir: Annotated[bool, typer.Option(
              help="Print FHIR AuditEvent resources.")] = False, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's access log: every read, granted, denied and emergency (patient or delegate only)."""
    rc = _client(home, who, url)
    doc = rc.view(patient, fhir=fhir)
    if fhir:
        emit(doc["access_log_fhir"])
        return
    log = doc["access_log"]
    emit(log, lambda: print_table(
        ["block", "custodian", "requester", "org", "record", "purpose", "outcome", "flag"],
        ([e["height"], e["custodian"], e["requester"], e["requester_org"], e["record"], e["purpose"],
          "granted" if e["outcome"] == "granted" else f"denied {e['code']}",
          "EMERGENCY" if e["emergency"] else ""] for e in log)))
