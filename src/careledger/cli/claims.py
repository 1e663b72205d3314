"""``careledger claims``: coverage, eligibility, plans, edit tables, and a claim's life from submission to EOB.

Every command talks to a running node's HTTP API (``--url``, default: the home's configured API) and signs
as a key of the home's keyring (``--as NAME``). Documents (a FHIR Claim, a Coverage) go to the desk of the
node that hosts the custodian's vault (``--gateway`` overrides where that is). ``verify-adjudication``
re-runs an adjudication from its package and exits 4 when it does not reproduce what the ledger holds.
"""

from __future__ import annotations

import json
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
    note,
    print_receipt,
    print_table,
    read_file,
    say,
)
from careledger.core.errors import Code

claims_app = typer.Typer(help="Insurance claims: coverage, plans, edit tables, claims, adjudication, EOB.",
                         no_args_is_help=True)
coverage_app = typer.Typer(help="Coverages of pseudonymous beneficiaries (insurers).", no_args_is_help=True)
plan_app = typer.Typer(help="Plan benefit rules, versioned on the ledger (insurers).", no_args_is_help=True)
table_app = typer.Typer(help="Edit tables (NCCI-style pairs, units per date) approved by the consortium.",
                        no_args_is_help=True)
claims_app.add_typer(coverage_app, name="coverage")
claims_app.add_typer(plan_app, name="plan")
claims_app.add_typer(table_app, name="table")

AsKey = Annotated[str, typer.Option("--as", help="Sign as this key of the home's keyring (HOME/keys/NAME.json).")]
Url = Annotated[str | None, typer.Option(help="Node API URL (default: the home's configured API).")]
Gateway = Annotated[str | None, typer.Option(help="URL of the node hosting the custodian's vault (default: the "
                                                  "organisation's api on the ledger, else --url).")]
Patient = Annotated[str | None, typer.Option(help="Patient pseudonym (default: the signing key's own).")]
Claim = Annotated[str, typer.Argument(help="Claim id (clm-...).")]
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024


def _client(home: Path, who: str, url: str | None, gateways: dict[str, str] | None = None) -> Any:
    from careledger.client import Client
    from careledger.client.claims import ClaimsClient

    return ClaimsClient(Client(node_url(home, url)), load_key(home, who), gateways=gateways)


def _json_file(path: Path) -> Any:
    try:
        return json.loads(read_file(path, MAX_DOCUMENT_BYTES))
    except ValueError:
        fail(f"{path} is not JSON", name=Code.BAD_REQUEST.name, code=int(Code.BAD_REQUEST))


def _day(text: str | None) -> int | None:
    if text is None:
        return None
    from careledger.claims.content import day_of

    try:
        return day_of(text)
    except ValueError:
        fail(f"{text!r} is not a date (YYYY-MM-DD)", name=Code.BAD_REQUEST.name, code=int(Code.BAD_REQUEST))


def _done(label: str, result: dict[str, Any], line: Any) -> None:
    """A committed transaction: ``line(result)`` when it succeeded; the receipt and exit 3 when refused."""
    if result["receipt"]["code"]:
        print_receipt(label, result)
    emit(result, lambda: say(line(result["receipt"]["result"])))


# -- coverage ---------------------------------------------------------------------------------------------------

@coverage_app.command("register")
def coverage_register(file: Annotated[Path, typer.Argument(help="A FHIR R4 Coverage (JSON).")],
                      insurer: Annotated[str, typer.Option(help="The insurer organisation.")],
                      patient: Annotated[str, typer.Option(help="The beneficiary's pseudonym.")], who: AsKey,
                      gateway: Gateway = None, home: Path = HomeOption, url: Url = None) -> None:
    """Register a coverage: only plan, period, order and status reach the ledger; the Coverage (member id,
    subscriber id) stays in the insurer's vault behind its commitment."""
    cc = _client(home, who, url, {insurer: gateway} if gateway else None)
    _done("claims.register_coverage", cc.register_coverage(insurer, patient, read_file(file, MAX_DOCUMENT_BYTES)),
          lambda r: f"[green]coverage[/] {r['coverage']} registered")


@coverage_app.command("update")
def coverage_update(coverage: Annotated[str, typer.Argument(help="Coverage id (cov-...).")],
                    file: Annotated[Path, typer.Argument(help="The Coverage's new version (FHIR R4, JSON).")],
                    insurer: Annotated[str, typer.Option(help="The insurer organisation.")],
                    patient: Annotated[str, typer.Option(help="The beneficiary's pseudonym.")], who: AsKey,
                    gateway: Gateway = None, home: Path = HomeOption, url: Url = None) -> None:
    """A coverage's new version: status (active, cancelled), end and payer order."""
    cc = _client(home, who, url, {insurer: gateway} if gateway else None)
    _done("claims.update_coverage",
          cc.update_coverage(coverage, insurer, patient, read_file(file, MAX_DOCUMENT_BYTES)),
          lambda r: f"[green]coverage[/] {r['coverage']} version {r['version']}: {r['status']}")


@coverage_app.command("show")
def coverage_show(who: AsKey, patient: Patient = None, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's coverages (to the patient or a delegate; an insurer's officers see their own)."""
    from careledger.claims.content import date_of

    cc = _client(home, who, url)
    rows = cc.coverages(patient)
    emit(rows, lambda: print_table(["coverage", "insurer", "plan", "start", "end", "order", "status"], (
        [c["id"], c["insurer"], c["plan"], date_of(c["start_day"]),
         "" if c["end_day"] is None else date_of(c["end_day"]), c["order"], c["status"]] for c in rows)))


@claims_app.command("eligibility")
def eligibility(who: AsKey, patient: Patient = None,
                day: Annotated[str | None, typer.Option(help="Service date, YYYY-MM-DD (default: today).")] = None,
                insurer: Annotated[str | None, typer.Option(help="Only this insurer.")] = None,
                home: Path = HomeOption, url: Url = None) -> None:
    """Is the patient covered on DAY, and by whom first: FHIR CoverageEligibilityResponse from the ledger."""
    cc = _client(home, who, url)
    doc = cc.eligibility(patient, _day(day), insurer)

    def human() -> None:
        say(f"{'[green]covered[/]' if doc['covered'] else '[red]not covered[/]'} on {doc['date']}; "
            f"primary: {doc['primary'] or 'none'}")
        for response in doc["responses"]:
            for ins in response["insurance"]:
                say(f"  {response['insurer']['identifier']['value']}: {ins['coverage']['identifier']['value']} "
                    f"{'in force' if ins['inforce'] else 'not in force'}")
    emit(doc, human)


# -- plans and edit tables ---------------------------------------------------------------------------------------

@plan_app.command("register")
def plan_register(file: Annotated[Path, typer.Argument(help="The plan's rules document, or a plan file "
                                                            "{insurer, plan, version, effective_day, rules}.")],
                  insurer: Annotated[str, typer.Option(help="The insurer organisation.")],
                  plan: Annotated[str, typer.Option(help="Plan key (Coverage.class of type plan).")],
                  version: Annotated[int, typer.Option(help="The plan's next version number.")],
                  effective: Annotated[str, typer.Option(help="First day it applies, YYYY-MM-DD (not before "
                                                              "today).")],
                  who: AsKey, home: Path = HomeOption, url: Url = None) -> None:
    """Register the next version of a plan's benefit rules (deductible, co-pay, co-insurance, limits, codes)."""
    doc = _json_file(file)
    rules = doc["rules"] if isinstance(doc, dict) and "rules" in doc else doc
    day = _day(effective)
    assert day is not None
    cc = _client(home, who, url)
    _done("claims.register_plan", cc.register_plan(insurer, plan, version, day, rules),
          lambda r: f"[green]plan[/] {r['plan']} version {r['version']} digest {r['digest']}")


@plan_app.command("show")
def plan_show(insurer: Annotated[str, typer.Argument(help="The insurer organisation.")],
              plan: Annotated[str, typer.Argument(help="Plan key.")], home: Path = HomeOption,
              url: Url = None) -> None:
    """Every version of a plan, with its digest and rules (plans are public rule data)."""
    from careledger.claims.content import date_of
    from careledger.client import Client

    with Client(node_url(home, url)) as client:
        doc = client.request("GET", f"/v1/claims/plans/{insurer}/{plan}")
    emit(doc, lambda: print_table(["version", "effective", "digest", "deductible", "currency", "categories"], (
        [v["version"], date_of(v["effective_day"]), v["digest"], v["rules"]["deductible"], v["rules"]["currency"],
         len(v["rules"]["categories"])] for v in doc["versions"])))


@table_app.command("propose")
def table_propose(who: AsKey, file: Annotated[Path | None, typer.Argument(
                      help="An edit table file (default: the synthetic set shipped with CareLedger).")] = None,
                  source: Annotated[str, typer.Option(help="synthetic, cms or payer.")] = "synthetic",
                  effective: Annotated[str | None, typer.Option(help="First day it applies, YYYY-MM-DD (default: "
                                                                     "the table's own).")] = None,
                  home: Path = HomeOption, url: Url = None) -> None:
    """Propose an edit-table version (name, version, effective day, digest) for the consortium's vote."""
    from careledger.claims.edits import load_edit_tables, synthetic_tables

    tables = synthetic_tables() if file is None else load_edit_tables(expand(file))
    day = _day(effective)
    cc = _client(home, who, url)
    _done("claims.propose_table", cc.propose_table(tables.name, tables.version,
                                                   tables.effective_day if day is None else day, tables.digest, source),
          lambda r: f"[green]edit table[/] {r['name']} {r['version']}: {r['status']} (digest {tables.digest})")


@table_app.command("vote")
def table_vote(name: Annotated[str, typer.Argument(help="Edit table name.")],
               version: Annotated[str, typer.Argument(help="Edit table version.")], who: AsKey,
               approve: Annotated[bool, typer.Option("--yes/--no", help="Approve or reject.")] = True,
               home: Path = HomeOption, url: Url = None) -> None:
    """An organisation admin's vote; more than 2/3 of the organisations approve a version."""
    cc = _client(home, who, url)
    _done("claims.vote_table", cc.vote_table(name, version, approve),
          lambda r: f"[green]voted[/] {r['name']} {r['version']}: {r['status']} ({r['yes']} yes, {r['no']} no)")


# -- a claim's life -----------------------------------------------------------------------------------------------

@claims_app.command("submit")
def submit(file: Annotated[Path, typer.Argument(help="A FHIR R4 Claim (professional or institutional), JSON.")],
           provider: Annotated[str, typer.Option(help="The provider organisation (the custodian of the encounter).")],
           patient: Annotated[str, typer.Option(help="The patient's pseudonym.")],
           encounter: Annotated[str, typer.Option(help="The Encounter's record id at the provider.")],
           coverage: Annotated[str, typer.Option(help="Coverage id (cov-...).")],
           insurer: Annotated[str, typer.Option(help="The insurer organisation.")], who: AsKey,
           replaces: Annotated[str | None, typer.Option(help="The claim this one replaces.")] = None,
           prior_payer_claim: Annotated[str | None, typer.Option(
               help="The primary payer's claim (a secondary claim, coordination of benefits).")] = None,
           gateway: Gateway = None, home: Path = HomeOption, url: Url = None) -> None:
    """Submit a claim through the provider's desk: stored in its vault, its commitment and fingerprints on
    the ledger; never a code, diagnosis or amount."""
    cc = _client(home, who, url, {provider: gateway} if gateway else None)
    result = cc.submit(provider, patient, encounter, coverage, insurer, read_file(file, MAX_DOCUMENT_BYTES),
                       replaces=replaces, prior_payer_claim=prior_payer_claim)
    _done("claims.submit", result, lambda r: f"[green]claim[/] {r['claim']}: {r['status']}"
          + (f" [yellow]flags: {', '.join(r['flags'])}[/]" if r["flags"] else ""))


@claims_app.command("status")
def status(claim: Claim, who: AsKey, home: Path = HomeOption, url: Url = None) -> None:
    """A claim's status, adjudications, payments, appeals and flags (patient, provider or insurer)."""
    cc = _client(home, who, url)
    doc = cc.status(claim)

    def human() -> None:
        c = doc["claim"]
        say(f"{c['id']}  [bold]{c['status']}[/]  {c['provider']} → {c['insurer']}  patient {c['patient']}  "
            f"encounter {c['encounter']} ({doc['encounter_state']})")
        if c["flags"]:
            say(f"[yellow]flags[/]: {', '.join(c['flags'])}")
        print_table(["n", "by", "outcome", "line codes", "plan", "result commitment"], (
            [a["n"], "ledger" if a["by"] == "ledger" else a["by"][:16], a["outcome"],
             "; ".join(f"{x['sequence']}:{','.join(x['codes']) or '-'}" for x in a["lines"]),
             f"{a['plan']} v{a['plan_version']}" if a["plan"] else "", a["result_commitment"] or ""]
            for a in doc["adjudications"]))
        for p in doc["payments"]:
            say(f"paid (n={p['n']}) at block {p['height']}: remittance {p['remittance']}")
    emit(doc, human)


@claims_app.command("adjudicate")
def adjudicate(claim: Claim, who: AsKey, gateway: Gateway = None, home: Path = HomeOption, url: Url = None) -> None:
    """The insurer's node fetches the claim and its encounter through the provider's gateway (consent
    HPAYMT, audited), checks and adjudicates it; the officer signs the result. A claim whose content does
    not match its commitment is refused and flagged."""
    from careledger.client.claims import ClaimFlagged

    cc = _client(home, who, url)
    if gateway:
        cc.records.gateway_urls[cc.status(claim)["claim"]["insurer"]] = gateway
    try:
        result = cc.adjudicate(claim)
    except ClaimFlagged as exc:
        note(f"flagged {exc.flag['kind']} on {exc.flag['claim']} (claims.flag at block "
             f"{exc.flag_result.get('height')})")
        raise
    adj = result["adjudication"]
    _done("claims.adjudicate", result, lambda r: f"[green]{adj['outcome']}[/] {claim}: submitted "
          f"{adj['totals']['submitted']} benefit {adj['totals']['benefit']} (minor units, {adj['currency']})")


@claims_app.command("pay")
def pay(claim: Claim, who: AsKey, remittance: Annotated[str | None, typer.Option(
        help="Commitment to the remittance (default: the latest ClaimResponse's anchor).")] = None,
        home: Path = HomeOption, url: Url = None) -> None:
    """Record a payment after an approved or partial adjudication (no amount on the ledger)."""
    cc = _client(home, who, url)
    _done("claims.pay", cc.pay(claim, remittance), lambda r: f"[green]paid[/] {r['claim']} (payment {r['n']})")


@claims_app.command("appeal")
def appeal(claim: Claim, who: AsKey, reason: Annotated[str, typer.Option(
           help="coding, coverage, coordination_of_benefits, medical_necessity, units or other.")],
           home: Path = HomeOption, url: Url = None) -> None:
    """Appeal an adjudication (the provider, the patient or a delegate)."""
    cc = _client(home, who, url)
    _done("claims.appeal", cc.appeal(claim, reason), lambda r: f"[green]appealed[/] {r['claim']} (appeal {r['n']})")


@claims_app.command("void")
def void(claim: Claim, who: AsKey, reason: Annotated[str, typer.Option(
         help="entered_in_error, duplicate, not_rendered or other.")], home: Path = HomeOption,
         url: Url = None) -> None:
    """Void a claim (the provider); its records stay."""
    cc = _client(home, who, url)
    _done("claims.void", cc.void(claim, reason), lambda r: f"[green]voided[/] {r['claim']}")


@claims_app.command("flags")
def flags(insurer: Annotated[str, typer.Option(help="The insurer organisation.")], who: AsKey,
          since_height: Annotated[int, typer.Option(help="Only flags from this height on.")] = 0,
          home: Path = HomeOption, url: Url = None) -> None:
    """An insurer's flag feed: phantom claims, duplicates across payers, mismatches (its officers)."""
    cc = _client(home, who, url)
    rows = cc.flags(insurer, since_height)
    emit(rows, lambda: print_table(["block", "claim", "kind", "other claim", "other insurer", "by"], (
        [f["height"], f["claim"], f["kind"], f["other_claim"], f["other_insurer"], f["by"][:16]] for f in rows)))


@claims_app.command("verify-adjudication")
def verify_adjudication(claim: Claim, who: AsKey,
                        n: Annotated[int | None, typer.Option(help="Which adjudication (default: the latest).")]
                        = None,
                        package: Annotated[Path | None, typer.Option(
                            help="The adjudication package as a file (an auditor's copy); default: read it "
                                 "through the insurer's gateway.")] = None,
                        tables: Annotated[Path | None, typer.Option(
                            help="The edit table file the adjudication names (default: the synthetic set).")] = None,
                        save: Annotated[Path | None, typer.Option(help="Also write the package to this file.")]
                        = None,
                        purpose: Annotated[str, typer.Option(help="Purpose of the read (HPAYMT for a provider "
                                                                  "under the patient's consent).")] = "PATRQT",
                        home: Path = HomeOption, url: Url = None) -> None:
    """Re-run an adjudication from its package with the plan version and edit table the ledger names;
    exit 0 when it reproduces the ledger's commitments and the result sent, 4 with the differences."""
    from careledger.claims.coverage import PlanRules
    from careledger.claims.edits import load_edit_tables, synthetic_tables
    from careledger.claims.package import AdjudicationPackage, rerun

    cc = _client(home, who, url)
    doc = cc.status(claim)
    done = [a for a in doc["adjudications"] if a["result_commitment"] is not None]
    record = done[-1] if n is None and done else next((a for a in done if a["n"] == n), None)
    if record is None:
        fail(f"claim {claim} has no adjudication by its insurer{'' if n is None else f' numbered {n}'}",
             name=Code.NOT_FOUND.name, code=int(Code.NOT_FOUND))
    if package is not None:
        pkg = AdjudicationPackage.from_json(_json_file(package))
    else:
        pkg = AdjudicationPackage.from_binary(cc.adjudication_document(claim, "package", record["n"], purpose).resource)
    if save is not None:
        expand(save).write_text(json.dumps(pkg.to_json(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    plans = cc.plan(doc["claim"]["insurer"], record["plan"])
    version = next(v for v in plans["versions"] if v["version"] == record["plan_version"])
    plan = PlanRules.from_json(version)
    edit_tables = None
    if record["edit_set"] is not None:
        edit_tables = synthetic_tables() if tables is None else load_edit_tables(expand(tables))
    outcome = rerun(pkg, plan, edit_tables, record).to_json()
    outcome.update(claim=claim, n=record["n"])

    def human() -> None:
        if outcome["ok"]:
            say(f"[green]reproduced[/]: adjudication {record['n']} of {claim} gives the ledger's input and result "
                f"commitments ({outcome['outcome']}, benefit {outcome['totals']['benefit']})")
            return
        say(f"[bold red]does not reproduce[/]: adjudication {record['n']} of {claim}")
        for key in ("input_matches", "result_matches", "plan_matches", "tables_match"):
            say(f"  {key}: {outcome[key]}")
        for d in outcome["differences"]:
            say(f"  {d['path']}: recorded {d['recorded']!r}, recomputed {d['recomputed']!r}")
    emit(outcome, human)
    if not outcome["ok"]:
        raise typer.Exit(EXIT_NEGATIVE)


@claims_app.command("eob")
def eob(claim: Claim, who: AsKey, n: Annotated[int | None, typer.Option(
        help="Which adjudication (default: the latest).")] = None, home: Path = HomeOption, url: Url = None) -> None:
    """The patient's ExplanationOfBenefit (CARIN Blue Button shape), read through the insurer's gateway and
    checked against its ledger anchor; printed as FHIR JSON (amounts exactly as issued) with or without --json."""
    import sys

    cc = _client(home, who, url)
    sys.stdout.write(cc.adjudication_document(claim, "eob", n, purpose="PATRQT").resource_json() + "\n")
