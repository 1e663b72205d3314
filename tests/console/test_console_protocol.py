"""The page's cryptography against the protocol's vectors, in the real browser.

The console builds and signs everything itself, so its canonical encoding, transaction signing, Merkle
audit paths, block signatures, request signing schemes and passphrase-encrypted key files must agree
byte for byte with the Python implementation: the vectors of tests/vectors/protocol.json and
tests/console/keycrypt_vectors.json run in the page (modules imported from the node's /ui), and what
the page signs is checked by the node's own verifiers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from careledger.core import codec
from careledger.core.crypto import SUITES, SigningKey
from careledger.keycrypt import decrypt_key
from careledger.vault.requests import QUERY_KINDS, SignedRequest, verify_request
from support.console import launch, new_context, require_browser

HERE = Path(__file__).parent
PROTOCOL = json.loads((HERE.parent / "vectors" / "protocol.json").read_text())
KEYCRYPT = json.loads((HERE / "keycrypt_vectors.json").read_text())["vectors"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A node with the console mounted (a plain development home: the page's modules are what matters)."""
    from careledger.api.server import BackgroundServer
    from careledger.console import mount
    from careledger.node.home import init_home

    require_browser()
    home = init_home(tmp_path_factory.mktemp("console-protocol") / "home", None, None, 1_700_000_000_000,
                     chain_id="careledger-console")
    node = home.open_node()
    node.start()
    server = BackgroundServer(node)
    mount(server.app)
    with server:
        yield server.url
    node.close()


@pytest.fixture(scope="module")
def page(served: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        context = new_context(browser)
        pg = context.new_page()
        pg.goto(served + "/ui/")
        pg.wait_for_selector("body[data-ready]")
        yield pg
        browser.close()


def js(page: Any, fn: str, arg: Any = None) -> Any:
    """Evaluate ``fn`` (an async arrow function of (m, arg)) in the page."""
    return page.evaluate("async (arg) => { const m = (n) => import(`/ui/js/${n}.js`); "
                         f"return await ({fn})(m, arg); }}", arg)


def test_canonical_encoding_matches_the_codec(page: Any) -> None:
    vector = PROTOCOL["canonical_encoding"]
    assert js(page, "async (m, t) => (await m('canonical')).encode(JSON.parse(t))", vector["input_text"]) == \
        vector["canonical_text"]
    values = ["\u2028\u2029/\u007f", "\x00\x1f\b\t\n\f\r\"\\", "emoji \U0001f600 中文", {"b": [], "a": {"c": None}},
              [2**53 - 1, -(2**53 - 1), 0, True, False], {"Z": 1, "_": 2, "a": 3}]
    for value in values:
        assert js(page, "async (m, v) => (await m('canonical')).encode(v)", value) == codec.encode(value).decode()
    refused = js(page, """async (m) => {
        const { encode } = await m('canonical');
        const cases = [1.5, -0, 2 ** 53, {'é': 1}, '\\ud800', [undefined], Infinity];
        let deep = 1; for (let i = 0; i < 33; i++) deep = [deep];
        cases.push(deep);
        return cases.map((c) => { try { encode(c); return 'encoded'; } catch (e) { return e.constructor.name; } });
    }""")
    assert refused == ["CanonicalError"] * 8


def test_transaction_signed_in_the_page_equals_the_vector(page: Any) -> None:
    v = PROTOCOL["tx"]
    body = json.loads(v["body_text"])
    out = js(page, """async (m, [seed, body]) => {
        const keys = await m('keys'); const signing = await m('signing'); const bytes = await m('bytes');
        const key = await keys.importSeed(bytes.fromHex(seed));
        return await signing.signTx(key, body.chain_id, body.type, body.payload, body.nonce, body.version);
    }""", [v["signer_seed"], body])
    assert out == {"wire": v["wire_text"], "txHash": v["hash"]}


def test_merkle_paths_and_block_signature(page: Any) -> None:
    mk = PROTOCOL["merkle"]
    roots = js(page, """async (m, mk) => {
        const p = await m('proof'); const b = await m('bytes');
        return Promise.all(mk.audit_paths.map((a) => p.rootFromPath(b.fromHex(mk.leaves_hex[a.index]), a.index,
            mk.leaves_hex.length, a.path)));
    }""", mk)
    assert roots == [mk["root"]] * 3
    bad = js(page, """async (m, mk) => { const p = await m('proof'); const b = await m('bytes');
        return [await p.rootFromPath(b.fromHex('61'), 0, 3, mk.audit_paths[0].path.slice(1)),
                await p.rootFromPath(b.fromHex('61'), 3, 3, [])]; }""", mk)
    assert bad[0] != mk["root"] and bad[1] is None
    header = PROTOCOL["block_header"]
    seed = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    proposer = SigningKey(seed).public_hex
    block_hash = bytes.fromhex(header["hash"])
    signature = SigningKey(seed).sign("block", "careledger-vectors", block_hash).hex()
    checks = js(page, """async (m, [pub, sig, hash]) => { const k = await m('keys'); const b = await m('bytes');
        return [await k.verify(pub, sig, 'block', 'careledger-vectors', b.fromHex(hash)),
                await k.verify(pub, sig, 'block', 'careledger-other', b.fromHex(hash)),
                await k.verify(pub, sig, 'tx', 'careledger-vectors', b.fromHex(hash))]; }""",
                [proposer, signature, header["hash"]])
    assert checks == [True, False, False]


PROTOCOL_MD = (HERE.parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
VECTOR_BLOCKS = re.findall(r"^```json vector\n(.*?)^```", PROTOCOL_MD, re.MULTILINE | re.DOTALL)
SIGNED_REQUEST = next(doc for doc in map(json.loads, VECTOR_BLOCKS) if doc["vector"] == "signed_request")


def test_signed_requests_equal_the_vector_and_verify_with_the_node_verifier(page: Any) -> None:
    v = SIGNED_REQUEST
    signed = js(page, """async (m, v) => {
        const k = await m('keys'); const s = await m('signing'); const b = await m('bytes');
        const key = await k.importSeed(b.fromHex(v.requester_seed));
        return [await s.signedRequestText(v.method, v.target, v.body_text, key.publicHex, v.time_ms, v.nonce),
                await s.signRequest(key, v.chain_id, v.method, v.target, v.body_text, v.time_ms, v.nonce)];
    }""", v)
    assert signed == [v["signed_text"], {"Authorization": v["authorization"]}]
    seed = bytes(range(32))
    chain_id = "careledger-console"
    now = int(time.time() * 1000)
    body, headers = js(page, """async (m, [seed, now]) => {
        const k = await m('keys'); const s = await m('signing'); const b = await m('bytes');
        const key = await k.importSeed(b.fromHex(seed));
        const fields = {format: 'json', patient: 'pt-' + '0'.repeat(32), study: null};
        const body = JSON.stringify(s.typedRequest('view', fields));
        return [body, await s.signRequest(key, 'careledger-console', 'post', '/v1/records/query', body, now)];
    }""", [seed.hex(), now])
    request = SignedRequest("POST", "/v1/records/query", body.encode(), headers["Authorization"])
    verified = verify_request(request, chain_id, SUITES["ed25519-sha256"], now, kinds=QUERY_KINDS)
    assert verified.requester == SigningKey(seed).public_hex and "study" not in json.loads(body)
    target = "/v1/supply/alerts?kind=possible_clone&since_height=3"
    headers = js(page, """async (m, [seed, target, now]) => {
        const k = await m('keys'); const s = await m('signing'); const b = await m('bytes');
        return s.signRequest(await k.importSeed(b.fromHex(seed)), 'careledger-console', 'get', target, '', now);
    }""", [seed.hex(), target, now])
    verify_request(SignedRequest("GET", target, b"", headers["Authorization"]), chain_id, SUITES["ed25519-sha256"], now)


@pytest.mark.parametrize("vector", KEYCRYPT, ids=lambda v: v["label"])
def test_keycrypt_vectors_open_and_reseal_in_the_page(page: Any, vector: dict[str, Any]) -> None:
    out = js(page, """async (m, v) => {
        const kc = await m('keycrypt'); const k = await m('keys'); const b = await m('bytes');
        const seed = await kc.decryptKeyfile(v.document, v.passphrase);
        const p = v.document.crypto.kdfparams;
        const again = await kc.encryptKeyfile(seed, v.public_key, v.passphrase, v.document.name,
            {n: p.n, r: p.r, p: p.p, salt: b.fromHex(p.salt), nonce: b.fromHex(v.document.crypto.nonce)});
        const unlocked = await k.unlock(v.document, v.passphrase);
        let wrong; try { await kc.decryptKeyfile(v.document, v.passphrase + 'x'); wrong = 'opened'; }
        catch (e) { wrong = e.reason; }
        return {seed: b.toHex(seed), again, pub: unlocked.publicHex, wrong};
    }""", vector)
    assert out == {"seed": vector["seed"], "again": vector["document"], "pub": vector["public_key"],
                   "wrong": "passphrase"}


def test_a_key_sealed_in_the_page_opens_in_python(page: Any) -> None:
    """The default parameters (scrypt n = 2^17) in the page; the CLI's module opens the result."""
    started = time.perf_counter()
    doc = js(page, """async (m) => { const k = await m('keys');
        return k.seal(crypto.getRandomValues(new Uint8Array(32)), '护士站 night shift', 'ward-7'); }""")
    sealed_s = time.perf_counter() - started
    params = doc["crypto"]["kdfparams"]
    assert params == {"dklen": 32, "n": 2**17, "p": 1, "r": 8, "salt": params["salt"]}
    key = decrypt_key(doc, "护士站 night shift")
    assert key.public_hex == doc["public_key"] and doc["name"] == "ward-7"
    print(f"sealing a key in the page (scrypt n=2^17, r=8, p=1): {sealed_s:.2f} s")
    refused = js(page, """async (m, doc) => { const kc = await m('keycrypt');
        const bad = structuredClone(doc); bad.crypto.kdfparams.n = 2 ** 21;
        try { await kc.decryptKeyfile(bad, 'x'); return 'opened'; }
        catch (e) { return e.reason + ':' + e.message; } }""", doc)
    assert refused.startswith("invalid:")
