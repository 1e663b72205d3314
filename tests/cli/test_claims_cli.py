"""``careledger claims`` against a real node: a claim submitted, adjudicated, paid, seen by the patient and
re-checked; ``verify-adjudication`` exits 4 on a package that does not reproduce the ledger."""

from __future__ import annotations

import json
from pathlib import Path

from careledger.core.errors import Code
from careledger.keys import write_key
from support.claims_node import ClaimsNode, claims_node_fixture, coverage_resource, today  # noqa: F401
from support.cli import run_cli


def cli(w: ClaimsNode, *args: str) -> tuple[int, str, str]:
    result = run_cli(*args, "--home", str(w.home.path), "--url", w.url)
    return result.exit_code, result.stdout, result.stderr


def keyring(w: ClaimsNode) -> None:
    for name, key in w.keys.items():
        write_key(w.home.keys_dir / f"{name}.json", key, name)


def test_a_claims_life_on_the_command_line(claims_node: ClaimsNode, tmp_path: Path) -> None:
    w = claims_node
    keyring(w)
    record, rid = w.encounter()
    claim_file = tmp_path / "claim.json"
    claim_file.write_text(json.dumps(w.claim_resource(rid)))
    code, out, err = cli(w, "--json", "claims", "submit", str(claim_file), "--provider", "hospital", "--patient",
                         w.pseudonym(), "--encounter", record, "--coverage", w.coverages[("insurer", "patient")],
                         "--insurer", "insurer", "--as", "hospital-officer")
    assert code == 0, err
    claim = json.loads(out)["receipt"]["result"]["claim"]
    code, out, err = cli(w, "claims", "adjudicate", claim, "--as", "insurer-officer")
    assert code == 0 and "approved" in out, err
    assert cli(w, "claims", "pay", claim, "--as", "insurer-officer")[0] == 0
    code, out, _ = cli(w, "--json", "claims", "status", claim, "--as", "patient")
    assert code == 0 and json.loads(out)["claim"]["status"] == "paid"
    code, out, _ = cli(w, "--json", "claims", "eob", claim, "--as", "patient")
    assert code == 0 and json.loads(out)["resourceType"] == "ExplanationOfBenefit"
    package = tmp_path / "package.json"
    code, out, err = cli(w, "claims", "verify-adjudication", claim, "--as", "patient", "--save", str(package))
    assert code == 0 and "reproduced" in out, err
    forged = json.loads(package.read_text())
    forged["result"]["lines"][0]["benefit"] += 100  # the insurer claims to have paid more
    forged["result"]["lines"][0]["adjustments"][0][2] -= 100
    forged["result"]["totals"]["benefit"] += 100
    package.write_text(json.dumps(forged))
    code, out, _ = cli(w, "--json", "claims", "verify-adjudication", claim, "--as", "patient", "--package",
                       str(package))
    report = json.loads(out)
    # the inputs re-run to the ledger's result; the result the package says was sent is not that one
    assert code == 4 and not report["ok"] and report["input_matches"] and report["result_matches"]
    assert {d["path"] for d in report["differences"]} >= {"lines[0].benefit", "totals.benefit"}


def test_coverage_eligibility_plans_flags_and_refusals(claims_node: ClaimsNode, tmp_path: Path) -> None:
    w = claims_node
    keyring(w)
    code, out, _ = cli(w, "--json", "claims", "coverage", "show", "--as", "patient")
    assert code == 0 and {c["insurer"] for c in json.loads(out)} == {"insurer", "insurer-b"}
    code, out, _ = cli(w, "--json", "claims", "eligibility", "--patient", w.pseudonym(), "--as", "hospital-officer")
    doc = json.loads(out)
    assert code == 0 and doc["covered"] and doc["primary"] == "insurer"
    assert [r["resourceType"] for r in doc["responses"]] == ["CoverageEligibilityResponse"] * 2
    code, out, _ = cli(w, "--json", "claims", "plan", "show", "insurer", "example-ppo")
    assert code == 0 and json.loads(out)["versions"][0]["version"] == 1
    coverage_file = tmp_path / "coverage.json"
    coverage_file.write_text(json.dumps(coverage_resource(w.pseudonym("patient-2"), "insurer", today(), order=3)))
    code, out, _ = cli(w, "--json", "claims", "coverage", "register", str(coverage_file), "--insurer", "insurer",
                       "--patient", w.pseudonym("patient-2"), "--as", "insurer-officer")
    assert code == 0 and json.loads(out)["receipt"]["result"]["coverage"].startswith("cov-")
    code, out, _ = cli(w, "--json", "claims", "flags", "--insurer", "insurer", "--as", "insurer-officer")
    assert code == 0 and json.loads(out) == []
    code, _, err = cli(w, "claims", "flags", "--insurer", "insurer", "--as", "hospital-officer")
    assert code == 1 and f"CLAIM_NOT_INSURER ({int(Code.CLAIM_NOT_INSURER)})" in err
    code, _, err = cli(w, "claims", "status", "clm-" + "0" * 24, "--as", "patient")
    assert code == 1 and "CLAIM_UNKNOWN" in err
    # a refused transaction is committed with its code: exit 3
    claim = w.submit()["receipt"]["result"]["claim"]
    code, out, _ = cli(w, "claims", "pay", claim, "--as", "insurer-officer", "--remittance", "ab" * 32)
    assert code == 3 and "CLAIM_BAD_TRANSITION" in out
