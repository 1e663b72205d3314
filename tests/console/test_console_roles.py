"""Each role's main path, clicked through the console in a real Chromium against a real node.

Every test loads a key file in the CLI's format into the page (sealed there with a passphrase),
lets the page build and sign the transactions and requests, and checks the committed outcome both on
the page and in the node's committed state. Each view is checked with axe-core (no serious or
critical violation) and photographed into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.contracts.consent import consent_prefix
from support.console import (
    CHROMIUM_FLAGS,
    GTIN,
    ConsoleWorld,
    axe_check,
    build_world,
    element_string,
    launch,
    load_key,
    new_context,
    require_browser,
    screenshot,
    synthea_resources,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    yield from build_world(tmp_path_factory.mktemp("console-roles"))


@pytest.fixture(scope="module")
def playwright(world: ConsoleWorld) -> Iterator[Any]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    b = launch(playwright)
    yield b
    b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = new_context(browser)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 4" not in m.text else None)
    pg.on("dialog", lambda d: d.accept())
    yield pg
    context.close()
    assert not errors, errors


def no_violations(page: Any, name: str) -> None:
    violations = axe_check(page, name)
    assert violations == [], violations
    screenshot(page, name)


def test_patient_sees_records_grants_consent_and_erases(world: ConsoleWorld, page: Any) -> None:
    load_key(page, world, "alice")
    page.wait_for_selector("#my-pseudonym")
    no_violations(page, "keys")
    page.click("#tab-patient")
    page.wait_for_selector("#pt-rec-h")
    rows = page.locator("section:has(#pt-rec-h) tbody tr")
    assert rows.count() == 3
    # open a record: fetched through the gateway, checked against its anchor, shown as readable FHIR
    page.locator("section:has(#pt-rec-h) tbody tr", has_text="Condition").get_by_role("button", name="Open").click()
    card = page.wait_for_selector("#record-out .record-card")
    text = card.inner_text()
    assert "INTEGRITY VERIFIED" in text and "Condition" in text and "Clinical status" in text
    assert "{" not in text  # readable, not JSON
    no_violations(page, "patient-record")
    # grant the clinic TREAT access to Observations
    page.select_option("#grantee-kind", "org")
    page.fill("#grantee-id", "clinic")
    page.fill("#resource-types", "Observation, Condition, Immunization")
    page.click("#grant")
    page.wait_for_selector("#consent-out .notice-ok")
    assert "Committed." in page.inner_text("#consent-out")
    page.wait_for_selector("section:has(#pt-cons-h) tbody tr:has-text('clinic')")
    consents = [c for _, c in world.node.store.view().scan(consent_prefix(world.facts["pseudonym"]))]
    mine = [c for c in consents if sorted(c["resource_types"]) == ["Condition", "Immunization", "Observation"]]
    assert [(c["grantee"], c["status"], c["purposes"]) for c in mine] == [
        ({"id": "clinic", "kind": "org"}, "active", ["TREAT"])]
    no_violations(page, "patient")


def test_clinician_denied_then_reads_under_consent_and_patient_log_shows_both(world: ConsoleWorld, page: Any) -> None:
    record = world.facts["records"][1]  # the Observation
    load_key(page, world, "dr_b")
    page.click("#tab-clinician")
    page.fill("#cl-patient", world.facts["pseudonym"])
    # a read the patient never allowed (the consent of the other test names the clinic: revoke first)
    for _, c in world.node.store.view().scan(consent_prefix(world.facts["pseudonym"])):
        if c["status"] == "active":
            world.send(world.keys["alice"], "consent.revoke", {"consent": c["id"]})
    page.click("#cl-find")
    page.wait_for_selector("#cl-results table")
    assert "No record is open to you" in page.inner_text("#cl-results")
    page.click("details summary")
    page.fill("#cl-custodian", "hospital")
    page.fill("#cl-record-id", record)
    page.click("#cl-open-id")
    page.wait_for_selector("#cl-record .notice-error")
    assert re.search(r"CONSENT_(REQUIRED|REVOKED)", page.inner_text("#cl-record"))
    # the patient grants, the clinician finds and opens the record, integrity checked in the page
    world.send(world.keys["alice"], "consent.grant", {
        "grantee": {"id": "clinic", "kind": "org"}, "patient": world.facts["pseudonym"], "provision": "permit",
        "purposes": ["TREAT"], "records": [], "resource_types": []})
    page.click("#cl-find")
    page.wait_for_selector("#cl-results tbody tr button")
    from careledger.contracts.records import get_head

    view = world.node.store.view()
    live = [r for r in world.facts["records"] if (h := get_head(view, r)) is not None and not h.is_erased]
    assert page.locator("#cl-results tbody tr").count() == len(live) >= 2  # erased records are never listed
    page.locator("#cl-results tbody tr", has_text="Observation").get_by_role("button", name="Open").click()
    page.wait_for_selector("#cl-record .record-card")
    assert "INTEGRITY VERIFIED" in page.inner_text("#cl-record")
    no_violations(page, "clinician")
    # the patient's log: the denied read and the granted one, flagged
    load_key(page, world, "alice")
    page.click("#tab-patient")
    page.wait_for_selector("#log-summary")
    log_rows = page.locator("section:has(#pt-log-h) tbody tr")
    texts = [log_rows.nth(i).inner_text() for i in range(log_rows.count())]
    assert any("DENIED" in t and "clinic" in t for t in texts), texts
    assert any("granted" in t and "clinic" in t for t in texts), texts
    assert page.locator("section:has(#pt-log-h) tr.denied").count() >= 1


def test_break_glass_with_timer_is_flagged_in_the_log(world: ConsoleWorld, page: Any) -> None:
    load_key(page, world, "medic_b")
    page.click("#tab-clinician")
    page.fill("#cl-patient", world.facts["pseudonym"])
    page.select_option("#bg-reason", "unconscious")
    page.fill("#bg-minutes", "30")
    page.click("#bg-open")
    page.wait_for_selector("#glass-timer")
    first = page.inner_text("#glass-timer")
    assert re.fullmatch(r"00:(29|30):\d\d", first), first
    page.wait_for_function("t => document.querySelector('#glass-timer').textContent !== t", arg=first, timeout=5000)
    assert page.is_checked("#cl-emergency")
    page.click("#cl-find")
    page.wait_for_selector("#cl-results tbody tr button")
    page.locator("#cl-results tbody tr").first.get_by_role("button", name="Open").click()
    page.wait_for_selector("#cl-record .record-card")
    assert "BREAK-GLASS" in page.inner_text("#cl-record") and "INTEGRITY VERIFIED" in page.inner_text("#cl-record")
    no_violations(page, "clinician-break-glass")
    load_key(page, world, "alice")
    page.click("#tab-patient")
    page.wait_for_selector("section:has(#pt-log-h) tr.emergency")
    assert "BREAK-GLASS" in page.inner_text("section:has(#pt-log-h)")
    assert "Patient unconscious" in page.inner_text("section:has(#pt-log-h)")  # the session, with its coded reason


def test_patient_requests_erasure(world: ConsoleWorld, page: Any) -> None:
    load_key(page, world, "alice")
    page.click("#tab-patient")
    row = page.locator("section:has(#pt-rec-h) tbody tr", has_text="Immunization")
    row.get_by_role("button", name="Request erasure").click()
    page.wait_for_selector("#record-out .notice-ok")
    page.wait_for_selector("section:has(#pt-rec-h) tr.erased")
    from careledger.contracts.records import get_head

    head = get_head(world.node.store.view(), world.facts["records"][2])
    assert head is not None and head.is_erased


def test_pharmacist_verifies_dispenses_returns_and_catches_a_counterfeit(world: ConsoleWorld, page: Any) -> None:
    load_key(page, world, "pharmacist")
    page.click("#tab-pharmacist")
    page.fill("#scan-input", element_string("SER1"))
    page.click("#verify")
    page.wait_for_selector("#verdict")
    assert page.inner_text("#verdict .verdict-word") == "VERIFIED"
    assert "pharmacy" in page.inner_text("#verdict")
    page.click("#dispense")
    page.wait_for_selector("#undo-until")
    assert "Committed." in page.inner_text("#ph-actions")
    page.click("#verify")
    page.wait_for_selector("#verdict.verdict-bad")
    assert "ALREADY_DECOMMISSIONED" in page.inner_text("#verdict")
    page.click("#return-pack")
    page.wait_for_selector("#ph-actions .notice-ok")
    page.click("#verify")
    page.wait_for_selector("#verdict.verdict-ok")
    # a counterfeit: a serial never made; the check is recorded on the ledger (an alert for the regulator)
    page.fill("#scan-input", element_string("FAKE99"))
    page.click("#verify")
    page.wait_for_selector("#verdict.verdict-bad")
    verdict = page.inner_text("#verdict")
    assert "NOT VERIFIED" in verdict and "UNKNOWN_SERIAL" in verdict and "counterfeit" in verdict
    page.click("#record-check")
    page.wait_for_selector("#ph-actions .notice-ok")
    no_violations(page, "pharmacist")
    pack = world.node.store.view().get(f"supply/pack/{GTIN}/SER1")
    assert [e[0] for e in pack["e"]][-2:] == ["decommission", "undo"]


def test_pharmacist_scans_the_datamatrix_with_the_camera(world: ConsoleWorld, playwright: Any, tmp_path: Path) -> None:
    """Chromium's fake camera plays a video of a real GS1 DataMatrix; the page reads and verifies it."""
    video = make_datamatrix_video(element_string("SER2"), tmp_path / "pack.y4m")
    b = playwright.chromium.launch(executable_path=str(require_browser()),
                                   args=[*CHROMIUM_FLAGS, "--use-fake-ui-for-media-stream",
                                         "--use-fake-device-for-media-stream",
                                         f"--use-file-for-fake-video-capture={video}"])
    try:
        context = new_context(b)
        context.grant_permissions(["camera"], origin=world.url)
        pg = context.new_page()
        pg.goto(world.ui + "#/pharmacist")
        pg.click("#camera-scan")
        pg.wait_for_selector("#verdict", timeout=30_000)
        assert pg.input_value("#scan-input") == element_string("SER2")
        assert pg.inner_text("#verdict .verdict-word") == "VERIFIED"
        # and from a photo of the code
        png = make_datamatrix_png(element_string("FAKE7"), tmp_path / "fake.png")
        pg.set_input_files("#scan-image", str(png))
        pg.wait_for_selector("#verdict.verdict-bad")
        assert "UNKNOWN_SERIAL" in pg.inner_text("#verdict")
    finally:
        b.close()


def test_regulator_alerts_recalls_custody_and_distribution(world: ConsoleWorld, page: Any) -> None:
    world.send(world.consortium.admin("pharmacy"), "supply.verify", {"gtin": GTIN, "serial": "NEVER-MADE"})
    world.send(world.consortium.admin("manufacturer"), "supply.commission",
               {"expiry": "301231", "gtin": GTIN, "lot": "B7", "serials": ["B7-1", "B7-2"]})
    load_key(page, world, "regulator_admin")
    page.click("#tab-supply")
    page.select_option("#alert-kind", "unknown_serial")
    page.click("#load-alerts")
    page.wait_for_selector("#alerts-out tbody tr")
    assert "NEVER-MADE" in page.inner_text("#alerts-out") and "Unknown serial" in page.inner_text("#alerts-out")
    page.fill("#recall-gtin", GTIN)
    page.fill("#recall-lot", "B7")
    page.fill("#recall-reason", "sterility failure")
    page.click("#recall")
    page.wait_for_selector("#recalls-out tbody tr:has-text('B7')")
    assert world.node.store.view().get(f"supply/lot/{GTIN}/B7")["status"] == "recalled"
    page.fill("#custody-ref", f"{GTIN}/SER3")
    page.click("#load-custody")
    page.wait_for_selector("#custody-timeline li")
    steps = page.locator("#custody-timeline li")
    assert [steps.nth(i).inner_text().split(" · ")[0] for i in range(steps.count())] == ["Made", "Shipped", "Received"]
    page.fill("#dist-gtin", GTIN)
    page.fill("#dist-lot", "A42")
    page.click("#load-dist")
    page.wait_for_selector("#dist-out table")
    dist = page.inner_text("#dist-out")
    assert "4 packs" in dist and "pharmacy" in dist and "distributor" in dist
    no_violations(page, "regulator")


def test_operator_explores_and_votes(world: ConsoleWorld, page: Any) -> None:
    hospital = world.consortium.admin("hospital")
    action = {"kind": "set_org_roles", "org": "clinic", "roles": ["clinic", "research"]}
    receipt = world.send(hospital, "governance.propose", {"action": action, "title": "Clinic research"})
    proposal = receipt.result["proposal"]
    tx_hash = receipt.tx
    load_key(page, world, "regulator_admin")
    page.click("#tab-explorer")
    page.fill("#ex-search", tx_hash)
    page.click("#ex-go")
    page.wait_for_selector("#proof-verdict")
    assert "PROOF VALID" in page.inner_text("#proof-verdict")
    assert page.locator("#tx-detail .checks li.ok").count() == 5
    no_violations(page, "operator-tx")
    height = world.node.store.tx(bytes.fromhex(tx_hash)).height
    page.fill("#ex-search", str(height))
    page.click("#ex-go")
    page.wait_for_selector("#block-detail")
    assert tx_hash in page.inner_text("#block-detail")
    page.fill("#ex-search", world.keys["pharmacist"].public_hex)
    page.click("#ex-go")
    page.wait_for_selector("#key-detail")
    assert "pharmacist" in page.inner_text("#key-detail")
    row = page.locator("section:has(#gov-h) tbody tr", has_text=proposal)
    row.get_by_role("button", name="Vote yes").click()
    page.wait_for_selector("#vote-out .notice-ok")
    assert "regulator" in world.node.store.view().get(f"governance/proposal/{proposal}")["yes"]
    assert "hospital, regulator" in page.locator("section:has(#gov-h) tbody tr", has_text=proposal).inner_text()
    no_violations(page, "operator")


def test_keyboard_only_pharmacist_check(world: ConsoleWorld, page: Any) -> None:
    """Skip link, tab to the Pharmacist view, type, submit with Enter: no mouse."""
    page.goto(world.ui)
    page.wait_for_selector("body[data-ready]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "tab-pharmacist":
            break
    else:
        raise AssertionError("the Pharmacist tab is not reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#scan-input")
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "scan-input":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "scan-input"
    page.keyboard.type(element_string("SER4"))
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict")
    assert "VERIFIED" in page.inner_text("#verdict")  # SER4 stayed at the manufacturer: active, verified


def test_chinese_is_chosen_from_the_browser_and_switchable(world: ConsoleWorld, browser: Any) -> None:
    context = new_context(browser, locale="zh-CN")
    pg = context.new_page()
    pg.goto(world.ui + "#/pharmacist")
    pg.wait_for_selector("#scan-input")
    assert pg.inner_text("main h1") == "药师" and pg.get_attribute("html", "lang") == "zh-CN"
    pg.fill("#scan-input", element_string("FAKE1"))
    pg.click("#verify")
    pg.wait_for_selector("#verdict")
    assert "核验未通过" in pg.inner_text("#verdict")
    assert axe_check(pg, "pharmacist-zh") == []
    screenshot(pg, "pharmacist-zh-CN")
    pg.select_option("#lang", "en")
    pg.wait_for_function("() => document.querySelector('main h1').textContent === 'Pharmacist'")
    context.close()


# -- camera and image fixtures: a real GS1 DataMatrix made with ZXing-C++ (zxing-cpp, a dev dependency) ------

def _datamatrix(text: str, scale: int = 6) -> tuple[bytes, int, int]:
    import zxingcpp

    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    image = barcode.to_image(scale=scale, add_quiet_zones=True)
    height, width = image.shape
    return bytes(memoryview(image)), width, height  # type: ignore[arg-type]  # zxing-cpp images are buffers


def make_datamatrix_png(text: str, path: Path) -> Path:
    import struct
    import zlib

    pixels, width, height = _datamatrix(text)
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def make_datamatrix_video(text: str, path: Path, width: int = 640, height: int = 480, frames: int = 10) -> Path:
    """A short Y4M video (what Chromium's fake camera plays) of the code centred on a white frame."""
    pixels, w, h = _datamatrix(text)
    luma = bytearray(b"\xff" * (width * height))
    x0, y0 = (width - w) // 2, (height - h) // 2
    for y in range(h):
        luma[(y0 + y) * width + x0:(y0 + y) * width + x0 + w] = pixels[y * w:(y + 1) * w]
    chroma = b"\x80" * (width * height // 4)
    frame = b"FRAME\n" + bytes(luma) + chroma + chroma
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


def test_first_load(world: ConsoleWorld, browser: Any) -> None:
    """A first visit (empty cache) fetches only the shell and the view shown — no scanner, no scrypt —
    and renders it. The time is printed (the target is under 1 s on a demo node; this shared 2-core
    machine is often loaded several times over, so the test holds only a loose 5 s bound)."""
    figures = []
    for _ in range(3):
        context = new_context(browser)  # an empty cache each time: a first visit
        pg = context.new_page()
        started = time.perf_counter()
        pg.goto(world.ui + "#/keys", wait_until="load")
        pg.wait_for_selector("body[data-ready]")
        elapsed = time.perf_counter() - started
        nav = pg.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
        fetched = pg.evaluate("performance.getEntriesByType('resource').map(r => new URL(r.name).pathname)")
        figures.append((round(elapsed * 1000), round(nav["loadEventEnd"])))
        context.close()
        assert len(fetched) <= 16, fetched
        assert not [f for f in fetched if "zxing" in f or "noble" in f or "zh-CN" in f], fetched
    print(f"console first load (wall ms, loadEventEnd ms) on load average {os.getloadavg()[0]:.1f}: {figures}")
    assert min(f[0] for f in figures) < 5000, figures


def test_no_private_key_or_phi_in_logs_server_files_or_the_browser_profile(world: ConsoleWorld, playwright: Any,
                                                                           tmp_path: Path) -> None:
    """Keys are loaded, sealed and used in a browser whose profile is on disk; then the server's log
    records (request log included), every file of the node's home, and the browser's profile are
    searched for the users' private keys (hex and raw), the passphrase and the patient's PHI."""
    from support.console import PASSPHRASE, synthea_names

    profile = tmp_path / "profile"
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(require_browser()), args=CHROMIUM_FLAGS, locale="en-GB")
    pg = context.new_page()
    pg.on("dialog", lambda d: d.accept())
    for who in ("alice", "pharmacist"):
        load_key(pg, world, who)
    pg.goto(world.ui + "#/keys")
    pg.select_option("#stored-key", world.keys["alice"].public_hex)
    pg.fill("#stored-pass", PASSPHRASE)
    pg.click("#unlock")
    pg.wait_for_selector("#my-pseudonym")
    pg.click("#tab-patient")
    pg.locator("section:has(#pt-rec-h) tbody tr", has_text="Condition").get_by_role("button", name="Open").click()
    card = pg.wait_for_selector("#record-out .record-card")
    phi_shown = card.inner_text()
    context.close()
    # what must never leave the browser, or be written anywhere on the server
    secrets = {f"{who} seed": key.seed.hex() for who, key in world.keys.items()}
    secrets["passphrase"] = PASSPHRASE
    phi = synthea_names()
    condition = next(r for r in synthea_resources() if r["resourceType"] == "Condition")
    phi.append(condition["code"]["coding"][0]["display"])
    assert phi[-1] in phi_shown  # the page did show the clinical content (so its absence below means something)
    log_text = "\n".join(world.log.lines)
    assert "GET /ui/ " in log_text and "POST /v1/gateway/read" in log_text  # the request log was captured
    for label, value in [*secrets.items(), *((f"PHI {p!r}", p) for p in phi)]:
        assert value not in log_text, f"{label} in the server's log"
    home_files = [p for p in Path(world.home.path).rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in home_files)
    for path in home_files:
        data = path.read_bytes()
        for label, value in [*secrets.items(), *((f"PHI {p!r}", p) for p in phi)]:
            for form in (value.encode(), value.encode("utf-16-le")):
                assert form not in data, f"{label} in {path}"
        for who in ("alice", "pharmacist"):
            assert world.keys[who].seed not in data, f"{who}'s raw seed in {path}"
    profile_files = [p for p in profile.rglob("*") if p.is_file()]
    assert any("IndexedDB" in str(p) for p in profile_files), "the key store is on disk"
    for path in profile_files:
        data = path.read_bytes()
        for who in ("alice", "pharmacist"):
            seed = world.keys[who].seed
            for form in (seed, seed.hex().encode(), seed.hex().encode("utf-16-le")):
                assert form not in data, f"{who}'s private key in the browser profile ({path})"


def test_keys_view_creates_downloads_and_loads_encrypted_files(world: ConsoleWorld, page: Any, tmp_path: Path) -> None:
    """A key created in the page downloads sealed and opens with careledger.keycrypt; a key file the CLI
    encrypted loads with its passphrase, and a wrong passphrase is told apart from a bad file."""
    import json

    from careledger.keycrypt import decrypt_key, encrypt_key

    page.goto(world.ui + "#/keys")
    page.fill("#new-name", "ward-7")
    page.fill("#new-pass", "night shift 护士站")
    page.fill("#new-pass2", "night shift 护士站")
    page.click("#create-key")
    page.wait_for_selector("#download-key", timeout=30_000)
    with page.expect_download() as info:
        page.click("#download-key")
    doc = json.loads(Path(info.value.path()).read_text())
    key = decrypt_key(doc, "night shift 护士站")
    assert page.get_attribute("#keybar code", "title") == key.public_hex and doc["name"] == "ward-7"
    page.click("#register-patient")  # a new key registers as a patient, signed in the page
    page.wait_for_selector("#my-pseudonym")
    from careledger.contracts.identity import compute_pseudonym

    assert page.inner_text("#my-pseudonym") == compute_pseudonym(key.public_hex)
    # the CLI's encrypted format, made in Python, loads with its own passphrase
    sealed = encrypt_key(world.keys["dr_a"], "the cli's passphrase", "dr_a", n=2**12)
    path = tmp_path / "dr_a.json"
    path.write_text(json.dumps(sealed))
    page.goto(world.ui + "#/keys")
    page.set_input_files("#key-file", str(path))
    page.fill("#load-pass", "not the passphrase")
    page.click("#load-key")
    page.wait_for_selector("form:has(#key-file) + div .notice-error")
    page.set_input_files("#key-file", str(path))
    page.fill("#load-pass", "the cli's passphrase")
    page.click("#load-key")
    page.wait_for_function("pub => document.querySelector('#keybar code')?.title === pub",
                           arg=world.keys["dr_a"].public_hex)
    # both are now kept sealed in this browser, and unlock from the list
    page.goto(world.ui + "#/keys")
    assert page.locator("#stored-key option").count() == 2
