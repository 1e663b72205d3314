"""``careledger supply ...``: the drug supply chain from the command line, through a node's HTTP API.

Writes are signed with a key from the home's keyring (``--as NAME``) or a key file; items are given
as refs (``<gtin14>/<serial>``, an 18-digit SSCC), EPC URNs or GS1 Digital Links.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import (
    EXIT_NEGATIVE,
    EXIT_TX_FAILED,
    HomeOption,
    emit,
    expand,
    fail,
    load_key,
    node_url,
    print_receipt,
    progress,
    read_file,
    say,
)

supply_app = typer.Typer(help="Drug supply chain: products, packs, verification, recalls, alerts, EPCIS.",
                         no_args_is_help=True)
epcis_app = typer.Typer(help="EPCIS 2.0 import (capture) and export.", no_args_is_help=True)
supply_app.add_typer(epcis_app, name="epcis")

AsOption = typer.Option("--as", help="Signing key: a name in HOME/keys or a key file path.")
UrlOption = typer.Option(help="Node API URL; default: the home's configured API.")
Url = Annotated[str | None, UrlOption]
Signer = Annotated[str, AsOption]
MAX_DOCUMENT_BYTES = 256 * 1024
"""The largest EPCIS document the CLI sends (checked before the file is read)."""


def _client(home: Path, url: str | None) -> Any:
    from careledger.client.supply import SupplyClient

    return SupplyClient(node_url(home, url))


_key = load_key


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _write(home: Path, url: str | None, signer: str, method: str, *args: Any, **kwargs: Any) -> None:
    client = _client(home, url)
    result = _call(getattr(client, method), _key(home, signer), *args, **kwargs)
    print_receipt(method, result)


@supply_app.command("register")
def register(gtin: str, name: str, signer: Signer = "admin",
             strength: Annotated[str | None, typer.Option()] = None,
             dosage_form: Annotated[str | None, typer.Option()] = None,
             ndc: Annotated[str | None, typer.Option(help="US NDC, e.g. 0001-0123-45")] = None,
             home: Path = HomeOption, url: Url = None) -> None:
    """Register a product (GTIN under one of your organisation's GS1 Company Prefixes)."""
    extra = {k: v for k, v in (("strength", strength), ("dosage_form", dosage_form), ("ndc", ndc)) if v}
    _write(home, url, signer, "register_product", gtin, name, **extra)


@supply_app.command("products")
def products(gtin: str, home: Path = HomeOption, url: Url = None) -> None:
    """Show a product's master data."""
    emit(_call(_client(home, url).product, gtin))


@supply_app.command("commission")
def commission(gtin: str, lot: Annotated[str, typer.Option()], expiry: Annotated[str, typer.Option(help="YYMMDD")],
               serial: Annotated[list[str] | None, typer.Option(help="Serial (repeatable)")] = None,
               serials_file: Annotated[Path | None, typer.Option(help="File with one serial per line")] = None,
               range_start: Annotated[int | None, typer.Option(help="First number of a serial range")] = None,
               range_count: Annotated[int, typer.Option()] = 0, range_width: Annotated[int, typer.Option()] = 10,
               range_prefix: Annotated[str, typer.Option()] = "", signer: Signer = "admin",
               home: Path = HomeOption, url: Url = None) -> None:
    """Commission serialised packs of one lot (serials, a file of serials, or a numbered range)."""
    from careledger.contracts.supply.layout import MAX_ITEMS_PER_TX

    serials = list(serial or [])
    if serials_file:
        serials += [s.strip() for s in read_file(serials_file).decode().splitlines() if s.strip()]
    if bool(serials) == (range_start is not None):
        fail("give serials (--serial / --serials-file) or a range (--range-start, --range-count), not both")
    if range_start is not None and range_count < 1:
        fail("--range-count must be at least 1")
    total = len(serials) if serials else range_count
    client, key = _client(home, url), _key(home, signer)
    results: list[dict[str, Any]] = []
    with progress("commissioning packs", total) as update:
        for start in range(0, total, MAX_ITEMS_PER_TX):  # one transaction per 10,000 packs
            count = min(MAX_ITEMS_PER_TX, total - start)
            if serials:
                result = client.commission(key, gtin, lot, expiry, serials=serials[start:start + count])
            else:
                assert range_start is not None
                rng = {"count": count, "prefix": range_prefix, "start": range_start + start, "width": range_width}
                result = client.commission(key, gtin, lot, expiry, serial_range=rng)
            results.append(result)
            update(start + count, None)
            if result["receipt"]["code"] != 0:
                break
    failed = next((r for r in results if r["receipt"]["code"] != 0), None)
    if len(results) == 1 or failed is not None:
        print_receipt("commission", failed or results[0])
        return
    emit({"transactions": results, "packs": total},
         lambda: say(f"[green]commissioned[/] {total:,} packs of {gtin} lot {lot} in {len(results)} transactions "
                     f"(last at block {results[-1]['height']})"))


@supply_app.command("aggregate")
def aggregate(parent: str, children: list[str], signer: Signer = "admin", home: Path = HomeOption,
              url: Url = None) -> None:
    """Pack CHILDREN into PARENT (an SSCC or a case SGTIN)."""
    _write(home, url, signer, "aggregate", parent, children)


@supply_app.command("ship")
def ship(items: list[str], to: Annotated[str, typer.Option(help="Consignee organisation id")],
         signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Ship items (with their contents) to a consortium member."""
    _write(home, url, signer, "ship", items, to)


@supply_app.command("receive")
def receive(items: list[str], signer: Signer = "admin", home: Path = HomeOption,
            url: Url = None) -> None:
    """Receive a shipment addressed to your organisation."""
    _write(home, url, signer, "receive", items)


@supply_app.command("dispense")
def dispense(items: list[str], signer: Signer = "admin", home: Path = HomeOption,
             url: Url = None) -> None:
    """Supply packs to the public (pharmacy or hospital)."""
    _write(home, url, signer, "dispense", items)


@supply_app.command("decommission")
def decommission(items: list[str], state: Annotated[str, typer.Option(
                 help="destroyed, stolen, exported, sample, free_sample, locked, checked_out or supplied")],
                 signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Decommission packs you hold."""
    _write(home, url, signer, "decommission", items, state)


@supply_app.command("undo")
def undo(items: list[str], state: Annotated[str, typer.Option(help="The state being undone")],
         signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Revert your own decommissioning within the undo window."""
    _write(home, url, signer, "undo", items, state)


@supply_app.command("recall")
def recall(gtin: str, lot: str, reason: Annotated[str, typer.Option()], signer: Signer = "admin",
           home: Path = HomeOption, url: Url = None) -> None:
    """Recall a lot (the product's owner or a regulator)."""
    _write(home, url, signer, "recall_lot", gtin, lot, reason)


@supply_app.command("withdraw")
def withdraw(gtin: str, reason: Annotated[str, typer.Option()], signer: Signer = "admin",
             home: Path = HomeOption, url: Url = None) -> None:
    """Withdraw a product from the market."""
    _write(home, url, signer, "withdraw_product", gtin, reason)


@supply_app.command("verify")
def verify(gtin: Annotated[str | None, typer.Option()] = None, serial: Annotated[str | None, typer.Option()] = None,
           lot: Annotated[str | None, typer.Option()] = None, expiry: Annotated[str | None, typer.Option()] = None,
           dl: Annotated[str | None, typer.Option(help="GS1 Digital Link URI")] = None,
           scan: Annotated[str | None, typer.Option(help="Scanned element string; write GS as \\x1d or <GS>")] = None,
           signed: Annotated[str | None, typer.Option("--record-as", help="Record the scan, signed by this key")]
           = None, home: Path = HomeOption, url: Url = None) -> None:
    """Verify a pack: VERIFIED, or NOT VERIFIED with reasons, holder and custody chain."""
    identifier = {k: v for k, v in (("gtin", gtin), ("serial", serial), ("lot", lot), ("expiry", expiry), ("dl", dl),
                                    ("scan", scan)) if v is not None}
    if "scan" in identifier:
        identifier["scan"] = identifier["scan"].replace("<GS>", "\x1d").replace("\\x1d", "\x1d")
    if signed:
        result = _client(home, url).verify_scan(_key(home, signed), **identifier)
        print_receipt("verify", result)
        verified = bool((result["receipt"].get("result") or {}).get("verified"))
    else:
        verdict = _client(home, url).verify(**identifier)
        verified = bool(verdict["verified"])
        colour = "green" if verified else "bold red"

        def human() -> None:
            say(f"[{colour}]{verdict['result']}[/] {', '.join(verdict['reasons'])}")
            say(json.dumps(verdict, indent=2, sort_keys=True))

        emit(verdict, human)
    if not verified:
        raise typer.Exit(EXIT_NEGATIVE)


@supply_app.command("history")
def history(epc: str, home: Path = HomeOption, url: Url = None) -> None:
    """A pack's or unit's state, holder, custody chain and history (EPC URN, Digital Link or ref)."""
    emit(_call(_client(home, url).item, epc))


@supply_app.command("alerts")
def alerts(signer: Signer = "admin", kind: Annotated[str | None, typer.Option()] = None,
           gtin: Annotated[str | None, typer.Option(help="Only alerts about this GTIN (14 digits)")] = None,
           party: Annotated[str | None, typer.Option(help="Only alerts raised by this organisation")] = None,
           home: Path = HomeOption, url: Url = None) -> None:
    """Alerts visible to your organisation (regulators and manufacturers), as a signed request."""
    emit(_call(_client(home, url).alerts, _key(home, signer), kind=kind, gtin=gtin, party=party))


@supply_app.command("location")
def location(gln: str, name: Annotated[str, typer.Option(help="The site's name")],
             role: Annotated[str, typer.Option(help="plant, warehouse, pharmacy, ... (lower case)")],
             org: Annotated[str | None, typer.Option(help="Its organisation (a regulator's admin names one); "
                                                          "default: the signer's")] = None,
             street: Annotated[str | None, typer.Option()] = None, city: Annotated[str | None, typer.Option()] = None,
             postal_code: Annotated[str | None, typer.Option()] = None,
             region: Annotated[str | None, typer.Option()] = None,
             country: Annotated[str | None, typer.Option(help="ISO 3166 alpha-2, e.g. IE")] = None,
             retire: Annotated[bool, typer.Option("--retire", help="Retire the location")] = False,
             signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Register, update or retire a location (GLN) of your organisation (a regulator: of any)."""
    address = {k: v for k, v in (("street", street), ("city", city), ("postal_code", postal_code),
                                 ("region", region), ("country", country)) if v is not None}
    _write(home, url, signer, "set_location", gln, name, role, org=org, address=address or None,
           status="retired" if retire else "active")


@supply_app.command("locations")
def locations(gln: Annotated[str | None, typer.Argument(help="One location")] = None,
              org: Annotated[str | None, typer.Option(help="Only this organisation's")] = None,
              home: Path = HomeOption, url: Url = None) -> None:
    """Show registered locations (GLNs): one, or every one (of an organisation)."""
    client = _client(home, url)
    emit(client.location(gln) if gln else {"locations": client.locations(org=org)})


@supply_app.command("captures")
def captures(capture: Annotated[str | None, typer.Argument(help="One capture id")] = None,
             awaiting: Annotated[str | None, typer.Option(help="Only those waiting for this organisation")] = None,
             home: Path = HomeOption, url: Url = None) -> None:
    """Show multi-party EPCIS captures: one, or those with events waiting (for an organisation)."""
    client = _client(home, url)
    emit(client.capture(capture) if capture else {"captures": client.captures(awaiting=awaiting,
                                                                              status="pending")})


@supply_app.command("confirm")
def confirm(capture: str, reject: Annotated[bool, typer.Option("--reject", help="Reject instead")] = False,
            signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Confirm (or reject) your organisation's events of a multi-party EPCIS capture."""
    _write(home, url, signer, "epcis_confirm", capture, approve=not reject)


@epcis_app.command("import")
def epcis_import(document: Path, signer: Signer = "admin", home: Path = HomeOption,
                 url: Url = None) -> None:
    """Capture an EPCIS 2.0 JSON-LD document: your events apply, other members' wait for their confirmation;
    a refusal rolls back the whole document. A document captured before is reported as already captured."""
    text = read_file(document, MAX_DOCUMENT_BYTES).decode("utf-8")
    job = _client(home, url).epcis_capture(_key(home, signer), text)
    emit(job)
    if not job.get("success") and job.get("status") != "already_captured":
        raise typer.Exit(EXIT_TX_FAILED)


@epcis_app.command("export")
def epcis_export(epcs: list[str], out: Annotated[Path | None, typer.Option(help="Write to this file")] = None,
                 home: Path = HomeOption, url: Url = None) -> None:
    """Export the items' histories (with their contents) as an EPCIS 2.0 document."""
    doc = _client(home, url).epcis_export(epcs)
    if out:
        expand(out).write_text(json.dumps(doc, indent=2) + "\n")
        count = len(doc["epcisBody"]["eventList"])
        emit({"events": count, "path": str(expand(out))}, lambda: say(f"wrote {count} events to {out}"))
    else:
        emit(doc)
