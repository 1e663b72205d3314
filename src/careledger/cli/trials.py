"""``careledger trials ...``: clinical trials from the command line, through a node's HTTP API.

Writes are ``trials.*`` transactions signed by ``--as`` (a key of the home's keyring or a key file);
a subject's consent is signed with the study key derived from ``--patient``'s key, never with a
registered key. Documents (the WHO data set, ethics approval, visits, results) are JSON files in
the shapes of docs/trials.md. Wherever a hash is asked for (protocol, consent form, report, event),
give a file (its SHA-256 is sent; the file stays here) or the 64-hex SHA-256 itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import (
    EXIT_NEGATIVE,
    HomeOption,
    emit,
    expand,
    fail,
    load_key,
    node_url,
    print_receipt,
    print_table,
    progress,
    read_file,
    say,
)
from careledger.core.errors import Code

trials_app = typer.Typer(help="Clinical trials: registration, sites, consent, enrolment, visits, safety, results.",
                         no_args_is_help=True)
site_app = typer.Typer(help="A trial's sites and investigators.", no_args_is_help=True)
ae_app = typer.Typer(help="Adverse events.", no_args_is_help=True)
safety_app = typer.Typer(help="Expedited safety (SUSAR) reports.", no_args_is_help=True)
results_app = typer.Typer(help="Summary results.", no_args_is_help=True)
trials_app.add_typer(site_app, name="site")
trials_app.add_typer(ae_app, name="ae")
trials_app.add_typer(safety_app, name="safety")
trials_app.add_typer(results_app, name="results")

Signer = Annotated[str, typer.Option("--as", help="Signing key: a name in HOME/keys or a key file path.")]
Url = Annotated[str | None, typer.Option(help="Node API URL; default: the home's configured API.")]
Trial = Annotated[str, typer.Argument(help="The trial id (trl-…).")]
HashInput = Annotated[str, typer.Option(help="A file (its SHA-256 is sent) or a SHA-256 in hex.")]
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _client(home: Path, url: str | None) -> Any:
    from careledger.client.trials import TrialsClient

    return TrialsClient(node_url(home, url))


def _digest(value: str) -> str:
    """A SHA-256: the value itself when it is 64 hex digits, else the hash of the file it names."""
    if _HEX64.match(value):
        return value
    return hashlib.sha256(read_file(Path(value), MAX_DOCUMENT_BYTES)).hexdigest()


def _json_file(path: Path) -> Any:
    try:
        return json.loads(read_file(path, MAX_DOCUMENT_BYTES))
    except ValueError as exc:
        fail(f"{path} is not JSON: {exc}", name=Code.MALFORMED_ENCODING.name, code=int(Code.MALFORMED_ENCODING))


def _investigators(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, _, role = v.partition(":")
        if not role:
            fail(f"--investigator {v!r}: give KEY:ROLE (principal_investigator, sub_investigator or "
                 "study_coordinator)")
        out.append((key, role))
    return out


Investigators = Annotated[list[str], typer.Option("--investigator", help="KEY:ROLE (repeatable): a member's public "
                                                  "key and principal_investigator, sub_investigator or "
                                                  "study_coordinator.")]


# -- registration and protocol ----------------------------------------------------------------------------------

@trials_app.command("register")
def register(dataset: Annotated[Path, typer.Argument(help="The WHO data set (JSON).")], protocol: HashInput,
             consent_form: HashInput,
             randomisation: Annotated[Path | None, typer.Option(help="The allocation commitment (JSON {root, "
                                                                     "strata: [{name, slots}]}).")] = None,
             signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Register a trial: the WHO data set, protocol version 1 and, if randomised, the allocation commitment."""
    from careledger.contracts.trials.allocation import AllocationCommitment

    commitment = None
    if randomisation is not None:
        doc = _json_file(randomisation)
        try:
            commitment = AllocationCommitment(bytes.fromhex(doc["root"]),
                                              tuple((s["name"], int(s["slots"])) for s in doc["strata"]))
        except (KeyError, TypeError, ValueError):
            fail(f"{randomisation} is not {{root, strata: [{{name, slots}}]}}", name=Code.MALFORMED_ENCODING.name,
                 code=int(Code.MALFORMED_ENCODING))
    doc, protocol_hash, form_hash = _json_file(dataset), _digest(protocol), _digest(consent_form)
    result = _client(home, url).register(load_key(home, signer), doc, protocol_hash, form_hash,
                                         randomisation=commitment)
    print_receipt("trials.register", result)


@trials_app.command("amend")
def amend(trial: Trial, version: Annotated[int, typer.Option(help="The new protocol version (the current + 1).")],
          protocol: HashInput, consent_form: HashInput,
          reason: Annotated[str, typer.Option(help="Why the protocol changes.")],
          reconsent: Annotated[bool, typer.Option("--reconsent/--no-reconsent", help="Whether subjects must consent "
                                                  "to this version before more visits.")] = True,
          signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Amend the protocol: a new version with its document and consent-form hashes and a reason."""
    protocol_hash, form_hash = _digest(protocol), _digest(consent_form)
    result = _client(home, url).amend_protocol(load_key(home, signer), trial, version, protocol_hash, form_hash,
                                               reason, reconsent)
    print_receipt("trials.amend_protocol", result)


# -- sites ------------------------------------------------------------------------------------------------------

@site_app.command("add")
def site_add(trial: Trial, org: Annotated[str, typer.Argument(help="The site's organisation.")],
             ethics: Annotated[Path, typer.Option(help="The site's ethics approval (JSON {status, committee, "
                                                       "contact, approval_date, reference}).")],
             investigator: Investigators, signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Add a site: a member organisation with its ethics approval and investigators."""
    approval, investigators = _json_file(ethics), _investigators(investigator)
    result = _client(home, url).add_site(load_key(home, signer), trial, org, approval, investigators)
    print_receipt("trials.add_site", result)


@site_app.command("status")
def site_status(trial: Trial, org: Annotated[str, typer.Argument(help="The site's organisation.")],
                status: Annotated[str, typer.Argument(help="active, suspended or closed (final).")],
                reason: Annotated[str, typer.Option(help="Why.")], signer: Signer = "admin",
                home: Path = HomeOption, url: Url = None) -> None:
    """Activate, suspend or close a site."""
    result = _client(home, url).set_site_status(load_key(home, signer), trial, org, status, reason)
    print_receipt("trials.set_site_status", result)


@site_app.command("investigators")
def site_investigators(trial: Trial, org: Annotated[str, typer.Argument(help="The site's organisation.")],
                       investigator: Investigators, signer: Signer = "admin", home: Path = HomeOption,
                       url: Url = None) -> None:
    """Replace a site's investigators (the sponsor, or an admin of the site)."""
    investigators = _investigators(investigator)
    result = _client(home, url).set_site_investigators(load_key(home, signer), trial, org, investigators)
    print_receipt("trials.set_site_investigators", result)


# -- subjects ---------------------------------------------------------------------------------------------------

@trials_app.command("consent")
def consent(trial: Trial, patient: Annotated[str, typer.Option(help="The patient's key (a name in HOME/keys or a "
                                                                     "key file): the study key derives from it.")],
            consent_form: Annotated[str | None, typer.Option(help="A file (its SHA-256 is sent) or a SHA-256 in "
                                                                  "hex; not with --withdraw.")] = None,
            version: Annotated[int | None, typer.Option(help="The protocol version consented to (default: the "
                                                             "current one).")] = None,
            withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw consent instead.")] = False,
            home: Path = HomeOption, url: Url = None) -> None:
    """A subject consents (or re-consents, or withdraws), signing with her study key for this trial."""
    from careledger.client.trials import study_key

    client = _client(home, url)
    key = study_key(load_key(home, patient), trial)
    if withdraw:
        print_receipt("trials.withdraw_consent", client.withdraw_consent(key, trial))
        return
    if consent_form is None:
        fail("give --consent-form (the form signed), or --withdraw")
    current = version if version is not None else int(client.protocols(trial)["current"])
    print_receipt("trials.consent", client.consent(key, trial, current, _digest(consent_form)))


@trials_app.command("enrol")
def enrol(trial: Trial, subject: Annotated[str, typer.Argument(help="The subject's pseudonym (sp-…).")],
          site: Annotated[str, typer.Option(help="The site enrolling.")],
          allocation: Annotated[Path | None, typer.Option(help="The sponsor's reveal of the next allocation (JSON "
                                                               "{stratum, index, proof, sealed | arm and salt}).")]
          = None, signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Enrol a consented subject at a site, with the next committed allocation of a randomised trial."""
    from careledger.contracts.trials.allocation import RevealedAllocation

    reveal = None
    if allocation is not None:
        doc = _json_file(allocation)
        try:
            path = tuple(bytes.fromhex(p) for p in doc["proof"])
            salt = bytes.fromhex(doc["salt"]) if doc.get("salt") else None
            sealed = bytes.fromhex(doc["sealed"]) if doc.get("sealed") else None
            reveal = RevealedAllocation(doc["stratum"], int(doc["index"]), path, doc.get("arm"), salt, sealed)
        except (KeyError, TypeError, ValueError):
            fail(f"{allocation} is not an allocation reveal", name=Code.MALFORMED_ENCODING.name,
                 code=int(Code.MALFORMED_ENCODING))
    result = _client(home, url).enrol(load_key(home, signer), trial, site, subject, reveal)
    print_receipt("trials.enrol", result)


@trials_app.command("visits")
def visits(trial: Trial, site: Annotated[str, typer.Option(help="The site anchoring.")],
           file: Annotated[Path, typer.Option("--file", help="The visits (JSON list of {subject, visit, version?, "
                                                             "resources: [{type, commitment}], reason?}).")],
           signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Anchor visits' data commitments (one leaf each); up to 256 visits per transaction."""
    from careledger.contracts.trials.handlers_conduct import MAX_VISITS_PER_TX

    entries = _json_file(file)
    if type(entries) is not list or not entries:
        fail(f"{file} is not a non-empty JSON list of visits")
    client, key = _client(home, url), load_key(home, signer)
    results = []
    with progress("anchoring visits", len(entries)) as update:
        for start in range(0, len(entries), MAX_VISITS_PER_TX):
            results.append(client.record_visits(key, trial, site, entries[start:start + MAX_VISITS_PER_TX]))
            update(start + len(entries[start:start + MAX_VISITS_PER_TX]), None)
            if results[-1]["receipt"]["code"] != 0:
                break
    failed = next((r for r in results if r["receipt"]["code"] != 0), None)
    if failed is not None or len(results) == 1:
        print_receipt("trials.record_visits", failed or results[0])
        return
    last = results[-1]["receipt"]["result"]
    emit({"transactions": results, "visits": len(entries)},
         lambda: say(f"[green]anchored[/] {len(entries):,} visits in {len(results)} transactions; the tree has "
                     f"{last['size']:,} leaves"))


@trials_app.command("lock")
def lock(trial: Trial, root: Annotated[str | None, typer.Option(help="The anchor root you computed (hex); the lock "
                                                                  "is refused if the ledger's differs.")] = None,
         signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Lock the database: the anchor tree's root and size are recorded."""
    print_receipt("trials.lock", _client(home, url).lock(load_key(home, signer), trial, root))


@trials_app.command("unblind")
def unblind(trial: Trial, file: Annotated[Path, typer.Option("--file", help="JSON list of {subject, arm, salt}.")],
            signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """After lock, reveal a masked trial's allocations (checked against the sealed ones)."""
    entries = _json_file(file)
    try:
        allocations = [(e["subject"], e["arm"], bytes.fromhex(e["salt"])) for e in entries]
    except (KeyError, TypeError, ValueError):
        fail(f"{file} is not a JSON list of {{subject, arm, salt}}", name=Code.MALFORMED_ENCODING.name,
             code=int(Code.MALFORMED_ENCODING))
    print_receipt("trials.unblind", _client(home, url).unblind(load_key(home, signer), trial, allocations))


# -- safety and results -----------------------------------------------------------------------------------------

@ae_app.command("report")
def ae_report(trial: Trial, site: Annotated[str, typer.Option(help="The reporting site.")],
              subject: Annotated[str, typer.Option(help="The subject's pseudonym (sp-…).")],
              event: Annotated[str, typer.Option(help="The FHIR AdverseEvent's salted commitment in the vault (hex), "
                                                      "or a file to hash.")],
              expectedness: Annotated[str, typer.Option(help="expected or unexpected.")],
              causality: Annotated[str, typer.Option(help="related or not_related.")],
              seriousness: Annotated[list[str] | None, typer.Option(help="A seriousness criterion met (repeatable): "
                                                                         "death, life_threatening, hospitalisation, "
                                                                         "disability, congenital_anomaly, "
                                                                         "medically_important.")] = None,
              signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Record an adverse event; a SUSAR's ICH E2A deadlines follow from the block's time."""
    commitment = _digest(event)
    result = _client(home, url).report_adverse_event(load_key(home, signer), trial, site, subject, commitment,
                                                     seriousness or [], expectedness, causality)
    print_receipt("trials.report_adverse_event", result)


@safety_app.command("report")
def safety_report(trial: Trial, event: Annotated[str, typer.Argument(help="The adverse event's id (ae-…).")],
                  report: HashInput,
                  stage: Annotated[str, typer.Option(help="initial, or complete (fatal or life-threatening SUSARs)")]
                  = "initial", signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Record that an expedited SUSAR report went to the regulators (its hash); late ones are marked."""
    digest = _digest(report)
    result = _client(home, url).submit_safety_report(load_key(home, signer), trial, event, stage, digest)
    print_receipt("trials.submit_safety_report", result)


@results_app.command("submit")
def results_submit(trial: Trial, file: Annotated[Path, typer.Option("--file", help="JSON {outcomes, omitted?, "
                                                                                    "summary, dataset_hash}.")],
                   signer: Signer = "admin", home: Path = HomeOption, url: Url = None) -> None:
    """Submit summary results against the registered outcomes; outcome switching is flagged publicly."""
    doc = _json_file(file)
    if type(doc) is not dict or not {"outcomes", "summary", "dataset_hash"} <= doc.keys():
        fail(f"{file} is not {{outcomes, omitted?, summary, dataset_hash}}", name=Code.MALFORMED_ENCODING.name,
             code=int(Code.MALFORMED_ENCODING))
    dataset_hash = _digest(doc["dataset_hash"])
    result = _client(home, url).submit_results(load_key(home, signer), trial, doc["outcomes"], doc["summary"],
                                               dataset_hash, doc.get("omitted", []))
    print_receipt("trials.submit_results", result)


# -- reads ------------------------------------------------------------------------------------------------------

@trials_app.command("show")
def show(trial: Annotated[str | None, typer.Argument(help="The trial id; without it, every trial.")] = None,
         history: Annotated[bool, typer.Option("--history", help="Also every registration version and the "
                                                                 "COMPare baseline.")] = False,
         home: Path = HomeOption, url: Url = None) -> None:
    """A trial's registration, status, protocol versions and sites (or the list of trials)."""
    client = _client(home, url)
    if trial is None:
        listing = client.trial_list()
        emit(listing, lambda: print_table(
            ["trial", "sponsor", "title", "recruitment", "enrolled", "locked", "results"],
            [[t["trial"], t["sponsor"], t["public_title"], t["recruitment"], f"{t['enrolled']}/{t['target']}",
              t["locked"], t["results"]] for t in listing["trials"]]))
        return
    doc: dict[str, Any] = {"registration": client.registration(trial), "protocols": client.protocols(trial),
                           "sites": client.sites(trial)}
    if history:
        doc["history"] = client.registrations(trial)

    def human() -> None:
        reg, status = doc["registration"], doc["registration"]["status"]
        ds = reg["dataset"]
        print_table(["field", "value"], [
            ["trial", reg["trial"]], ["title", ds["public_title"]], ["sponsor", reg["sponsor"]],
            ["registered", f"height {reg['registered_height']}, version {reg['version']}"],
            ["recruitment", f"{status['recruitment']}: {status['enrolled']} of {status['target']} enrolled"],
            ["design", f"{ds['design']['allocation']}, masking {ds['design']['masking']}"],
            ["primary outcomes", "; ".join(f"{o['id']} {o['measure']} ({o['time_frame']})"
                                           for o in ds["primary_outcomes"])],
            ["protocol", f"version {status['protocol_version']} (re-consent from {status['reconsent_version']})"],
            ["lock", "—" if status["lock"] is None else f"root {status['lock']['root']} over "
                                                        f"{status['lock']['size']} anchors"]])
        print_table(["protocol", "document", "reason", "re-consent", "height"],
                    [[p["version"], p["document_hash"], p["reason"] or "", p["reconsent_required"], p["height"]]
                     for p in doc["protocols"]["versions"]])
        print_table(["site", "status", "ethics", "investigators"],
                    [[s["org"], s["status"], s["ethics"].get("reference") or s["ethics"]["committee"],
                      ", ".join(f"{i['key']} ({i['role']})" for i in s["investigators"])]
                     for s in doc["sites"]["sites"]])
        if history:
            base = doc["history"]["baseline"]["version"]
            print_table(["registration", "height", "reason", "baseline"],
                        [[v["version"], v["height"], v["reason"] or "", "yes" if v["version"] == base else ""]
                         for v in doc["history"]["versions"]])

    emit(doc, human)


@trials_app.command("export")
def export(trial: Trial, out: Annotated[Path | None, typer.Option(help="Write the resource to this file.")] = None,
           home: Path = HomeOption, url: Url = None) -> None:
    """Export the registration as a FHIR R4 ResearchStudy carrying every WHO data set item."""
    doc = _client(home, url).research_study(trial)
    if out is None:
        emit(doc)
        return
    path = expand(out)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    emit({"path": str(path), "resourceType": doc["resourceType"]}, lambda: say(f"wrote ResearchStudy to {out}"))


@trials_app.command("overdue")
def overdue(trial: Annotated[str | None, typer.Option(help="One trial only (default: every trial).")] = None,
            as_of_ms: Annotated[int | None, typer.Option(help="Derive report states at this time (ms since the "
                                                              "epoch; default: the latest block's).")] = None,
            home: Path = HomeOption, url: Url = None) -> None:
    """SUSARs whose expedited report is overdue, at the latest committed block's time (the regulator's list)."""
    client = _client(home, url)
    if trial is None:
        doc = client.overdue(as_of_ms)
    else:
        doc = client.safety(trial, as_of_ms)
        doc["susars"] = [s for s in doc["susars"] if s["overdue"]]
    emit(doc, lambda: print_table(["trial", "event", "site", "category", "initial", "complete", "initial due"],
                                  [[s["trial"], s["event"], s["site"], s["category"], s["initial"], s["complete"],
                                    s["initial_due_ms"]] for s in doc["susars"]],
                                  title=f"as of {doc['as_of_ms']}" + (" (forecast)" if doc["forecast"] else "")))


@trials_app.command("flags")
def flags(trial: Trial, home: Path = HomeOption, url: Url = None) -> None:
    """The outcome-switching flags of a trial's results (COMPare's rules), declared or silent."""
    doc = _client(home, url).results(trial)
    emit({"trial": trial, "flags": doc["flags"], "silent": doc["silent"]}, lambda: print_table(
        ["kind", "outcome", "declared", "reason", "detail"],
        [[f["kind"], f["outcome"] or "", f["declared"], f["reason"] or "", f["detail"]] for f in doc["flags"]]))


@trials_app.command("proof")
def proof(trial: Trial, subject: Annotated[str, typer.Argument(help="The subject's pseudonym (sp-…).")],
          visit: Annotated[str, typer.Argument(help="The visit id.")],
          version: Annotated[int | None, typer.Option(help="The visit version (default: the latest).")] = None,
          size: Annotated[int | None, typer.Option(help="Prove in the tree of this many leaves (default: the "
                                                        "locked tree, else the tree now).")] = None,
          resources: Annotated[Path | None, typer.Option(help="What your vault holds for the visit (JSON "
                                                              "[[type, commitment], ...]): checked against the "
                                                              "anchored leaf.")] = None,
          home: Path = HomeOption, url: Url = None) -> None:
    """Fetch a visit's inclusion proof and check it (exit 4 when it does not verify or the data differ)."""
    from careledger.core.merkle import ProofError
    from careledger.trials.anchor_index import check_anchor_proof

    doc = _client(home, url).anchor_proof(trial, subject, visit, version, size)
    problem = None
    try:
        check_anchor_proof(doc)
    except ProofError as exc:
        problem = f"the audit path does not lead to the root: {exc}"
    if problem is None and resources is not None:
        mine = [list(r) for r in _json_file(resources)]
        if mine != doc["leaf"]["resources"]:
            problem = "the vault's commitments differ from the anchored ones: the data changed after anchoring"
    result = {**doc, "valid": problem is None, "problem": problem}

    def human() -> None:
        if problem is None:
            say(f"[green]proof valid[/]: {visit} v{doc['version']} of {subject} is leaf {doc['leaf_index']} of "
                f"{doc['tree_size']} under root {doc['root']} ({doc['against']})")
        else:
            say(f"[bold red]proof invalid[/]: {problem}")

    emit(result, human)
    if problem is not None:
        raise typer.Exit(EXIT_NEGATIVE)
