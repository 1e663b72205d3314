"""Shared set-up for the web console's browser tests (no tests of its own).

:class:`ConsoleWorld` is a real embedded node (solo engine, SQLite) serving the API and the console
(``careledger.console.mount``) on loopback, with the eight-organisation consortium of
``tests/conftest.py`` (the manufacturer and distributor holding GS1 prefixes), vaults for the hospital
and the clinic, and people with key files in the CLI's format in a directory *outside* the node's
home: a physician at each, an emergency nurse, a pharmacist, a patient with records (resources of a
vendored Synthea bundle) and a drug lot that went manufacturer → distributor → pharmacy.

The browser is Debian's Chromium driven by Playwright (its own browser download does not work
here). Without it the tests skip, except under ``CI=true``, where a missing browser fails the run
(:func:`require_browser`, the rule of ``support.require_tool``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from careledger.client import Client
from careledger.client.records import RecordsClient
from careledger.console import mount
from careledger.contracts.supply import gs1
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.keys import write_key
from careledger.node.home import init_home
from careledger.node.solo import Node
from careledger.samples import synthea_bundles
from careledger.vault.ledger import NodeLedger
from careledger.vault.store import Vault
from support import GENESIS_TIME_MS, Consortium, make_consortium, seeded_key

CHROMIUM = Path(os.environ.get("CARELEDGER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
HERE = Path(__file__).parent
REPO = HERE.parent.parent
SCREENSHOTS = Path(os.environ.get("CARELEDGER_SCREENSHOTS") or tempfile.mkdtemp(prefix="careledger-screenshots-"))
"""Where the role tests photograph each view: ``$CARELEDGER_SCREENSHOTS`` (``make screenshots`` points it
at docs/screenshots, the README's pictures), else a temporary directory, so a test run leaves the
working tree alone."""
AXE = REPO / "tests" / "console" / "vendor" / "axe.min.js"
ACME_PREFIX = "0614141"
PASSPHRASE = "correct horse battery staple"


def _gtin(prefix: str, item: str) -> str:
    body = "0" + prefix + item
    return body + str(gs1.check_digit(body))


GTIN = _gtin(ACME_PREFIX, "00001")
LOT = "A42"
EXPIRY = "301231"


def require_browser() -> Path:
    """Debian's Chromium. Missing: skip, or fail under ``CI=true`` (as ``support.require_tool``)."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        message = f"{CHROMIUM} not found: apt-get install -y chromium (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "playwright (Python) is not installed: pip install -e .[dev]"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def console_consortium() -> Consortium:
    c = make_consortium(label="console")
    prefixes = {"manufacturer": [ACME_PREFIX], "distributor": ["039999"]}
    for org in c.doc["organisations"]:
        org["gs1_company_prefixes"] = prefixes.get(org["id"], [])
    return c


CAPTURED_LOGGERS = ("careledger", "uvicorn.access", "uvicorn.error", "fastapi")


class LogCapture(logging.Handler):
    """Every record the node's and the server's loggers emit while the world runs (the request log included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def synthea_resources(types: tuple[str, ...] = ("Condition", "Observation", "Immunization")) -> list[dict[str, Any]]:
    """The first resource of each type from the first vendored Synthea bundle (real FHIR R4)."""
    bundle = json.loads(synthea_bundles()[0].read_text())
    out = []
    for kind in types:
        out.append(next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind))
    return out


def synthea_names() -> list[str]:
    """The Synthea patient's given and family names: PHI that must never reach a log or server file."""
    bundle = json.loads(synthea_bundles()[0].read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    names = [patient["name"][0]["family"], *patient["name"][0]["given"]]
    return [n for n in names if len(n) >= 5]


@dataclass
class ConsoleWorld:
    node: Node
    home: Any
    url: str
    consortium: Consortium
    keys_dir: Path
    keys: dict[str, SigningKey] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    log: LogCapture = field(default_factory=LogCapture)

    @property
    def ui(self) -> str:
        return self.url + "/ui/"

    def key_file(self, who: str) -> Path:
        return self.keys_dir / f"{who}.json"

    def send(self, key: SigningKey, tx_type: str, payload: dict[str, Any]) -> Any:
        nonce = NodeLedger(self.node).next_nonce(key.public_hex)
        receipt = self.node.submit_and_wait(sign_tx(key, self.node.chain.chain_id, tx_type, 1, nonce, payload))
        assert receipt.code == 0, (tx_type, receipt.code, receipt.message)
        return receipt

    def wait_idle(self) -> None:
        deadline = time.monotonic() + 10
        while len(self.node.mempool) and time.monotonic() < deadline:
            time.sleep(0.01)


PEOPLE = {"dr_a": ("hospital", ["physician"]), "dr_b": ("clinic", ["physician"]),
          "medic_b": ("clinic", ["emergency", "nurse"]), "pharmacist": ("pharmacy", ["pharmacist"])}


def build_world(root: Path) -> Iterator[ConsoleWorld]:
    """The world described in the module docstring; yields it running and stops everything after."""
    from careledger.api.server import BackgroundServer

    consortium = console_consortium()
    genesis_file = consortium.write_genesis(root / "genesis.json")
    node_key_file = root / "validator-key.json"
    write_key(node_key_file, consortium.validator, "validator")
    home = init_home(root / "home", genesis_file, node_key_file, GENESIS_TIME_MS, chain_id=consortium.chain_id)
    node_key_file.unlink()
    node = home.open_node()
    node.start()
    server = BackgroundServer(node)  # configures uvicorn's loggers: capture after it
    app = server.app
    mount(app)
    server._server.config.access_log = True  # the request log is checked for keys and PHI
    capture = LogCapture()
    captured = [logging.getLogger(name) for name in CAPTURED_LOGGERS]
    levels = [lg.level for lg in captured]
    for lg in captured:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    server.start()
    keys_dir = root / "keyfiles"
    world = ConsoleWorld(node, home, server.url, consortium, keys_dir, log=capture)
    try:
        for org in ("hospital", "clinic"):
            vault = Vault.create(Path(home.path) / "vault" / org, org)
            world.send(consortium.admin(org), "identity.enrol_member",
                       {"member": vault.gateway_key.public_hex, "org": org, "roles": ["data_steward"]})
            vault.close()
        for name, (org, roles) in PEOPLE.items():
            world.keys[name] = seeded_key(f"console/{name}")
            world.send(consortium.admin(org), "identity.enrol_member",
                       {"handle": name.replace("_", "."), "member": world.keys[name].public_hex, "org": org,
                        "roles": roles})
        world.keys["alice"] = seeded_key("console/alice")
        world.send(world.keys["alice"], "identity.register_patient", {})
        for org in ("regulator", "manufacturer", "pharmacy", "hospital"):
            world.keys[f"{org}_admin"] = consortium.admin(org)
        for name, key in world.keys.items():
            write_key(world.key_file(name), key, name)
        ledger = Client(server.url)
        records = RecordsClient(ledger, world.keys["dr_a"])
        alice = RecordsClient(ledger, world.keys["alice"]).pseudonym
        world.facts["pseudonym"] = alice
        stored = records.store("hospital", alice, {"resourceType": "Bundle", "type": "collection",
                                                   "entry": [{"resource": r} for r in synthea_resources()]})
        world.facts["records"] = [r["record"] for r in stored["records"]]
        world.facts["types"] = [r["type"] for r in stored["records"]]
        # the supply chain: a lot made, shipped to the distributor, then to the pharmacy
        mfr, dist, pharmacy = (consortium.admin(o) for o in ("manufacturer", "distributor", "pharmacy"))
        world.send(mfr, "supply.register_product", {"dosage_form": "capsule", "gtin": GTIN,
                                                   "name": "Amoxicillin 500 mg x 21", "strength": "500 mg"})
        world.send(mfr, "supply.commission", {"expiry": EXPIRY, "gtin": GTIN, "lot": LOT,
                                             "serials": ["SER1", "SER2", "SER3", "SER4"]})
        items = [f"{GTIN}/SER1", f"{GTIN}/SER2", f"{GTIN}/SER3"]
        world.send(mfr, "supply.ship", {"items": items, "to": "distributor"})
        world.send(dist, "supply.receive", {"items": items})
        world.send(dist, "supply.ship", {"items": items[:2], "to": "pharmacy"})
        world.send(pharmacy, "supply.receive", {"items": items[:2]})
        ledger.close()
        records.close()
        yield world
    finally:
        server.stop()
        services = getattr(app.state, "records", None)
        if services is not None:
            services.gateway.close()
        node.close()
        for lg, level in zip(captured, levels, strict=True):
            lg.removeHandler(capture)
            lg.setLevel(level)


def element_string(serial: str, lot: str = LOT, expiry: str = EXPIRY) -> str:
    """The bracketed element string a DataMatrix reader returns for a pack."""
    return f"(01){GTIN}(17){expiry}(10){lot}(21){serial}"


# -- the browser ----------------------------------------------------------------------------------------

def launch(playwright: Any, **kw: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(require_browser()), args=CHROMIUM_FLAGS, **kw)


def new_context(browser: Any, locale: str = "en-GB", **kw: Any) -> Any:
    """A fresh browser context (its own IndexedDB) with axe-core injected into every page. The
    injection goes through the DevTools protocol, so the console's Content-Security-Policy stays on."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, **kw)
    context.add_init_script(script=AXE.read_text())
    return context


def load_key(page: Any, world: ConsoleWorld, who: str, passphrase: str = PASSPHRASE) -> None:
    """Load ``who``'s key file (the CLI's plain format) in the Keys view: sealed in the browser, unlocked."""
    page.goto(world.ui + "#/keys")
    page.set_input_files("#key-file", str(world.key_file(who)))
    page.fill("#load-pass", passphrase)
    page.click("#load-key")
    page.wait_for_function("pub => document.querySelector('#keybar code')?.title === pub",
                           arg=world.keys[who].public_hex, timeout=30_000)


def axe_check(page: Any, name: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (after a view rendered)."""
    assert page.evaluate("() => !!window.axe"), "the context was not made by new_context() (axe is injected there)"
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    assert isinstance(result, list)
    return result


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
