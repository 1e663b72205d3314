"""``careledger research ...``: studies, research consent, linkage, releases, aggregate queries, the patient's log.

Every command talks to a running node's HTTP API (``--url``, default: the home's configured API) and
signs as a key of the home's keyring (``--as NAME``) or a key file. A patient's research consent is
signed with her study key, derived on the spot from her own key (never stored, never registered).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from careledger.cli.common import (
    EXIT_ERROR,
    EXIT_NEGATIVE,
    HomeOption,
    emit,
    err_console,
    expand,
    fail,
    json_mode,
    load_key,
    node_url,
    note,
    print_json,
    print_receipt,
    print_table,
    read_file,
    say,
)

research_app = typer.Typer(help="Research data sharing: studies, research consent, de-identified releases, "
                                "aggregate queries, the patient's research log.", no_args_is_help=True)
study_app = typer.Typer(help="The study registry (a researcher of the sponsor registers, versions, closes).",
                        no_args_is_help=True)
release_app = typer.Typer(help="De-identified releases: built by the custodian, verified by the researcher.",
                          no_args_is_help=True)
query_app = typer.Typer(help="Aggregate count/sum queries answered by every custodian.", no_args_is_help=True)
research_app.add_typer(study_app, name="study")
research_app.add_typer(release_app, name="release")
research_app.add_typer(query_app, name="query")

AsKey = Annotated[str, typer.Option("--as", help="Sign as this key (a name in HOME/keys, or a key file).")]
Url = Annotated[str | None, typer.Option(help="Node API URL (default: the home's configured API).")]
StudyOpt = Annotated[str | None, typer.Option("--study", help="A study id (study-…).")]
CategoryOpt = Annotated[str | None, typer.Option("--category", help="A research category (broad consent).")]
Custodian = Annotated[str, typer.Option(help="The custodian organisation.")]
MAX_SPEC_BYTES = 64 * 1024
DAY_MS = 86_400_000
TYPES = ["Condition", "Encounter", "Immunization", "MedicationRequest", "Observation", "Patient", "Procedure"]


def _client(home: Path, url: str | None) -> Any:
    from careledger.client.research import ResearchClient

    return ResearchClient(node_url(home, url), timeout=60)


def _ms(day: str, option: str) -> int:
    try:
        return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp() * 1000)
    except ValueError:
        fail(f"{option} must be a date YYYY-MM-DD")


def _scope(study: str | None, category: str | None) -> tuple[Literal["study", "category"], str]:
    if (study is None) == (category is None):
        fail("name exactly one of --study and --category")
    return ("study", study) if study is not None else ("category", str(category))


def _outcome(label: str, result: dict[str, Any], line: Any) -> dict[str, Any]:
    """A transaction's committed result: ``line(result)`` on success; exit 3 when the contract refused it."""
    receipt = result["receipt"]
    if receipt["code"]:
        print_receipt(label, result)
    emit(result, lambda: say(line(receipt["result"])))
    return dict(receipt["result"])


# -- the study registry -------------------------------------------------------------------------------------

def _spec(spec_file: Path | None, base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A study spec: ``--spec`` (JSON) if given, else ``base`` with the options given on the command line."""
    if spec_file is not None:
        try:
            doc = json.loads(read_file(spec_file, MAX_SPEC_BYTES))
        except ValueError:
            fail(f"{spec_file} is not JSON")
        if not isinstance(doc, dict):
            fail(f"{spec_file} must hold a JSON object")
        return doc
    spec: dict[str, Any] = json.loads(json.dumps(base))
    for path, value in over.items():
        if value is None or value == []:
            continue
        target = spec
        *parents, leaf = path.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return spec


def _study_options(title: str | None, category: str | None, ethics_ref: str | None, purpose: str | None,
                   start: str | None, end: str | None, type_: list[str] | None, element: list[str] | None,
                   condition: list[str] | None, sex: list[str] | None, born_from: int | None, born_to: int | None,
                   k: int | None, l_: int | None, sensitive_type: str | None, sensitive_code: list[str] | None,
                   max_suppression_bp: int | None) -> dict[str, Any]:
    return {"title": title, "category": category, "ethics_ref": ethics_ref, "purpose": purpose,
            "period.start_ms": _ms(start, "--start") if start else None,
            "period.end_ms": _ms(end, "--end") if end else None,
            "request.resource_types": type_, "request.elements": element,
            "request.cohort.conditions_any": condition, "request.cohort.sex": sex,
            "request.cohort.birth_year_min": born_from, "request.cohort.birth_year_max": born_to,
            "anonymity.k": k, "anonymity.l": l_, "anonymity.sensitive_type": sensitive_type,
            "anonymity.sensitive_codes": sensitive_code, "anonymity.max_suppression_bp": max_suppression_bp}


Title = Annotated[str | None, typer.Option(help="Public title.")]
Category = Annotated[str | None, typer.Option(help="Research category (broad consent to it covers the study).")]
Ethics = Annotated[str | None, typer.Option(help="Ethics approval reference (IRB-…).")]
PurposeOpt = Annotated[str | None, typer.Option(help="HRESCH (default) or CLINTRCH.")]
Start = Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: today).")]
End = Annotated[str | None, typer.Option(help="Day it ends (exclusive), YYYY-MM-DD (default: a year from today).")]
Types = Annotated[list[str] | None, typer.Option("--type", help="Resource type requested (repeat; Patient is "
                                                               "required).")]
Elements = Annotated[list[str] | None, typer.Option("--element", help="Only these elements, e.g. Condition.code "
                                                                     "(repeat).")]
Conditions = Annotated[list[str] | None, typer.Option("--condition", help="Cohort: any of these condition codes, "
                                                                         "system|code (repeat).")]
Sexes = Annotated[list[str] | None, typer.Option("--sex", help="Cohort: female, male, other, unknown (repeat).")]
BornFrom = Annotated[int | None, typer.Option(help="Cohort: born in or after this year.")]
BornTo = Annotated[int | None, typer.Option(help="Cohort: born in or before this year.")]
KOpt = Annotated[int | None, typer.Option("--k", help="k-anonymity (5 at least).")]
LOpt = Annotated[int | None, typer.Option("--l", help="Distinct l-diversity on --sensitive-type's codes.")]
Sensitive = Annotated[str | None, typer.Option(help="The resource type whose codes are the sensitive attribute.")]
SensitiveCodes = Annotated[list[str] | None, typer.Option("--sensitive-code", help="Only these codes count "
                                                                                  "(repeat).")]
Suppression = Annotated[int | None, typer.Option(help="Share of patients that may be suppressed, basis points.")]
SpecFile = Annotated[Path | None, typer.Option("--spec", help="The whole spec as JSON (the options are ignored).")]


@study_app.command("register")
def study_register(who: AsKey, title: Title = None, category: Category = None, ethics_ref: Ethics = None,
                   purpose: PurposeOpt = None, start: Start = None, end: End = None, type_: Types = None,
                   element: Elements = None, condition: Conditions = None, sex: Sexes = None,
                   born_from: BornFrom = None, born_to: BornTo = None, k: KOpt = None, l_: LOpt = None,
                   sensitive_type: Sensitive = None, sensitive_code: SensitiveCodes = None,
                   max_suppression_bp: Suppression = None, spec: SpecFile = None,
                   sponsor: Annotated[str | None, typer.Option(help="Sponsor organisation (default: the "
                                                                    "signer's).")] = None,
                   home: Path = HomeOption, url: Url = None) -> None:
    """Register a data-sharing study (ResearchStudy) as a researcher or admin of its sponsor."""
    client, key = _client(home, url), load_key(home, who)
    now = int(time.time() * 1000)
    base = {"sponsor": sponsor or client.key_info(key.public_hex).get("org"), "title": None, "category": None,
            "ethics_ref": None, "purpose": "HRESCH", "period": {"start_ms": now - now % DAY_MS,
                                                                 "end_ms": now - now % DAY_MS + 365 * DAY_MS},
            "request": {"resource_types": TYPES}, "anonymity": {"k": 5}}
    doc = _spec(spec, base, _study_options(title, category, ethics_ref, purpose, start, end, type_, element,
                                           condition, sex, born_from, born_to, k, l_, sensitive_type,
                                           sensitive_code, max_suppression_bp))
    missing = [f for f in ("title", "category", "ethics_ref") if not doc.get(f)]
    if missing:
        fail("give " + ", ".join(f"--{m.replace('_', '-')}" for m in missing) + " (or --spec)")
    _outcome("research.register_study", client.register_study(key, doc),
             lambda r: f"[green]study registered[/] {r['study']} (version {r['version']})")


@study_app.command("version")
def study_version(study: Annotated[str, typer.Argument(help="The study id.")], who: AsKey,
                  reconsent: Annotated[bool, typer.Option(help="Consents given for earlier versions stop "
                                                               "covering it.")] = False,
                  title: Title = None, category: Category = None, ethics_ref: Ethics = None,
                  purpose: PurposeOpt = None, start: Start = None, end: End = None, type_: Types = None,
                  element: Elements = None, condition: Conditions = None, sex: Sexes = None,
                  born_from: BornFrom = None, born_to: BornTo = None, k: KOpt = None, l_: LOpt = None,
                  sensitive_type: Sensitive = None, sensitive_code: SensitiveCodes = None,
                  max_suppression_bp: Suppression = None, spec: SpecFile = None,
                  home: Path = HomeOption, url: Url = None) -> None:
    """Publish the study's next version: the current one with the options given changed."""
    client, key = _client(home, url), load_key(home, who)
    current = client.study(study)["study"]
    base = {"title": current["title"], "category": current["category"], "ethics_ref": current["ethics_ref"],
            "purpose": current["purpose"],
            "period": {"start_ms": current["period_start_ms"], "end_ms": current["period_end_ms"]},
            "request": current["request"],
            "anonymity": {k_: v for k_, v in current["anonymity"].items()}}
    doc = _spec(spec, base, _study_options(title, category, ethics_ref, purpose, start, end, type_, element,
                                           condition, sex, born_from, born_to, k, l_, sensitive_type,
                                           sensitive_code, max_suppression_bp))
    doc.update(study=study, version=int(current["version"]) + 1, reconsent=reconsent)
    _outcome("research.new_version", client.new_version(key, doc),
             lambda r: f"[green]study {r['study']} is at version {r['version']}[/] "
                       f"(consents from version {r['consent_version']} on cover it)")


@study_app.command("close")
def study_close(study: Annotated[str, typer.Argument(help="The study id.")], who: AsKey, home: Path = HomeOption,
                url: Url = None) -> None:
    """Close a study: no new consents, releases or queries."""
    client = _client(home, url)
    _outcome("research.close_study", client.close_study(load_key(home, who), study),
             lambda r: f"[green]study {r['study']} closed[/]")


@study_app.command("show")
def study_show(study: Annotated[str, typer.Argument(help="The study id.")],
               version: Annotated[int | None, typer.Option(help="An earlier version.")] = None,
               home: Path = HomeOption, url: Url = None) -> None:
    """A study: what it requests, its anonymity rules, its versions and releases."""
    doc = _client(home, url).study(study, version)

    def human() -> None:
        s = doc["study"]
        a, r = s["anonymity"], s["request"]
        print_table(["field", "value"], [
            ("study", f"{s['id']} (version {s['version']}, {s['status']})"), ("title", s["title"]),
            ("sponsor", s["sponsor"]), ("category", s["category"]), ("ethics", s["ethics_ref"]),
            ("purpose", s["purpose"]), ("types", ", ".join(r["resource_types"])),
            ("cohort", json.dumps(r["cohort"], sort_keys=True)),
            ("anonymity", f"k={a['k']} l={a['l']} on {', '.join(a['quasi_identifiers'])}; "
                          f"suppression ≤ {a['max_suppression_bp']} bp"),
            ("consent from version", s["consent_version"])])
        if doc["releases"]:
            print_table(["release", "custodian", "status", "subjects", "records", "k", "height"],
                        ([x["id"], x["custodian"], x["status"], x["subjects"], x["records"], x["k_achieved"],
                          x["height"]] for x in doc["releases"]))

    emit(doc, human)


@study_app.command("list")
def study_list(kind: Annotated[str | None, typer.Option(help="data or trial.")] = None,
               status: Annotated[str | None, typer.Option(help="active or closed.")] = None,
               home: Path = HomeOption, url: Url = None) -> None:
    """Every study of the registry."""
    rows = _client(home, url).studies(kind, status)
    emit(rows, lambda: print_table(["study", "kind", "version", "status", "sponsor", "category", "title"],
                                   ([s["id"], s["kind"], s["version"], s["status"], s["sponsor"], s["category"],
                                     s["title"]] for s in rows)))


# -- the patient's consent and linkage ----------------------------------------------------------------------

@research_app.command("consent")
def consent(who: AsKey, study: StudyOpt = None, category: CategoryOpt = None,
            type_: Annotated[list[str] | None, typer.Option("--type", help="Only these resource types "
                                                                           "(repeat).")] = None,
            home: Path = HomeOption, url: Url = None) -> None:
    """Opt in to a study (or give broad consent to a category), signed with the patient's study key."""
    from careledger.client.research import study_key

    scope, target = _scope(study, category)
    client = _client(home, url)
    result = client.consent(study_key(load_key(home, who), scope, target), scope, target, type_ or [])
    _outcome("research.consent", result, lambda r: f"[green]consent[/] {r['consent']} given as {r['subject']}")
    note(f"next: careledger research linkage --{scope} {target} --custodian ORG --as {who} (for each custodian "
         "holding your records)")


@research_app.command("revoke")
def revoke(who: AsKey, study: StudyOpt = None, category: CategoryOpt = None,
           consent_id: Annotated[str | None, typer.Option("--consent", help="The consent (default: the active "
                                                                            "one of that study key).")] = None,
           home: Path = HomeOption, url: Url = None) -> None:
    """Revoke a research consent with the study key that gave it; no later release relies on it."""
    from careledger.client.research import study_key

    scope, target = _scope(study, category)
    client = _client(home, url)
    key = study_key(load_key(home, who), scope, target)
    if consent_id is None:
        active = [c["id"] for c in client.log_of(key)["consents"]
                  if c["status"] == "active" and c["scope"] == scope and c["target"] == target]
        if not active:
            fail(f"no active research consent for {scope} {target}", name="RESEARCH_CONSENT_UNKNOWN", code=6010)
        consent_id = active[0]
    _outcome("research.revoke_consent", client.revoke_consent(key, consent_id),
             lambda r: f"[green]revoked[/] {r['consent']} at block {r['revoked_height']}")


@research_app.command("linkage")
def linkage(who: AsKey, custodian: Custodian, study: StudyOpt = None, category: CategoryOpt = None,
            home: Path = HomeOption, url: Url = None) -> None:
    """Hand a custodian your linkage statement, so it can select your records for that study."""
    scope, target = _scope(study, category)
    doc = _client(home, url).link(load_key(home, who), scope, target, custodian)
    emit(doc, lambda: say(f"[green]linked[/]: {custodian} selects {doc['subject']} for {scope} {target}"))


@research_app.command("log")
def research_log(who: AsKey, study: Annotated[list[str] | None, typer.Option("--study", help="Only these studies "
                                                                                      "(repeat).")] = None,
                 category: Annotated[list[str] | None, typer.Option("--category", help="Only these categories "
                                                                                       "(repeat).")] = None,
                 access_log: Annotated[bool, typer.Option("--access-log", help="Merge into the whole access log "
                                                                               "(every read of your records).")]
                 = False, home: Path = HomeOption, url: Url = None) -> None:
    """Your research log: every release your data went into (study, custodian, date) and the studies."""
    client = _client(home, url)
    key = load_key(home, who)
    scopes = [("study", s) for s in study or []] + [("category", c) for c in category or []] or None
    if access_log:
        entries = client.access_log(key, scopes)
        emit(entries, lambda: print_table(["block", "what", "by", "record / study", "outcome"], (
            [e["height"], "release" if e["kind"] == "research_release" else "read",
             e.get("custodian") if e["kind"] == "research_release" else e.get("requester_org"),
             e.get("study") or e.get("record"),
             e.get("text") or ("granted" if e.get("outcome") == "granted" else f"denied {e.get('code')}")]
            for e in entries)))
        return
    doc = client.research_log(key, scopes)

    def human() -> None:
        print_table(["block", "date", "study", "custodian", "release"],
                    ([r["height"], r["date"], r["study"], r["custodian"], r["release"]] for r in doc["releases"]))
        say(f"studies your data went to: {', '.join(doc['studies']) or 'none'}")

    emit(doc, human)


# -- releases -----------------------------------------------------------------------------------------------

@release_app.command("build")
def release_build(who: AsKey, custodian: Custodian,
                  study: Annotated[str, typer.Option(help="The study id.")],
                  recipient: Annotated[str, typer.Option(help="The researcher's public key (hex), or her key "
                                                              "(a name in HOME/keys, or a key file).")],
                  home: Path = HomeOption, url: Url = None) -> None:
    """Build, anchor and seal a release of the custodian's consenting patients (an admin or data steward)."""
    from careledger.client.research import ReleaseRefusedError

    client = _client(home, url)
    if not re.fullmatch(r"[0-9a-f]{64}", recipient):
        recipient = load_key(home, recipient).public_hex
    try:
        doc = client.build_release(load_key(home, who), custodian, study, recipient)
    except ReleaseRefusedError as exc:
        if exc.report is None:
            raise
        # the error line as every command prints it, and the report of why (with --json: in the one document)
        err_console.print(f"[bold red]error:[/] {exc.name} ({exc.code}): {exc.message}", highlight=False)
        if json_mode():
            print_json({"error": {"code": exc.code, "message": exc.message, "name": exc.name},
                        "exit_status": EXIT_ERROR, "report": exc.report})
        else:
            note(json.dumps(exc.report, indent=2, sort_keys=True))
        raise typer.Exit(EXIT_ERROR) from None

    def human() -> None:
        r = doc["report"]
        say(f"[green]release {doc['release']}[/] anchored at block {doc['height']}: {r['subjects']} patients "
            f"({r['suppressed']} suppressed, {r['excluded']} outside the cohort), {r['records']} records, "
            f"k = {r['k_achieved']} (required {r['k_required']}), generalisation {doc['generalisation']}")
        say(f"  dataset root {r['dataset_root']}  rules {r['rule_version']}  ZIP3 list {r['zip3_list']} "
            f"({r['zip3_vintage']})")
        note(f"next: the recipient runs careledger research release verify {doc['release']} --as KEY --out DIR")

    emit(doc, human)


@release_app.command("verify")
def release_verify(release: Annotated[str, typer.Argument(help="The release id (rel-…).")],
                   who: Annotated[str | None, typer.Option("--as", help="The recipient's key (to fetch and open "
                                                                        "the package).")] = None,
                   out: Annotated[Path | None, typer.Option(help="Write the verified files here.")] = None,
                   files: Annotated[Path | None, typer.Option(help="Verify files written earlier with --out "
                                                                   "instead of fetching.")] = None,
                   home: Path = HomeOption, url: Url = None) -> None:
    """Check a release against its anchor: the package opened with your key (or files on disk), the
    report's signature and signer, file hashes, the Merkle root, Safe Harbor, k and l. Exits 4 if not."""
    from careledger.client.research import read_release_dir, write_release_dir
    from careledger.research.envelope import SealError
    from careledger.research.release import ReleaseVerificationFailed

    if (who is None) == (files is None):
        fail("give --as (fetch the package) or --files (files on disk)")
    client = _client(home, url)
    try:
        opened = read_release_dir(expand(files)) if files is not None else \
            client.fetch_release(load_key(home, str(who)), release)
        if opened.release != release:
            raise ReleaseVerificationFailed(f"these files are of release {opened.release}, not {release}")
        checked = client.verify_release(None, release, opened)
    except (ReleaseVerificationFailed, SealError) as exc:
        fail(exc.message, EXIT_NEGATIVE, name=exc.code.name, code=int(exc.code))
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot read the release files: {exc}", name="FILE_UNREADABLE", code=912)
    if out is not None:
        checked["written"] = [str(p) for p in write_release_dir(opened, expand(out))]
    emit(checked, lambda: say(f"[green]release {release} verified[/]: {checked['records']} records of "
                              f"{checked['subjects']} patients, k = {checked['k']}, root {checked['dataset_root']}"
                              + (f"; files in {out}" if out else "")))


# -- aggregate queries --------------------------------------------------------------------------------------

@query_app.command("ask")
def query_ask(who: AsKey, study: Annotated[str, typer.Option(help="The study id.")],
              measure: Annotated[str, typer.Option(help="count or sum.")] = "count",
              sum_of: Annotated[str | None, typer.Option(help="What a sum adds: resources:<Type> or "
                                                              "observation:<system|code>.")] = None,
              group_by: Annotated[list[str] | None, typer.Option("--group-by", help="sex, birth_decade, zip3, "
                                                                                   "condition (repeat).")] = None,
              condition_code: Annotated[list[str] | None, typer.Option("--condition-code", help="Codes grouped by "
                                                                       "'condition' (repeat).")] = None,
              condition: Conditions = None, sex: Sexes = None, born_from: BornFrom = None, born_to: BornTo = None,
              home: Path = HomeOption, url: Url = None) -> None:
    """Anchor an aggregate query; every custodian answers it under the same consent rules."""
    spec = {"measure": measure, "sum_of": sum_of, "group_by": group_by or [], "condition_codes": condition_code or [],
            "cohort": {"conditions_any": condition or [], "sex": sex or [], "birth_year_min": born_from,
                       "birth_year_max": born_to}}
    client = _client(home, url)
    _outcome("research.query", client.query(load_key(home, who), study, spec),
             lambda r: f"[green]query {r['query']}[/] anchored (hash {r['query_hash']})")


@query_app.command("answer")
def query_answer(query: Annotated[str, typer.Argument(help="The query id (rq-…).")], who: AsKey,
                 custodian: Custodian, home: Path = HomeOption, url: Url = None) -> None:
    """Have a custodian answer now (an admin or data steward; gateways answer committed queries by themselves)."""
    doc = _client(home, url).answer(load_key(home, who), custodian, query)
    a = doc["answer"]
    emit(doc, lambda: say(f"[green]{custodian} answered[/] {query}: {len(a['cells'])} cells, "
                          f"{a['suppressed_cells']} withheld, {a['contributors']} contributors"))


@query_app.command("results")
def query_results(query: Annotated[str, typer.Argument(help="The query id (rq-…).")], who: AsKey,
                  wait: Annotated[float, typer.Option(help="Seconds to wait for a first answer.")] = 10.0,
                  home: Path = HomeOption, url: Url = None) -> None:
    """Every custodian's answer, checked against its anchor, and their sum per cell (withheld cells: null)."""
    doc = _client(home, url).results(load_key(home, who), query, wait_s=wait)

    def human() -> None:
        groups = doc["query"]["query"]["group_by"]
        print_table([*groups, "count", *(["sum"] if doc["query"]["query"]["measure"] == "sum" else []), "note"], (
            [*(c["group"].get(g, "") for g in groups), "withheld" if c["count"] is None else c["count"],
             *([c.get("sum", "")] if doc["query"]["query"]["measure"] == "sum" else []),
             f"withheld at {', '.join(c['withheld_by'])}" if c["partial"] else ""] for c in doc["combined"]))
        say(f"answered by {', '.join(a['custodian'] for a in doc['answers']) or 'nobody yet'}; contributors "
            + ", ".join(f"{a['custodian']}: {a['contributors']}" for a in doc["answers"]))

    emit(doc, human)
