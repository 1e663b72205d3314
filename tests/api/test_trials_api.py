"""Clinical trials through a real node, real HTTP on loopback and the Python client: every trials route,
its answer held to its OpenAPI model, and its refusals with their codes and statuses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from careledger.api import trials_schemas as ts
from careledger.api.server import BackgroundServer
from careledger.client import ClientError
from careledger.client.trials import TrialsClient, study_key, subject_of
from careledger.contracts.research.study_keys import verify_linkage_statement
from careledger.contracts.trials.safety import DAY_MS
from careledger.core import codec
from careledger.core.crypto import SigningKey
from careledger.core.merkle import ProofError, verify_inclusion
from careledger.trials.anchor_index import check_anchor_proof
from careledger.trials.fhir_export import validate
from careledger.trials.randomisation import generate_schedule
from support import seeded_key
from support.trials import DOC_V1, DOC_V2, FORM_V1, FORM_V2, sample_dataset

STRATUM = "all"
SCHEDULE = generate_schedule(hashlib.sha256(b"careledger-test/api/trials").digest(), [STRATUM], ["app", "sham"],
                             [1, 1], [2, 4], 12)
ETHICS = {"status": "approved", "committee": "Hospital ethics committee", "contact": "rec@hospital.example",
          "approval_date": "2023-10-20", "reference": "H-REC-88"}
FUTURE = {"completion": {"primary": {"date": "2098-06-30", "type": "anticipated"},
                         "study": {"date": "2099-12-31", "type": "anticipated"}},
          "first_enrolment": {"date": "2097-01-05", "type": "anticipated"}}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ok(result: dict[str, Any]) -> Any:
    assert result["receipt"]["code"] == 0, result["receipt"]
    return result["receipt"]["result"]


def held_to(model: type[BaseModel], doc: dict[str, Any]) -> dict[str, Any]:
    """The answer validates against its OpenAPI model and carries no field the model leaves undeclared."""
    parsed = model.model_validate(doc)
    assert not parsed.model_extra, f"{model.__name__} does not declare {sorted(parsed.model_extra or ())}"
    return doc


class People:
    coordinator = seeded_key("api-trials/coordinator")
    investigator = seeded_key("api-trials/investigator")
    steward = seeded_key("api-trials/steward")
    alice = seeded_key("api-trials/alice")
    bob = seeded_key("api-trials/bob")


@pytest.fixture
def api(node: Any, consortium: Any) -> Iterator[TrialsClient]:
    with BackgroundServer(node) as server, TrialsClient(server.url) as client:
        for org, key, roles in (("research", People.coordinator, ["trial_coordinator"]),
                                ("hospital", People.investigator, ["physician"]),
                                ("hospital", People.steward, ["data_steward"])):
            ok(client.send(consortium.admin(org), "identity.enrol_member", 1,
                           {"member": key.public_hex, "org": org, "roles": roles}))
        yield client


def _trial(api: TrialsClient) -> str:
    trial: str = ok(api.register(People.coordinator, sample_dataset(**FUTURE), DOC_V1, FORM_V1,
                                 randomisation=SCHEDULE.commitment()))["trial"]
    ok(api.add_site(People.coordinator, trial, "hospital", ETHICS,
                    [(People.investigator.public_hex, "principal_investigator")]))
    return trial


def _visit(api: TrialsClient, trial: str, who: SigningKey, visit: str, version: int = 1,
           reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"subject": subject_of(who, trial), "visit": visit, "version": version,
                             "resources": [{"type": "Observation", "commitment": _h(f"{visit}/{version}")}]}
    if reason:
        entry["reason"] = reason
    return api.record_visits(People.steward, trial, "hospital", [entry])


def test_a_trial_end_to_end_over_http(api: TrialsClient, node: Any) -> None:
    p = People
    trial = _trial(api)
    listed = held_to(ts.TrialList, api.trial_list())
    assert [t["trial"] for t in listed["trials"]] == [trial]
    reg = held_to(ts.RegistrationView, api.registration(trial))
    assert reg["sponsor"] == "research" and reg["status"]["recruitment"] == "recruiting"
    assert reg["randomisation"]["root"] == SCHEDULE.commitment().root.hex()
    study = validate_and_return(api.research_study(trial))
    assert study["resourceType"] == "ResearchStudy" and study["identifier"][0]["value"] == trial
    assert held_to(ts.SiteList, api.sites(trial))["sites"][0]["investigators"] == [
        {"key": p.investigator.public_hex, "role": "principal_investigator"}]

    # the patient consents under her study key, shows the hospital it is her, and is enrolled
    ok(api.consent(study_key(p.alice, trial), trial, 1, FORM_V1))
    link = verify_linkage_statement(api.linkage_statement(p.alice, trial, "hospital"), api.chain_id(), "hospital",
                                    scope="study", target=trial)
    assert link.subject == subject_of(p.alice, trial)
    enrolled = ok(api.enrol(p.investigator, trial, "hospital", subject_of(p.alice, trial),
                            api.next_allocation(trial, STRATUM, SCHEDULE)))
    assert (enrolled["slot"], enrolled["arm"]) == (0, None)  # masked: only the sealed allocation travels
    subject = held_to(ts.SubjectView, api.subject(trial, subject_of(p.alice, trial)))
    assert subject["enrolment"]["sealed"] and subject["consent"]["version"] == 1
    consent = validate_and_return(api.consent_fhir(trial, subject_of(p.alice, trial)))
    assert consent["policy"][0]["uri"].endswith(f":{trial}:protocol|1")

    # visits anchored; a proof against the tree now
    ok(_visit(api, trial, p.alice, "week-1"))
    ok(_visit(api, trial, p.alice, "week-2"))
    ok(_visit(api, trial, p.alice, "week-1", 2, "transcription error corrected"))
    anchors = held_to(ts.AnchorsView, api.anchors(trial))
    assert anchors["size"] == 3 and anchors["lock"] is None
    proof = held_to(ts.AnchorProofView, api.anchor_proof(trial, subject_of(p.alice, trial), "week-1"))
    assert (proof["version"], proof["leaf_index"], proof["against"], proof["root"]) == (2, 2, "current",
                                                                                        anchors["root"])
    check_anchor_proof(proof)
    verify_inclusion(codec.encode(proof["leaf"]), 2, 3, [bytes.fromhex(x) for x in proof["path"]],
                     bytes.fromhex(proof["root"]))
    first = api.anchor_proof(trial, subject_of(p.alice, trial), "week-1", version=1, size=1)
    assert (first["tree_size"], first["against"], first["path"]) == (1, "size", [])

    # an amendment requiring re-consent: Alice's next visit is refused and she is listed until she re-consents
    ok(api.amend_protocol(p.coordinator, trial, 2, DOC_V2, FORM_V2, "dose changed", reconsent_required=True))
    assert held_to(ts.ProtocolList, api.protocols(trial))["current"] == 2
    assert _visit(api, trial, p.alice, "week-3")["receipt"]["name"] == "TRIAL_RECONSENT_REQUIRED"
    assert held_to(ts.ReconsentList, api.reconsent(trial))["subjects"] == [subject_of(p.alice, trial)]
    assert api.subject(trial, subject_of(p.alice, trial))["awaiting_reconsent"] is True
    ok(api.consent(study_key(p.bob, trial), trial, 2, FORM_V2))
    ok(api.consent(study_key(p.alice, trial), trial, 2, FORM_V2))
    assert api.reconsent(trial)["subjects"] == []
    ok(_visit(api, trial, p.alice, "week-3"))

    # a life-threatening SUSAR: pending at the latest block, overdue as of its deadline
    event = ok(api.report_adverse_event(p.steward, trial, "hospital", subject_of(p.alice, trial), _h("ae"),
                                        ["life_threatening"], "unexpected", "related"))
    safety = held_to(ts.SafetyView, api.safety(trial))
    [susar] = safety["susars"]
    assert (susar["event"], susar["initial"], safety["overdue"], safety["forecast"]) == (
        event["event"], "pending", 0, False)
    assert safety["as_of_ms"] == safety["latest_block_ms"] == node.status()["latest_block_time_ms"]
    assert api.overdue()["susars"] == []
    due = event["initial_due_ms"]
    assert susar["initial_due_ms"] == due and (due - susar["day0_ms"]) // DAY_MS == 7
    ahead = held_to(ts.SafetyView, api.overdue(as_of_ms=due))
    assert ahead["forecast"] and [s["event"] for s in ahead["susars"]] == [event["event"]]
    assert api.safety(trial, as_of_ms=due - 1)["overdue"] == 0
    assert api.safety(trial, as_of_ms=susar["day0_ms"] - 1)["susars"] == []  # as of before the event
    ok(api.submit_safety_report(p.coordinator, trial, event["event"], "initial", _h("report")))
    assert api.overdue(as_of_ms=due)["susars"] == []  # reported on time: nothing will be overdue at Day 7
    assert api.safety(trial)["susars"][0]["initial"] == "on_time"

    # lock, proofs against the lock, unblinding from the sponsor's schedule, results with a switched outcome
    locked = ok(api.lock(p.coordinator, trial, root=api.anchors(trial)["root"]))
    assert locked["size"] == 4
    proof = api.anchor_proof(trial, subject_of(p.alice, trial), "week-2")
    assert proof["against"] == "lock" and proof["root"] == locked["root"]
    check_anchor_proof(proof)
    changed = {**proof, "leaf": {**proof["leaf"], "resources": [["Observation", _h("changed after lock")]]}}
    changed["leaf_hash"] = hashlib.sha256(b"\x00" + codec.encode(changed["leaf"])).hexdigest()
    with pytest.raises(ProofError):
        check_anchor_proof(changed)
    unblinding = api.unblinding(trial, [subject_of(p.alice, trial)], SCHEDULE)
    assert ok(api.unblind(p.coordinator, trial, unblinding))["unblinded"] == 1
    assert api.subject(trial, subject_of(p.alice, trial))["enrolment"]["arm"] == SCHEDULE.allocation(STRATUM, 0).arm
    with pytest.raises(ClientError) as err:
        api.results(trial)
    assert (err.value.name, err.value.http_status) == ("NOT_FOUND", 404)
    summary = {"brief_summary": "s", "baseline_characteristics": "b", "participant_flow": "f", "adverse_events": "a"}
    outcomes = [{"id": "P1", "role": "primary", "measure": "Knee pain", "method": "Numerical rating scale 0-10",
                 "time_frame": "24 weeks", "result": "MD -1.2"},
                {"id": "S1", "role": "secondary", "measure": "Knee range of motion", "method": "Goniometer, degrees",
                 "time_frame": "12 weeks", "result": "+4 degrees"},
                {"id": "S2", "role": "secondary", "measure": "Knee function", "method": "KOOS function score",
                 "time_frame": "12 weeks", "result": "+6"}]
    ok(api.submit_results(p.coordinator, trial, outcomes, summary, _h("analysis data")))
    results = held_to(ts.ResultsView, api.results(trial))
    assert [(f["kind"], f["outcome"], f["declared"]) for f in results["flags"]] == [
        ("time_frame_changed", "P1", False)]
    assert results["silent"] == 1 and results["baseline_version"] == 1
    history = held_to(ts.RegistrationHistory, api.registrations(trial))
    assert history["baseline"]["version"] == 1 and [v["version"] for v in history["versions"]] == [1]
    final = api.research_study(trial)
    assert any(e["url"].endswith("trds-summary-results") for e in final["extension"])


def validate_and_return(doc: dict[str, Any]) -> dict[str, Any]:
    held_to(ts.FhirResource, {"resourceType": doc["resourceType"]})
    validate(doc)  # the fhir.resources R4B model of its type
    return doc


def test_refusals_have_their_codes_and_statuses(api: TrialsClient) -> None:
    trial = _trial(api)
    unknown = "trl-" + "0" * 24
    calls: list[Callable[[], object]] = [
        lambda: api.registration(unknown), lambda: api.safety(unknown), lambda: api.sites(unknown),
        lambda: api.research_study(unknown), lambda: api.anchor_proof(unknown, "sp-" + "0" * 32, "v1")]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        assert (err.value.name, err.value.http_status) == ("TRIAL_UNKNOWN", 404)
    subject = subject_of(People.alice, trial)
    for call, name, status in (
            (lambda: api.anchor_proof(trial, subject, "v1"), "NOT_FOUND", 404),
            (lambda: api.subject(trial, subject), "NOT_FOUND", 404),
            (lambda: api.consent_fhir(trial, subject), "NOT_FOUND", 404),
            (lambda: api.results(trial), "NOT_FOUND", 404),
            (lambda: api.anchor_proof(trial, subject, "v1", size=5), "BAD_REQUEST", 400),
            (lambda: api.registration("bad id!"), "BAD_REQUEST", 400),
            (lambda: api.subject(trial, "pt-" + "0" * 32), "BAD_REQUEST", 400),
            (lambda: api.safety(trial, as_of_ms=-1), "BAD_REQUEST", 400)):
        with pytest.raises(ClientError) as err:
            call()
        assert (err.value.name, err.value.http_status) == (name, status)


def test_every_trials_route_declares_its_model_and_statuses(api: TrialsClient) -> None:
    doc = httpx.get(f"{api._http.base_url}/openapi.json").json()
    routes = {path: ops for path, ops in doc["paths"].items() if path.startswith("/v1/trials")}
    assert len(routes) == 14
    for path, ops in routes.items():
        assert set(ops) == {"get"}, path
        responses = ops["get"]["responses"]
        assert "200" in responses and "500" in responses and "422" not in responses, path
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
        if "{trial}" in path:
            assert {"400", "404"} <= set(responses), path
    assert "503" in routes["/v1/trials/{trial}/anchors/{subject}/{visit}"]["get"]["responses"]
    assert "TrialRegistrationDataSet" in doc["components"]["schemas"]


def test_registration_versions_sites_and_withdrawal_through_the_client(api: TrialsClient) -> None:
    p = People
    trial = _trial(api)
    ok(api.update_registration(p.coordinator, trial, sample_dataset(**FUTURE, countries=["GB", "FR", "DE"]),
                               "a third country"))
    ok(api.set_recruitment_status(p.coordinator, trial, "suspended", "interim safety review"))
    history = held_to(ts.RegistrationHistory, api.registrations(trial))
    assert [(v["version"], v["reason"]) for v in history["versions"]] == [
        (1, None), (2, "a third country"), (3, "interim safety review")]
    assert history["baseline"]["version"] == 3 and history["first_enrolment_height"] is None  # no one enrolled yet
    assert api.registration(trial)["status"]["recruitment"] == "suspended"
    ok(api.set_recruitment_status(p.coordinator, trial, "recruiting", "review passed"))
    nurse = seeded_key("api-trials/nurse")
    refused = api.set_site_investigators(p.coordinator, trial, "hospital",
                                         [(nurse.public_hex, "principal_investigator")])
    assert refused["receipt"]["name"] == "TRIAL_INVESTIGATOR_INVALID"  # not a member of the hospital
    ok(api.set_site_investigators(p.coordinator, trial, "hospital",
                                  [(p.investigator.public_hex, "principal_investigator")]))
    ok(api.set_site_status(p.coordinator, trial, "hospital", "suspended", "monitoring visit"))
    assert api.sites(trial)["sites"][0]["status"] == "suspended"
    ok(api.consent(study_key(p.alice, trial), trial, 1, FORM_V1))
    refused = api.enrol(p.investigator, trial, "hospital", subject_of(p.alice, trial),
                        api.next_allocation(trial, STRATUM, SCHEDULE))
    assert refused["receipt"]["name"] == "TRIAL_SITE_INACTIVE"
    ok(api.withdraw_consent(study_key(p.alice, trial), trial))
    assert api.subject(trial, subject_of(p.alice, trial))["consent"]["status"] == "withdrawn"
