"""The demo's research chapter: a study registered, patients' consents under study keys, one revoked, a
de-identified release with its report, verified by the researcher, the patient's log, an aggregate query
(appended to :data:`careledger.demo.story.CHAPTERS`; St Mary's vault is the records chapters')."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from careledger.client.records import RecordsClient
from careledger.client.research import ResearchClient, study_key
from careledger.core.crypto import SigningKey
from careledger.research.synthetic import generate_patient
from careledger.vault.canonical import canonical_bytes, json_of_canonical

if TYPE_CHECKING:
    from careledger.demo.story import Story

PARTICIPANTS = 12
DAY_MS = 86_400_000


def _research(s: Story) -> ResearchClient:
    client = s.facts.get("research_client")
    if client is None:
        client = s.facts["research_client"] = ResearchClient(str(s.client._http.base_url), timeout=60)
    assert isinstance(client, ResearchClient)
    return client


def _fail(message: str) -> Exception:
    from careledger.demo.story import DemoFailed

    return DemoFailed(message)


def chapter_research(s: Story) -> None:
    c, rc = s.consortium, _research(s)
    researcher, steward = s.person("researcher"), c.admin("st-marys")
    s.chapter("Research: a study, consents under study keys, a de-identified release, an aggregate query")
    now = int(time.time() * 1000)
    s.step("The university's researcher registers a study (a FHIR ResearchStudy): what it requests, its ethics "
           "approval, and its anonymity rules (k ≥ 5 on birth year, sex and ZIP3).")
    result = s.send(researcher, "research.register_study", {
        "sponsor": "uni-research", "title": "Cardiometabolic outcomes in primary care", "category": "cardiometabolic",
        "ethics_ref": "IRB-2026-117", "purpose": "HRESCH",
        "period": {"start_ms": now - DAY_MS, "end_ms": now + 365 * DAY_MS},
        "request": {"resource_types": ["Condition", "Encounter", "Immunization", "MedicationRequest", "Observation",
                                       "Patient", "Procedure"]},
        "anonymity": {"k": 5, "quasi_identifiers": ["birth_year", "sex", "zip3"]}})
    study = result["receipt"]["result"]["study"]
    s.step(f"St Mary's holds the records of {PARTICIPANTS} patients (generated, with names, SSNs, addresses and "
           "birth dates: Safe Harbor has work to do), stored through its gateway by Dr Osei.")
    writer = RecordsClient(s.client, s.person("dr_osei"))
    participants: list[SigningKey] = []
    for i in range(PARTICIPANTS):
        key = s.person(f"participant-{i}")
        pseudonym = rc.send(key, "identity.register_patient", 1, {})["receipt"]["result"]["pseudonym"]
        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": r} for r in generate_patient("demo", i, encounters=2)]}
        writer.store("st-marys", pseudonym, json_of_canonical(canonical_bytes(bundle)))
        participants.append(key)
    s.step("Each patient consents with a key derived for this study alone (never registered: the ledger cannot "
           "link it to her) and hands St Mary's, off the ledger, her linkage statement.")
    consents = []
    for key in participants:
        out = rc.consent(study_key(key, "study", study), "study", study)
        if out["receipt"]["code"]:
            raise _fail(f"research.consent refused: {out['receipt']['name']}")
        consents.append(out["receipt"]["result"])
        rc.link(key, "study", study, "st-marys")
    s.console.print(f"    {len(consents)} consents, e.g. {consents[0]['consent']} by {consents[0]['subject']}")
    s.step("One patient changes her mind and revokes her consent with the same study key.")
    s.send(study_key(participants[0], "study", study), "research.revoke_consent", {"consent": consents[0]["consent"]})

    s.step("St Mary's data steward asks its gateway for a release to the researcher: consenting patients only, "
           "Safe Harbor, then k-anonymity by generalisation; anchored with its consent snapshot.")
    built = rc.build_release(steward, "st-marys", study, researcher.public_hex)
    r = built["report"]
    s.console.print(f"    [green]release {built['release']}[/] at block {built['height']}: {r['subjects']} patients "
                    f"({r['suppressed']} suppressed), {r['records']} records, k = {r['k_achieved']} "
                    f"(required {r['k_required']})")
    s.console.print(f"    [dim]generalisation {built['generalisation']} · rules {r['rule_version']} · ZIP3 list "
                    f"{r['zip3_list']} ({r['zip3_vintage']}) · dataset root {r['dataset_root'][:16]}…[/]")
    s.step("The researcher fetches the package sealed to her key and verifies it against the anchor: report "
           "signature, Merkle root, Safe Harbor on every resource, k measured on the data.")
    checked = rc.verify_release(researcher, built["release"])
    s.console.print(f"    [green]verified[/]: {checked['records']} records of {checked['subjects']} patients, "
                    f"k = {checked['k']}, files {', '.join(checked['files'])}")
    s.step("A participant reads her research log (her client derives her study keys; no one else can), and "
           "the one who revoked finds nothing.")
    mine = rc.research_log(participants[1], [("study", study)])
    gone = rc.research_log(participants[0], [("study", study)])
    if len(mine["releases"]) != 1 or gone["releases"]:
        raise _fail("the research logs do not show the release as they should")
    s.console.print(f"    \"{mine['releases'][0]['text']}\"; the revoked patient's log: {len(gone['releases'])} "
                    "entries")

    s.step("The researcher asks every custodian how many participants it holds, then the count by sex; each "
           "answers under the same consent rules, withholds cells under 11, and anchors its answer's hash.")
    for group_by in ([], ["sex"]):
        asked = s.send(researcher, "research.query", {"query": {"group_by": group_by, "measure": "count"},
                                                       "study": study})
        results = rc.results(researcher, asked["receipt"]["result"]["query"], wait_s=30)
        if not results["answers"]:
            raise _fail("no custodian answered the query")
        for answer in results["answers"]:
            cells = ", ".join(f"{'/'.join(x['group'].values()) or 'all'}: "
                              f"{'withheld (under 11)' if x['suppressed'] else x['count']}"
                              for x in answer["cells"]) or "no consenting patients here"
            s.console.print(f"    {answer['custodian']}: {cells}  [dim](hash matches the anchor)[/]")


CHAPTERS: list[Any] = [chapter_research]
