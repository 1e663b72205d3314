"""``careledger research``: the whole story from the command line, against a real node over real HTTP.

A researcher registers, versions and shows a study; patients consent with their study keys and hand
the hospital their linkage statements; a data steward builds a release; the researcher verifies it
with one command (and a tampered copy fails with exit status 4); a patient revokes; an aggregate query
is asked, answered and read; the patient reads her research log. Every command also runs with
``--json`` and prints one document; errors are one line with their code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from careledger.keys import write_key
from support.cli import CliResult, run_cli
from support.research_api import ApiWorld, research_world_fixture  # noqa: F401

ERROR_LINE = re.compile(r"^error: ([A-Z_]+) \((\d+)\): .+$", re.MULTILINE)


def cli(w: ApiWorld, *argv: str) -> CliResult:
    return run_cli(*argv, "--url", w.url)


def doc_of(result: CliResult) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error_of(result: CliResult) -> tuple[str, int]:
    match = ERROR_LINE.search(result.stderr)
    assert match, result.output
    return match[1], int(match[2])


def test_the_research_story_from_the_command_line(research_world: ApiWorld, tmp_path: Path) -> None:
    w = research_world
    keys = tmp_path / "keys"
    write_key(keys / "researcher.json", w.researcher)
    write_key(keys / "steward.json", w.stewards["hospital"])
    key = {name: str(keys / f"{name}.json") for name in ("researcher", "steward")}

    registered = doc_of(cli(w, "--json", "research", "study", "register", "--as", key["researcher"],
                            "--title", "Cardiometabolic outcomes", "--category", "cardiometabolic",
                            "--ethics-ref", "IRB-2026-117", "--type", "Patient", "--type", "Condition",
                            "--type", "Observation", "--type", "Encounter"))
    study = registered["receipt"]["result"]["study"]
    shown = doc_of(cli(w, "--json", "research", "study", "show", study))
    assert shown["study"]["sponsor"] == "research" and shown["study"]["request"]["resource_types"] == [
        "Condition", "Encounter", "Observation", "Patient"]
    human = cli(w, "research", "study", "list")
    assert human.exit_code == 0 and study in human.stdout and "\t" in human.stdout  # piped: tab-separated
    versioned = doc_of(cli(w, "--json", "research", "study", "version", study, "--as", key["researcher"],
                           "--k", "6"))
    assert versioned["receipt"]["result"]["version"] == 2
    assert doc_of(cli(w, "--json", "research", "study", "show", study))["study"]["anonymity"]["k"] == 6

    patients = w.add_patients("hospital", 14, "cli")
    for i, p in enumerate(patients):
        write_key(keys / f"p{i}.json", p.key)
    first = str(keys / "p0.json")
    consented = doc_of(cli(w, "--json", "research", "consent", "--study", study, "--as", first))
    assert consented["receipt"]["result"]["subject"].startswith("sp-")
    linked = doc_of(cli(w, "--json", "research", "linkage", "--study", study, "--custodian", "hospital",
                        "--as", first))
    assert linked["subject"] == consented["receipt"]["result"]["subject"]
    for p in patients[1:]:
        w.opt_in(p, study)

    built = doc_of(cli(w, "--json", "research", "release", "build", "--as", key["steward"], "--custodian",
                       "hospital", "--study", study, "--recipient", w.researcher.public_hex))
    release = built["release"]
    assert built["report"]["k_required"] == 6 and built["report"]["k_achieved"] >= 6
    out = tmp_path / "received"
    checked = doc_of(cli(w, "--json", "research", "release", "verify", release, "--as", key["researcher"],
                         "--out", str(out)))
    assert checked["verified"] and (out / "Patient.ndjson").exists() and (out / "report.json").exists()
    again = cli(w, "research", "release", "verify", release, "--files", str(out))
    assert again.exit_code == 0 and "verified" in again.stdout
    lines = (out / "Observation.ndjson").read_text().splitlines()
    (out / "Observation.ndjson").write_text("\n".join(lines[1:]) + "\n")  # one record dropped
    tampered = cli(w, "research", "release", "verify", release, "--files", str(out))
    assert tampered.exit_code == 4 and error_of(tampered) == ("RELEASE_VERIFY_FAILED", 6106)
    stranger = cli(w, "research", "release", "verify", release, "--as", key["steward"])
    assert stranger.exit_code == 1 and error_of(stranger) == ("UNAUTHORISED", 206)

    revoked = doc_of(cli(w, "--json", "research", "revoke", "--study", study, "--as", first))
    assert revoked["receipt"]["result"]["consent"] == consented["receipt"]["result"]["consent"]
    twice = cli(w, "research", "revoke", "--study", study, "--as", first)
    assert twice.exit_code == 1 and error_of(twice) == ("RESEARCH_CONSENT_UNKNOWN", 6010)

    log = doc_of(cli(w, "--json", "research", "log", "--as", first))
    assert log["studies"] == [study] and [r["release"] for r in log["releases"]] == [release]
    assert log["releases"][0]["text"].startswith(f"de-identified data released to study {study} on ")
    merged = cli(w, "research", "log", "--as", first, "--access-log")
    assert merged.exit_code == 0 and "de-identified data released to study" in merged.stdout

    asked = doc_of(cli(w, "--json", "research", "query", "ask", "--as", key["researcher"], "--study", study,
                       "--group-by", "sex"))
    query = asked["receipt"]["result"]["query"]
    # the hospital's answer now (anchored by this call, or the same one its gateway anchored already), so
    # the results below cannot be read before it is anchored (the clinic's may come first)
    answered = doc_of(cli(w, "--json", "research", "query", "answer", query, "--as", key["steward"],
                          "--custodian", "hospital"))
    assert answered["anchor"]["answer_hash"] == next(
        a for a in w.client.query_record(query)["answers"] if a["custodian"] == "hospital")["answer_hash"]
    results = doc_of(cli(w, "--json", "research", "query", "results", query, "--as", key["researcher"],
                         "--wait", "20"))
    hospital = next(a for a in results["answers"] if a["custodian"] == "hospital")
    assert hospital["contributors"] == 13  # fourteen consented, one revoked
    assert all(c["count"] is None or c["count"] >= 11 for c in hospital["cells"])
    table = cli(w, "research", "query", "results", query, "--as", key["researcher"])
    assert table.exit_code == 0 and "sex" in table.stdout

    few = doc_of(cli(w, "--json", "research", "study", "register", "--as", key["researcher"], "--title",
                     "Too few", "--category", "cardiometabolic", "--ethics-ref", "IRB-2026-118"))
    refused = cli(w, "--json", "research", "release", "build", "--as", key["steward"], "--custodian", "hospital",
                  "--study", few["receipt"]["result"]["study"], "--recipient", key["researcher"])  # a key file
    assert refused.exit_code == 1 and error_of(refused) == ("DEID_EMPTY_RELEASE", 6105)  # nobody consented
    body = json.loads(refused.stdout)  # one document: the error and the report of why
    assert body["error"]["code"] == 6105 and body["report"]["patients"] == 0

    closed = doc_of(cli(w, "--json", "research", "study", "close", study, "--as", key["researcher"]))
    assert closed["receipt"]["result"]["status"] == "closed"
    late = cli(w, "research", "consent", "--study", study, "--as", str(keys / "p1.json"))
    assert late.exit_code == 3 and "STUDY_CLOSED" in late.stdout  # committed, refused by the contract
    usage = cli(w, "research", "consent", "--as", first)
    assert usage.exit_code == 1 and "exactly one of --study and --category" in usage.stderr
