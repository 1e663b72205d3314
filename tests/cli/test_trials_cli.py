"""``careledger trials`` against a real node over real HTTP: a randomised, double-blind trial from
registration to flagged results, every command once, with the exit statuses of docs/cli.md."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.api.server import BackgroundServer
from careledger.client.trials import TrialsClient, subject_of
from careledger.keys import write_key
from careledger.trials.randomisation import generate_schedule
from support import seeded_key
from support.cli import CliResult, run_cli
from support.trials import sample_dataset

SCHEDULE = generate_schedule(hashlib.sha256(b"careledger-test/cli/trials").digest(), ["all"], ["app", "sham"],
                             [1, 1], [2], 4)
FUTURE = {"completion": {"primary": {"date": "2098-06-30", "type": "anticipated"},
                         "study": {"date": "2099-12-31", "type": "anticipated"}},
          "first_enrolment": {"date": "2097-01-05", "type": "anticipated"}, "sample_size": {"target": 4}}
KEYS = {"coordinator": ("research", ["trial_coordinator"]), "investigator": ("hospital", ["physician"]),
        "steward": ("hospital", ["data_steward"])}


@pytest.fixture
def cli(node: Any, node_home: Any, consortium: Any, tmp_path: Path) -> Iterator[Any]:
    with BackgroundServer(node) as server, TrialsClient(server.url) as client:
        for name, (org, roles) in KEYS.items():
            key = seeded_key(f"cli-trials/{name}")
            write_key(node_home.keys_dir / f"{name}.json", key, name)
            client.send(consortium.admin(org), "identity.enrol_member", 1,
                        {"member": key.public_hex, "org": org, "roles": roles})
        write_key(node_home.keys_dir / "alice.json", seeded_key("cli-trials/alice"), "alice")

        def run(*argv: str) -> CliResult:
            return run_cli("trials", *argv, "--home", str(node_home.path), "--url", server.url)

        yield run, client


def _file(tmp: Path, name: str, doc: Any) -> str:
    path = tmp / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _result(r: CliResult) -> Any:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["receipt"]["result"]


def test_a_trial_from_the_command_line(cli: Any, tmp_path: Path) -> None:
    run, client = cli
    commitment = SCHEDULE.commitment()
    protocol, form = _file(tmp_path, "protocol.txt", "protocol v1"), _file(tmp_path, "form.txt", "consent form v1")
    trial = _result(run("register", _file(tmp_path, "dataset.json", sample_dataset(**FUTURE)), "--protocol", protocol,
                        "--consent-form", form, "--randomisation", _file(tmp_path, "commitment.json", {
                            "root": commitment.root.hex(), "strata": [{"name": s, "slots": n}
                                                                      for s, n in commitment.strata]}),
                        "--as", "coordinator", "--json"))["trial"]
    ethics = _file(tmp_path, "ethics.json", {"status": "approved", "committee": "Hospital REC",
                                             "contact": "rec@h.example", "approval_date": "2024-01-10",
                                             "reference": "H-1"})
    investigator = seeded_key("cli-trials/investigator").public_hex
    assert run("site", "add", trial, "hospital", "--ethics", ethics, "--investigator",
               f"{investigator}:principal_investigator", "--as", "coordinator").exit_code == 0
    assert run("site", "investigators", trial, "hospital", "--investigator", f"{investigator}:principal_investigator",
               "--as", "coordinator").exit_code == 0
    assert run("site", "status", trial, "hospital", "suspended", "--reason", "audit", "--as",
               "coordinator").exit_code == 0
    assert run("site", "status", trial, "hospital", "active", "--reason", "audit passed", "--as",
               "coordinator").exit_code == 0

    alice = seeded_key("cli-trials/alice")
    subject = subject_of(alice, trial)
    assert _result(run("consent", trial, "--patient", "alice", "--consent-form", form, "--json"))["subject"] == subject
    reveal = _file(tmp_path, "reveal.json", SCHEDULE.reveal("all", 0, sealed=True).to_json())
    assert _result(run("enrol", trial, subject, "--site", "hospital", "--allocation", reveal, "--as",
                       "investigator", "--json"))["slot"] == 0
    again = run("enrol", trial, subject, "--site", "hospital", "--allocation", reveal, "--as", "investigator")
    assert again.exit_code == 3 and "TRIAL_SUBJECT_ENROLLED" in again.stdout  # committed, refused: exit 3

    commitments = [["Observation", hashlib.sha256(f"obs {i}".encode()).hexdigest()] for i in range(2)]
    visits = _file(tmp_path, "visits.json", [{"subject": subject, "visit": f"week-{i}", "resources": [
        {"type": t, "commitment": c}]} for i, (t, c) in enumerate(commitments)])
    assert run("visits", trial, "--site", "hospital", "--file", visits, "--as", "steward").exit_code == 0

    listing = run("show", "--json")
    assert [t["trial"] for t in json.loads(listing.stdout)["trials"]] == [trial]
    shown = run("show", trial, "--history")
    assert shown.exit_code == 0 and trial in shown.stdout and "A home exercise app" in shown.stdout
    assert json.loads(run("show", trial, "--json").stdout)["registration"]["status"]["enrolled"] == 1

    v2 = _file(tmp_path, "form2.txt", "consent form v2")
    assert run("amend", trial, "--version", "2", "--protocol", hashlib.sha256(b"p2").hexdigest(), "--consent-form", v2,
               "--reason", "new visit schedule", "--as", "coordinator").exit_code == 0
    refused = run("visits", trial, "--site", "hospital", "--file", _file(tmp_path, "v3.json", [
        {"subject": subject, "visit": "week-3", "resources": [{"type": "Observation", "commitment": "ab" * 32}]}]),
                  "--as", "steward")
    assert refused.exit_code == 3 and "TRIAL_RECONSENT_REQUIRED" in refused.stdout
    assert run("consent", trial, "--patient", "alice", "--consent-form", v2).exit_code == 0

    event = _result(run("ae", "report", trial, "--site", "hospital", "--subject", subject, "--event", "cd" * 32,
                        "--seriousness", "death", "--expectedness", "unexpected", "--causality", "related",
                        "--as", "steward", "--json"))
    assert json.loads(run("overdue", "--json").stdout)["susars"] == []
    ahead = json.loads(run("overdue", "--trial", trial, "--as-of-ms", str(event["initial_due_ms"]), "--json").stdout)
    assert ahead["forecast"] and [s["event"] for s in ahead["susars"]] == [event["event"]]
    assert run("safety", "report", trial, event["event"], "--report", form, "--as", "coordinator").exit_code == 0

    assert run("lock", trial, "--as", "coordinator").exit_code == 0
    mine = _file(tmp_path, "mine.json", [commitments[1]])
    good = run("proof", trial, subject, "week-1", "--resources", mine, "--json")
    assert good.exit_code == 0 and json.loads(good.stdout)["valid"] is True
    tampered = _file(tmp_path, "tampered.json", [["Observation", "ef" * 32]])
    bad = run("proof", trial, subject, "week-1", "--resources", tampered)
    assert bad.exit_code == 4 and "data changed after anchoring" in bad.stdout

    [(_, arm, salt)] = client.unblinding(trial, [subject], SCHEDULE)
    assert run("unblind", trial, "--file", _file(tmp_path, "unblind.json", [
        {"subject": subject, "arm": arm, "salt": salt.hex()}]), "--as", "coordinator").exit_code == 0
    results = {"outcomes": [{"id": "P1", "role": "secondary", "measure": "Knee pain",
                             "method": "Numerical rating scale 0-10", "time_frame": "12 weeks", "result": "-1.0"}],
               "omitted": [{"id": "S1", "reason": "device failure"}, {"id": "S2", "reason": "not collected"}],
               "summary": {"brief_summary": "s", "baseline_characteristics": "b", "participant_flow": "f",
                           "adverse_events": "a"}, "dataset_hash": form}
    assert run("results", "submit", trial, "--file", _file(tmp_path, "results.json", results),
               "--as", "coordinator").exit_code == 0
    flagged = json.loads(run("flags", trial, "--json").stdout)
    assert [(f["kind"], f["declared"]) for f in flagged["flags"]] == [
        ("primary_demoted", False), ("secondary_dropped", True), ("secondary_dropped", True)]
    table = run("flags", trial)
    assert "primary_demoted" in table.stdout and "device failure" in table.stdout

    out = tmp_path / "study.json"
    assert run("export", trial, "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["resourceType"] == "ResearchStudy"
    withdrawn = run("consent", trial, "--patient", "alice", "--withdraw")
    assert withdrawn.exit_code == 0 and "withdrawn" in withdrawn.stdout


def test_errors_are_one_line_with_their_code(cli: Any, tmp_path: Path) -> None:
    run, _ = cli
    unknown = run("show", "trl-" + "0" * 24)
    assert unknown.exit_code == 1 and "error: TRIAL_UNKNOWN (5001):" in unknown.stderr
    missing = run("register", str(tmp_path / "none.json"), "--protocol", "ab" * 32, "--consent-form", "ab" * 32)
    assert missing.exit_code == 1 and "error: FILE_UNREADABLE (912):" in missing.stderr
    bad = run("site", "add", "trl-" + "0" * 24, "hospital", "--ethics", _file(tmp_path, "e.json", "{"),
              "--investigator", "x:principal_investigator")
    assert bad.exit_code == 1 and "error: MALFORMED_ENCODING" in bad.stderr
    usage = run("site", "add", "trl-" + "0" * 24, "hospital", "--ethics", _file(tmp_path, "e2.json", {}),
                "--investigator", "no-role")
    assert usage.exit_code == 1 and "KEY:ROLE" in usage.stderr
    nothing = run("results", "submit", "trl-" + "0" * 24, "--file", _file(tmp_path, "r.json", {"outcomes": []}))
    assert nothing.exit_code == 1 and "MALFORMED_ENCODING" in nothing.stderr
