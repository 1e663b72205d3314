"""The claims, research and trials views, and the patient's claims, research log and trials, clicked
through in a real Chromium against a real node.

The world is the claims end-to-end node (tests/support/claims_node.py: a hospital and two insurers with
their vaults and desks, claims officers, patients with coverages and consent for payment, the example
plan and the approved edit table), plus a researcher and a trial coordinator at the research
organisation, a study the patient consented to with her study key, and one registered trial with a
site. Two claims are submitted for one encounter, to each insurer (the ledger flags the duplicate to
both), and the first is adjudicated through the Python client; in the page the insurer's officer reads
the flag feed and the claim's status (signed requests) and records the payment (a signed
transaction), and the patient opens her claim and her Explanation of Benefit. Each view is checked
with axe-core and photographed for the README.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.api.server import serve_in_thread
from careledger.client import Client
from careledger.contracts.claims.layout import get_claim
from careledger.contracts.research.study_keys import compute_study_pseudonym, derive_study_key
from careledger.core.crypto import SigningKey
from careledger.keys import write_key
from careledger.node.home import init_home
from careledger.trials.randomisation import generate_schedule
from support import GENESIS_TIME_MS, make_consortium, seeded_key
from support.claims import ORGS, ROLES
from support.claims_node import PLAN, ClaimsNode, build, close_world
from support.console import axe_check, launch, load_key, new_context, require_browser, screenshot
from support.trials import DOC_V1, FORM_V1, SPONSOR_SEED, STRATA, sample_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


DAY_MS = 86_400_000


class Desks:
    """The node, its URL, the people's keys and the facts the tests click against."""

    def __init__(self, world: ClaimsNode, keys_dir: Path) -> None:
        self.world = world
        self.node = world.node
        self.url = world.url
        self.ui = world.url + "/ui/"
        self.keys_dir = keys_dir
        self.keys: dict[str, SigningKey] = dict(world.keys)
        self.facts: dict[str, Any] = {}

    def key_file(self, who: str) -> Path:
        return self.keys_dir / f"{who}.json"

    def send(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self.world.send(key, tx_type, payload)


@pytest.fixture(scope="module")
def desks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desks]:
    root = tmp_path_factory.mktemp("console-desks")
    consortium = make_consortium(ORGS, ROLES, label="desks-")
    genesis = consortium.write_genesis(root / "genesis.json")
    key_file = root / "validator.json"
    write_key(key_file, consortium.validator, "validator")
    home = init_home(root / "home", genesis, key_file, GENESIS_TIME_MS, chain_id=consortium.chain_id)
    node = home.open_node()
    node.start()
    server = serve_in_thread(node)
    world = build(node, home, server.url, consortium)
    d = Desks(world, root / "keyfiles")
    try:
        for name, role in (("researcher", "researcher"), ("coordinator", "trial_coordinator")):
            d.keys[name] = seeded_key(f"console-desks/{name}")
            d.send(consortium.admin("research"), "identity.enrol_member",
                   {"member": d.keys[name].public_hex, "org": "research", "roles": [role]})
        sequence = generate_schedule(SPONSOR_SEED, STRATA, ["app", "sham"], [1, 1], [2, 4], 8).commitment()
        trial = d.send(d.keys["coordinator"], "trials.register", {
            "dataset": sample_dataset(), "protocol": {"consent_form_hash": FORM_V1, "document_hash": DOC_V1},
            "randomisation": {"root": sequence.root.hex(),
                              "strata": [{"name": name, "slots": n} for name, n in sequence.strata]}})
        d.facts["trial"] = trial["receipt"]["result"]["trial"]
        ethics = {"status": "approved", "committee": "Hospital ethics committee", "contact": "rec@hospital.example",
                  "approval_date": "2023-10-20", "reference": "H-REC-88"}
        d.send(d.keys["coordinator"], "trials.add_site", {
            "trial": d.facts["trial"], "org": "hospital", "ethics": ethics,
            "investigators": [{"key": d.keys["dr"].public_hex, "role": "principal_investigator"}]})
        # the patient consented, with her study key, to a study of the registry (the page finds it)
        now = int(time.time() * 1000)
        study = d.send(d.keys["researcher"], "research.register_study", {
            "anonymity": {"k": 5, "quasi_identifiers": ["birth_year", "sex", "zip3"]}, "category": "respiratory",
            "ethics_ref": "IRB-2026-031", "period": {"end_ms": now + 400 * DAY_MS, "start_ms": now - DAY_MS},
            "purpose": "HRESCH", "request": {"resource_types": ["Condition", "Patient"]}, "sponsor": "research",
            "title": "Asthma control in adults"})
        d.facts["study"] = study["receipt"]["result"]["study"]
        d.send(derive_study_key(d.keys["patient"].seed, d.facts["study"]), "research.consent",
               {"resource_types": [], "scope": "study", "target": d.facts["study"]})
        # one encounter billed to both insurers (flagged to both); the first claim adjudicated
        encounter = world.encounter()
        d.facts["claim"] = world.submit("patient", encounter=encounter)["receipt"]["result"]["claim"]
        d.facts["duplicate"] = world.submit("patient", insurer="insurer-b", encounter=encounter)[
            "receipt"]["result"]["claim"]
        assert world.claims("insurer-officer").adjudicate(d.facts["claim"])["receipt"]["code"] == 0
        world.wait_idle()
        for name, key in d.keys.items():
            write_key(d.key_file(name), key, name)
        yield d
    finally:
        close_world(world, server, node)


@pytest.fixture(scope="module")
def browser(desks: Desks) -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = new_context(browser)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 4" not in m.text else None)
    yield pg
    context.close()
    assert not errors, errors


def checked(page: Any, name: str) -> None:
    violations = axe_check(page, name)
    assert violations == [], violations
    screenshot(page, name)


def test_claims_officer_reads_flags_and_status_then_records_the_payment(desks: Desks, page: Any) -> None:
    load_key(page, desks, "insurer-officer")  # type: ignore[arg-type]  # it uses .ui, .key_file and .keys
    page.click("#tab-claims")
    claim = desks.facts["claim"]
    # the flag feed: a signed read (Authorization: CareLedger-Request), the insurer's own
    page.click("#load-flags")
    page.wait_for_selector("#flags-out tbody tr")
    feed = page.inner_text("#flags-out")
    assert "duplicate across payers" in feed and claim in feed and desks.facts["duplicate"] in feed
    # the claim's status: adjudicated, with its line codes; then pay against its ClaimResponse
    page.fill("#status-claim", claim)
    page.click("#load-status")
    page.wait_for_selector("#status-out .adjudication")
    status = page.inner_text("#status-out")
    assert "adjudicated" in status and "approved" in status and "PR-3" in status
    page.click("#prefill-pay-1")
    assert page.input_value("#pay-claim") == claim and len(page.input_value("#pay-remittance")) == 64
    page.click("#pay")
    page.wait_for_selector("#pay-out .notice-ok")
    assert "Committed." in page.inner_text("#pay-out")
    record = get_claim(desks.node.store.view(), claim)
    assert record is not None and record.status == "paid"
    # paying twice is the contract's refusal, shown with its name
    page.click("#pay")
    page.wait_for_selector("#pay-out .notice-error")
    assert "CLAIM_BAD_TRANSITION" in page.inner_text("#pay-out")
    page.fill("#plan-insurer", "insurer")
    page.fill("#plan-name", PLAN)
    page.click("#load-plan")
    page.wait_for_selector("#plan-out tbody tr")
    assert "1 version(s)" in page.inner_text("#plan-summary")
    page.click("#load-table")
    page.wait_for_selector("#table-out tbody tr")
    assert "approved" in page.inner_text("#table-out") and "hospital" in page.inner_text("#table-out")
    checked(page, "claims")


def test_patient_opens_her_claim_and_her_explanation_of_benefit(desks: Desks, page: Any) -> None:
    """(After the payment above.) Her claims are a signed claims.list as herself; the EOB is a record of
    hers at the insurer, read through its gateway and checked against its anchor."""
    load_key(page, desks, "patient")  # type: ignore[arg-type]
    page.click("#tab-myclaims")
    row = page.locator(f"#my-claims tr[data-claim='{desks.facts['claim']}']")
    row.wait_for()
    assert "paid" in row.inner_text() and "hospital" in row.inner_text()
    assert page.locator("#my-claims tbody tr").count() == 2
    row.get_by_role("button", name="Status").click()
    page.wait_for_selector("#my-claim .adjudication")
    assert "PR-3" in page.inner_text("#my-claim") and "1 payment(s) recorded" in page.inner_text("#my-claim")
    page.click("#open-eob-1")
    card = page.wait_for_selector("#eob-out .record-card")
    text = card.inner_text()
    assert "INTEGRITY VERIFIED" in text and "Explanation" in text
    checked(page, "patient-claims")


def test_researcher_registers_a_study_and_sees_it_in_the_registry(desks: Desks, page: Any) -> None:
    load_key(page, desks, "researcher")  # type: ignore[arg-type]
    page.click("#tab-research")
    page.wait_for_selector("#study-title")
    page.fill("#study-title", "Statin adherence and outcomes")
    page.fill("#study-category", "cardiometabolic")
    page.fill("#study-ethics", "IRB-2026-204")
    page.click("#register-study")
    page.wait_for_selector("#study-out .notice")
    assert "Committed." in page.inner_text("#study-out"), page.inner_text("#study-out")
    page.wait_for_selector("#study-view > *")
    assert "Statin adherence and outcomes" in page.inner_text("#study-view"), page.inner_text("#study-view")
    assert "Statin adherence and outcomes" in page.inner_text("#studies-list")
    with Client(desks.url) as client:
        studies = client.request("GET", "/v1/research/studies")["studies"]
    mine = [s for s in studies if s["title"] == "Statin adherence and outcomes"]
    assert [(s["sponsor"], s["category"], s["status"]) for s in mine] == [("research", "cardiometabolic", "active")]
    checked(page, "research")


def test_patient_sees_her_research_log_and_consents_to_the_trial(desks: Desks, page: Any) -> None:
    """(Before the sponsor suspends recruitment, below.) Her study keys are derived in the page (HKDF of
    her seed, as careledger.contracts.research.study_keys): the research log is read with the study's key,
    and her trial consent is signed with the trial's."""
    load_key(page, desks, "patient")  # type: ignore[arg-type]
    page.click("#tab-participation")
    page.wait_for_selector("#research-log")
    assert "Asthma control in adults" in page.inner_text("#research-log")
    assert "1 research consent(s) in force" in page.inner_text("#research-summary")
    trial = desks.facts["trial"]
    subject = compute_study_pseudonym(derive_study_key(desks.keys["patient"].seed, trial).public_hex)
    row = page.locator(f"#my-trials tr[data-trial='{trial}']")
    assert subject[:14] in row.inner_text() and "not taking part" in row.inner_text()
    page.on("dialog", lambda d: d.accept())
    row.get_by_role("button", name="Consent to take part").click()
    page.wait_for_selector("#my-trials-out .notice-ok")
    page.wait_for_selector(f"#my-trials tr[data-trial='{trial}']:has-text('consented to protocol version 1')")
    with Client(desks.url) as client:
        consent = client.request("GET", f"/v1/trials/{trial}/subjects/{subject}")["consent"]
    assert (consent["status"], consent["version"], consent["subject"]) == ("active", 1, subject)
    checked(page, "patient-research-trials")


def test_sponsor_opens_the_trial_and_suspends_recruitment(desks: Desks, page: Any) -> None:
    load_key(page, desks, "coordinator")  # type: ignore[arg-type]
    page.click("#tab-trials")
    page.wait_for_selector("#trials-list tbody tr button")
    page.locator("#trials-list tbody tr").first.get_by_role("button", name="Open").click()
    page.wait_for_selector("#trial-detail")
    detail = page.inner_text("#trial-detail")
    assert "hospital" in detail and "Hospital ethics committee" in detail and "recruiting" in detail
    page.select_option("#recruit-status", "suspended")
    page.fill("#recruit-reason", "interim safety review")
    page.click("#recruit")
    page.wait_for_selector("#recruit-out .notice-ok")
    page.wait_for_selector("#trial-status:has-text('suspended')")
    with Client(desks.url) as client:
        status = client.request("GET", f"/v1/trials/{desks.facts['trial']}")["status"]
    assert status["recruitment"] == "suspended"
    checked(page, "trials")


def test_keyboard_opens_a_trial_and_the_views_speak_chinese(desks: Desks, browser: Any) -> None:
    """Tab to the Trials tab, Enter, Tab to the first trial's Open button, Enter: no mouse; then the three
    new views in Simplified Chinese, each without serious axe violations."""
    context = new_context(browser, locale="zh-CN")
    pg = context.new_page()
    pg.goto(desks.ui)
    pg.wait_for_selector("body[data-ready]")
    for _ in range(40):
        pg.keyboard.press("Tab")
        if pg.evaluate("document.activeElement.id") == "tab-trials":
            break
    else:
        raise AssertionError("the Trials tab is not reachable with Tab")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#trials-list tbody tr button")
    for _ in range(40):
        pg.keyboard.press("Tab")
        if pg.evaluate("document.activeElement.closest('#trials-list') !== null"):
            break
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#trial-detail")
    assert pg.inner_text("main h1") == "临床试验"
    assert axe_check(pg, "trials-zh") == []
    for tab, title in (("claims", "理赔台"), ("research", "科研"), ("participation", "我的科研与临床试验"),
                       ("myclaims", "我的理赔")):
        pg.click(f"#tab-{tab}")
        pg.wait_for_function("t => document.querySelector('main h1')?.textContent === t", arg=title)
        assert axe_check(pg, f"{tab}-zh") == []
    screenshot(pg, "research-zh-CN")
    context.close()
