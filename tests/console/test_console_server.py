"""The console's server side without a browser: mount(), the static files and their headers, the
read-only /v1/console routes, the package data, the message catalogues and the module preload list."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.api.app import create_app
from careledger.console import STATIC_DIR, content_security_policy, mount
from support import make_consortium

JS = STATIC_DIR / "js"


@pytest.fixture
def consortium() -> Any:  # the supply tests' consortium: the manufacturer holds a GS1 prefix
    c = make_consortium(label="console-server")
    for org in c.doc["organisations"]:
        org["gs1_company_prefixes"] = ["0614141"] if org["id"] == "manufacturer" else []
        if org["id"] == "clinic":
            org["api"] = "https://clinic.example:8443/"
    return c


@pytest.fixture
def http(node: Any) -> Iterator[httpx.Client]:
    from careledger.api.server import BackgroundServer

    server = BackgroundServer(node)
    mount(server.app)
    with server, httpx.Client(base_url=server.url) as client:
        yield client


def send(node: Any, key: Any, tx_type: str, payload: dict[str, Any]) -> Any:
    from careledger.core.tx import sign_tx
    from careledger.vault.ledger import NodeLedger

    raw = sign_tx(key, node.chain.chain_id, tx_type, 1, NodeLedger(node).next_nonce(key.public_hex), payload)
    receipt = node.submit_and_wait(raw)
    assert receipt.code == 0, receipt.message
    return receipt


def test_ui_is_served_with_security_headers(http: httpx.Client) -> None:
    assert http.get("/ui").status_code == 308 and http.get("/ui").headers["location"] == "/ui/"
    page = http.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp and "frame-ancestors 'none'" in csp
    assert "connect-src 'self' https://clinic.example:8443;" in csp  # the clinic's declared gateway origin
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    module = http.get("/ui/js/main.js")
    assert module.headers["content-type"].startswith("text/javascript")
    wasm = http.get("/ui/vendor/zxing-wasm/reader/zxing_reader.wasm")
    assert wasm.headers["content-type"] == "application/wasm" and len(wasm.content) > 900_000
    missing = http.get("/ui/js/nothing.js")
    assert missing.status_code == 404


def test_policy_is_built_from_active_organisations_only() -> None:
    assert content_security_policy([]).count("connect-src 'self';") == 1
    assert "connect-src 'self' http://a:1 https://b" in content_security_policy(["https://b", "http://a:1", "https://b"])


def test_the_node_serves_the_console_and_its_routes(node: Any) -> None:
    app = create_app(node)
    console_paths = {p for p in app.openapi()["paths"] if p.startswith("/v1/console/")}
    assert console_paths == {
        "/v1/console/blocks", "/v1/console/supply/recalls", "/v1/console/supply/lots/{gtin}/{lot}/distribution"}
    ui = [path for path in (getattr(r, "path", None) for r in app.routes) if path == "/ui"]
    assert ui == ["/ui", "/ui"]  # redirect + files


def test_blocks_page_newest_first(http: httpx.Client, node: Any, consortium: Any) -> None:
    from support import seeded_key

    assert http.get("/v1/console/blocks").json() == {"head": 0, "blocks": [], "next_before": None}
    for i in range(5):
        send(node, seeded_key(f"console-server/p{i}"), "identity.register_patient", {})
    doc = http.get("/v1/console/blocks", params={"limit": 2}).json()
    assert doc["head"] == 5 and [b["height"] for b in doc["blocks"]] == [5, 4] and doc["next_before"] == 4
    header, block_hash, _ = node.store.block(5)
    assert doc["blocks"][0] == {"height": 5, "hash": block_hash.hex(), "time_ms": header.time_ms, "tx_count": 1,
                                "proposer": header.proposer, "app_hash": header.app_hash}
    rest = http.get("/v1/console/blocks", params={"before": 4, "limit": 100}).json()
    assert [b["height"] for b in rest["blocks"]] == [3, 2, 1] and rest["next_before"] is None
    for bad in ({"limit": 0}, {"limit": 101}, {"before": 0}, {"before": "x"}):
        answer = http.get("/v1/console/blocks", params=bad)
        assert answer.status_code == 400 and answer.json()["error"]["name"] == "BAD_REQUEST"


def test_recalls_and_lot_distribution(http: httpx.Client, node: Any, consortium: Any) -> None:
    from careledger.contracts.supply.gs1 import check_digit

    body = "0" + "0614141" + "00001"
    gtin = body + str(check_digit(body))
    mfr, dist = consortium.admin("manufacturer"), consortium.admin("distributor")
    send(node, mfr, "supply.register_product", {"gtin": gtin, "name": "Amoxicillin"})
    send(node, mfr, "supply.commission", {"expiry": "301231", "gtin": gtin, "lot": "L1", "serials": ["A", "B", "C"]})
    send(node, mfr, "supply.commission", {"expiry": "301231", "gtin": gtin, "lot": "L2", "serials": ["D"]})
    send(node, mfr, "supply.ship", {"items": [f"{gtin}/A", f"{gtin}/B"], "to": "distributor"})
    send(node, dist, "supply.receive", {"items": [f"{gtin}/A"]})
    assert http.get("/v1/console/supply/recalls").json() == {"lots": [], "products": []}
    send(node, consortium.admin("regulator"), "supply.recall_lot", {"gtin": gtin, "lot": "L1", "reason": "sterility"})
    recalls = http.get("/v1/console/supply/recalls").json()
    assert [(r["gtin"], r["lot"], r["packs"], r["reason"], r["recalled_by"]) for r in recalls["lots"]] == [
        (gtin, "L1", 3, "sterility", "regulator")]
    dist_doc = http.get(f"/v1/console/supply/lots/{gtin}/L1/distribution").json()
    assert dist_doc == {"gtin": gtin, "lot": "L1", "status": "recalled", "expiry": "301231", "packs": 3,
                        "by_holder": {"distributor": 1, "manufacturer": 2}, "by_state": {"active": 3},
                        "in_transit_to": {"distributor": 1}, "truncated": False}
    assert http.get(f"/v1/console/supply/lots/{gtin}/L2/distribution").json()["packs"] == 1
    unknown = http.get(f"/v1/console/supply/lots/{gtin}/NOPE/distribution")
    assert unknown.status_code == 404 and unknown.json()["error"]["name"] == "NOT_FOUND"
    bad = http.get("/v1/console/supply/lots/12345678901234/L1/distribution")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 3001  # BAD_CHECK_DIGIT, as /v1/supply says


def test_package_ships_every_static_file() -> None:
    """pyproject's package-data pattern covers the console's files (an sdist/wheel would carry them)."""
    import tomllib

    patterns = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["careledger"]
    assert "console/static/**/*" in patterns
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file()]
    assert len(files) > 30 and (STATIC_DIR / "vendor" / "SOURCES.md") in files


def test_vendored_files_match_their_recorded_hashes() -> None:
    import hashlib

    sources = (STATIC_DIR / "vendor" / "SOURCES.md").read_text()
    rows = re.findall(r"^\| ([\w./-]+) \| ([0-9a-f]{64}) \|$", sources, re.M)
    assert len(rows) == 11
    for name, digest in rows:
        assert hashlib.sha256((STATIC_DIR / "vendor" / name).read_bytes()).hexdigest() == digest, name
    shipped = {p.relative_to(STATIC_DIR / "vendor").as_posix() for p in (STATIC_DIR / "vendor").rglob("*")
               if p.is_file() and p.name not in ("SOURCES.md", "LICENSE")}
    assert shipped == {name for name, _ in rows if not name.endswith("LICENSE")}


def _catalogue(name: str) -> dict[str, str]:
    """A catalogue module's object, read as JSON-like text (keys and values are single-quoted strings)."""
    text = (JS / "i18n" / f"{name}.js").read_text()
    pairs = re.findall(r"'((?:[^'\\]|\\.)+)':\s*'((?:[^'\\]|\\.)*)'", text)
    return dict(pairs)


def test_catalogues_have_the_same_keys_and_cover_every_message() -> None:
    en, zh = _catalogue("en"), _catalogue("zh-CN")
    assert len(en) > 300 and set(en) == set(zh)
    placeholders = re.compile(r"\{(\w+)\}")
    for key in en:
        assert sorted(placeholders.findall(en[key])) == sorted(placeholders.findall(zh[key])), key
    used: set[str] = set()
    for path in JS.rglob("*.js"):
        if path.parent.name == "i18n":
            continue
        text = path.read_text()
        used |= set(re.findall(r"\bt\('([a-z][\w.-]*\.[\w.-]+)'", text))
        for prefix in re.findall(r"\bt\(`([a-z]+\.)\$\{", text):
            assert any(k.startswith(prefix) for k in en), prefix
    assert used, "no message keys found"
    assert sorted(used - set(en)) == []
    html = (STATIC_DIR / "index.html").read_text()
    assert set(re.findall(r'data-i18n="([^"]+)"', html)) <= set(en)


def _static_imports(path: Path, seen: list[str]) -> None:
    rel = path.resolve().relative_to(STATIC_DIR.resolve()).as_posix()
    if rel in seen:
        return
    seen.append(rel)
    for target in re.findall(r"""^(?:import|export)\s[^'"();]*?from\s+['"](\.[^'"]+)['"]""", path.read_text(), re.M):
        _static_imports(path.parent / target, seen)


def test_modulepreload_list_is_the_shell() -> None:
    """index.html preloads exactly the modules the shell and the default view import statically."""
    seen: list[str] = []
    _static_imports(JS / "main.js", seen)
    _static_imports(JS / "views" / "keys.js", seen)
    html = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r'rel="modulepreload" href="([^"]+)"', html) == seen
    assert not [s for s in seen if "vendor" in s]  # scrypt and the barcode reader load on first use


def test_modules_parse(tmp_path: Path) -> None:
    """Every module is valid ES module syntax (Node's parser, when Node is installed)."""
    import shutil

    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed: the browser tests parse the modules anyway")
    for path in JS.rglob("*.js"):
        result = subprocess.run([node, "--input-type=module", "--check"], input=path.read_bytes(),
                                capture_output=True, check=False)
        assert result.returncode == 0, (path, result.stderr.decode())


def test_no_module_reaches_the_network_but_through_api_js() -> None:
    """Every HTTP call is in api.js (issue 11 will change one signing module and one HTTP module)."""
    for path in JS.rglob("*.js"):
        text = path.read_text()
        if path.name != "api.js":
            assert "fetch(" not in text and "XMLHttpRequest" not in text, path
        if path.name != "signing.js":
            assert "X-CareLedger-Signature" not in text, path


def test_a_missing_browser_skips_here_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The rule of support.require_tool, for Chromium: skip on a developer's machine, fail under CI=true."""
    from support import console as console_support

    monkeypatch.setattr(console_support, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        console_support.require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-chromium not found"):
        console_support.require_browser()
