"""The demo's clinical-trial chapters, through the real HTTP API and the trials client: a registration
and its FHIR export, an amendment, one subject enrolled and one refused for stale consent, a SUSAR
whose report comes late, a database lock with a proof, and results with a switched outcome flagged.

Imported by :mod:`careledger.demo.story` (which appends :data:`CHAPTERS`); it imports the story module
only inside functions, so the two modules load in either order.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from careledger.client.trials import TrialsClient, study_key, subject_of
from careledger.contracts.research.study_keys import verify_linkage_statement
from careledger.trials.anchor_index import check_anchor_proof
from careledger.trials.randomisation import AllocationSchedule, generate_schedule

if TYPE_CHECKING:
    from careledger.demo.story import Story

SPONSOR, SITE, STRATUM = "uni-research", "st-marys", "st-marys|all"
ARMS = ["exercise-app", "sham-app"]


def _fail(message: str) -> Exception:
    from careledger.demo.story import DemoFailed

    return DemoFailed(message)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _client(s: Story) -> TrialsClient:
    client = s.facts.get("trials_client")
    if client is None:
        client = s.facts["trials_client"] = TrialsClient(str(s.client._http.base_url))
    assert isinstance(client, TrialsClient)
    return client


def _expect(s: Story, result: dict[str, Any], name: str = "OK") -> Any:
    """Print a committed result's receipt; stop the demo unless its code is ``name``."""
    receipt = result["receipt"]
    s._print_receipt(result["height"], result["tx_hash"], receipt)
    if receipt["name"] != name:
        raise _fail(f"expected {name}, got {receipt['name']}: {receipt.get('message')}")
    return receipt["result"]


def _date(ms: int, days: int) -> str:
    return (datetime.fromtimestamp(ms / 1000, tz=UTC) + timedelta(days=days)).date().isoformat()


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def dataset(now_ms: int) -> dict[str, Any]:
    """A synthetic WHO data set (no real trial), its dates relative to ``now_ms``."""
    return {
        "secondary_ids": [{"issuer": "Sponsor protocol number", "id": "KNEE-APP-01"}],
        "funding_sources": ["University Research Institute endowment"], "primary_sponsor": "University Research "
        "Institute", "secondary_sponsors": ["St Mary's Hospital"],
        "public_contact": {"name": "Trial office", "email": "trials@uni-research.example.org"},
        "scientific_contact": {"name": "Chief investigator's office", "email": "ci@uni-research.example.org"},
        "public_title": "A home exercise app for knee pain after knee replacement",
        "scientific_title": "Randomised, double-blind, sham-controlled trial of an app-guided home exercise programme "
                            "after total knee arthroplasty", "acronym": "KNEE-APP",
        "countries": ["GB"], "conditions": [{"text": "Primary osteoarthritis of knee",
                                             "system": "http://hl7.org/fhir/sid/icd-10", "code": "M17.1"}],
        "arms": [{"label": ARMS[0], "type": "experimental", "description": "App-guided exercises, 12 weeks"},
                 {"label": ARMS[1], "type": "sham_comparator", "description": "App with general advice only"}],
        "interventions": [{"name": "Exercise app", "type": "device", "description": "Guided exercises",
                           "arms": [ARMS[0]]},
                          {"name": "Sham app", "type": "device", "description": "Advice only", "arms": [ARMS[1]],
                           "comparator": True}],
        "eligibility": {"inclusion": ["Primary total knee arthroplasty within the last 6 weeks"], "sex": "all",
                        "min_age": {"value": 50, "unit": "years"}},
        "design": {"type": "interventional", "allocation": "randomised", "masking": "double", "assignment": "parallel",
                   "purpose": "treatment", "phase": "not_applicable"},
        "first_enrolment": {"date": _date(now_ms, 7), "type": "anticipated"}, "sample_size": {"target": 8},
        "recruitment_status": "recruiting",
        "primary_outcomes": [{"id": "P1", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
                              "time_frame": "12 weeks"}],
        "secondary_outcomes": [{"id": "S1", "measure": "Knee function", "method": "KOOS function score",
                                "time_frame": "12 weeks"}],
        "ethics_reviews": [{"status": "approved", "committee": "University research ethics committee",
                            "contact": "ethics@uni-research.example.org", "approval_date": _date(now_ms, -30),
                            "reference": "UREC-26-117"}],
        "completion": {"primary": {"date": _date(now_ms, 365), "type": "anticipated"},
                       "study": {"date": _date(now_ms, 540), "type": "anticipated"}},
        "ipd_sharing": {"plan": "yes", "description": "De-identified data on request after publication"},
    }


def chapter_trial_registration(s: Story) -> None:
    c, t = s.consortium, _client(s)
    coordinator, dr_osei = s.person("trial_coordinator"), s.person("dr_osei")
    s.chapter("Clinical trials: registration before enrolment")
    s.step("The institute enrols a trial coordinator; the sponsor draws its allocation sequence in secret "
           "(stratified permuted blocks from a 32-byte seed) and commits only its Merkle root.")
    _expect(s, t.send(c.admin(SPONSOR), "identity.enrol_member", 1, {
        "member": coordinator.public_hex, "org": SPONSOR, "roles": ["trial_coordinator"]}))
    schedule = generate_schedule(secrets.token_bytes(32), [STRATUM], ARMS, [1, 1], [2, 4], 8)
    s.facts["trial_schedule"] = schedule
    now = int(t.status()["latest_block_time_ms"])
    s.step("The coordinator registers the trial with the WHO Trial Registration Data Set (24 items): outcomes, "
           "time frames, ethics approval; the protocol stays off the ledger, only its hash is on it.")
    registered = _expect(s, t.register(coordinator, dataset(now), _h("KNEE-APP protocol v1"), _h("consent form v1"),
                                       randomisation=schedule.commitment()))
    trial = s.facts["trial"] = registered["trial"]
    s.step("St Mary's joins as a site with its own ethics approval; Dr Osei is its principal investigator.")
    _expect(s, t.add_site(coordinator, trial, SITE, {
        "status": "approved", "committee": "St Mary's research ethics committee", "contact": "rec@st-marys.example",
        "approval_date": _date(now, -10), "reference": "SM-REC-88"}, [(dr_osei.public_hex, "principal_investigator")]))
    study = t.research_study(trial)
    extensions = sorted({e["url"].rsplit("/", 1)[-1] for e in study["extension"]})
    s.console.print(f"    any member exports it as FHIR ResearchStudy (validated): {len(study['extension'])} WHO "
                    f"extensions ({', '.join(extensions[:4])}, …)")


def chapter_trial_consent(s: Story) -> None:
    t, trial = _client(s), s.facts["trial"]
    schedule: AllocationSchedule = s.facts["trial_schedule"]
    coordinator, dr_osei = s.person("trial_coordinator"), s.person("dr_osei")
    alice, bob = s.person("patient"), s.person("trial_patient_bob")
    s.chapter("Clinical trials: consent to the current protocol, concealed randomisation")
    s.step("The patient derives a key for this trial alone and consents to protocol version 1 with it: the "
           "ledger sees only a per-trial pseudonym, unlinkable to her patient pseudonym.")
    consented = _expect(s, t.consent(study_key(alice, trial), trial, 1, _h("consent form v1")))
    statement = t.linkage_statement(alice, trial, SITE)
    link = verify_linkage_statement(statement, t.chain_id(), SITE, scope="study", target=trial)
    s.console.print(f"    off the ledger she tells St Mary's alone that {consented['subject'][:14]}… is "
                    f"{link.patient[:14]}… (a statement signed by both keys, addressed to St Mary's)")
    s.step("Dr Osei enrols her with the next allocation of her stratum: for a double-blind trial only the sealed "
           "allocation and its proof against the registered root travel.")
    enrolled = _expect(s, t.enrol(dr_osei, trial, SITE, subject_of(alice, trial),
                                  t.next_allocation(trial, STRATUM, schedule)))
    s.console.print(f"    slot {enrolled['slot']} of {enrolled['stratum']}; arm: {enrolled['arm']} (sealed until "
                    "unblinding)")
    s.step("Another patient consents to version 1 too, but is not enrolled yet.")
    _expect(s, t.consent(study_key(bob, trial), trial, 1, _h("consent form v1")))
    s.step("The sponsor amends the protocol (version 2, a new visit schedule) and requires re-consent.")
    _expect(s, t.amend_protocol(coordinator, trial, 2, _h("KNEE-APP protocol v2"), _h("consent form v2"),
                                "visit schedule changed after the pilot", reconsent_required=True))
    s.step("Enrolling him on his consent to the superseded version is refused.")
    _expect(s, t.enrol(dr_osei, trial, SITE, subject_of(bob, trial), t.next_allocation(trial, STRATUM, schedule)),
            "TRIAL_CONSENT_STALE")
    s.step("The patient's week-1 visit data (kept in St Mary's vault) are refused too, until she re-consents.")
    visit = [{"subject": subject_of(alice, trial), "visit": "week-1",
              "resources": [{"type": "Observation", "commitment": _h("week-1 pain score")}]}]
    _expect(s, t.record_visits(dr_osei, trial, SITE, visit), "TRIAL_RECONSENT_REQUIRED")
    s.console.print(f"    awaiting re-consent: {t.reconsent(trial)['subjects']}")
    _expect(s, t.consent(study_key(alice, trial), trial, 2, _h("consent form v2")))
    _expect(s, t.record_visits(dr_osei, trial, SITE, visit))


def chapter_trial_safety(s: Story) -> None:
    t, trial = _client(s), s.facts["trial"]
    dr_osei, alice = s.person("dr_osei"), s.person("patient")
    s.chapter("Clinical trials: a SUSAR's deadline, derived from block time")
    s.step("Dr Osei records a life-threatening, unexpected, related adverse event: a SUSAR. Day 0 is the "
           "block's time; ICH E2A wants the initial report within 7 days and the complete one by day 15.")
    event = _expect(s, t.report_adverse_event(dr_osei, trial, SITE, subject_of(alice, trial),
                                              _h("AdverseEvent in St Mary's vault"), ["life_threatening"],
                                              "unexpected", "related"))
    due = int(event["initial_due_ms"])
    s.facts["trial_susar"] = event["event"]
    now = t.safety(trial)
    s.console.print(f"    now ({_when(now['as_of_ms'])}): initial report {now['susars'][0]['initial']}, due before "
                    f"{_when(due)}")
    s.step("'Overdue' is never stored: it is derived from the latest committed block's time, so it appears at "
           "the first block past the deadline without anyone sending a transaction. The regulator's list, asked "
           "as of the deadline (this demo's clock cannot skip a week):")
    ahead = t.overdue(as_of_ms=due)
    for susar in ahead["susars"]:
        s.console.print(f"    [bold red]OVERDUE[/] {susar['trial']} {susar['event']} ({susar['category']}), "
                        f"initial report {susar['initial']}")
    if [x["event"] for x in ahead["susars"]] != [event["event"]]:
        raise _fail("the SUSAR is not on the regulator's overdue list at its deadline")
    s.console.print("    [dim]a report committed after the deadline is recorded late: true "
                    "(tests/contracts/trials replay both at the exact block)[/]")
    s.step("The sponsor files its initial report now, on time.")
    _expect(s, t.submit_safety_report(s.person("trial_coordinator"), trial, event["event"], "initial",
                                      _h("CIOMS I report")))


def chapter_trial_results(s: Story) -> None:
    t, trial = _client(s), s.facts["trial"]
    coordinator, alice = s.person("trial_coordinator"), s.person("patient")
    schedule: AllocationSchedule = s.facts["trial_schedule"]
    s.chapter("Clinical trials: lock, unblinding, and an outcome switched")
    s.step("The sponsor locks the database: the anchor tree's root is recorded, as cheap at 1M anchors as at 10.")
    locked = _expect(s, t.lock(coordinator, trial, root=t.anchors(trial)["root"]))
    proof = t.anchor_proof(trial, subject_of(alice, trial), "week-1")
    check_anchor_proof(proof)
    s.console.print(f"    root {locked['root'][:16]}… over {locked['size']} anchored visit version(s); the "
                    "week-1 proof checks offline against it")
    s.step("Unblinding: each arm and salt opens the allocation sealed at enrolment.")
    _expect(s, t.unblind(coordinator, trial, t.unblinding(trial, [subject_of(alice, trial)], schedule)))
    s.step("Results report the primary outcome at 24 weeks, not the registered 12, without saying so.")
    outcomes = [{"id": "P1", "role": "primary", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
                 "time_frame": "24 weeks", "result": "MD -1.2 (95% CI -2.0 to -0.4)"},
                {"id": "S1", "role": "secondary", "measure": "Knee function", "method": "KOOS function score",
                 "time_frame": "12 weeks", "result": "MD +6.1"}]
    summary = {"brief_summary": "The app reduced knee pain.", "baseline_characteristics": "Balanced arms.",
               "participant_flow": "1 randomised, 1 analysed.", "adverse_events": "One SUSAR, reported on time."}
    _expect(s, t.submit_results(coordinator, trial, outcomes, summary, _h("analysis data set")))
    for flag in t.results(trial)["flags"]:
        kind = "declared" if flag["declared"] else "[bold red]silent[/]"
        s.console.print(f"    flagged: {flag['kind']} {flag['outcome']} ({kind}): {flag['detail']}")


CHAPTERS = [chapter_trial_registration, chapter_trial_consent, chapter_trial_safety, chapter_trial_results]
