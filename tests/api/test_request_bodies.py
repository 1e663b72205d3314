"""Request bodies over real HTTP on loopback: every route that takes a body refuses anything but JSON
(415 UNSUPPORTED_MEDIA_TYPE, nothing admitted), and every refusal that concerns a transaction whose
hash can be computed names it (``tx_hash``), oversized ones included."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from careledger.api.app import ROUTES
from careledger.api.common import READ_THROUGH_FACTOR
from careledger.api.epcis import capture_tx
from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.core import codec
from careledger.core.errors import Code
from careledger.core.tx import body_of, sign_tx
from careledger.node.solo import Node
from support import Consortium

BODY_ROUTES = {("POST", "/v1/txs"), ("POST", "/v1/txs/batch"), ("POST", "/v1/records/query"),
               ("POST", "/v1/gateway/store"), ("POST", "/v1/gateway/read"), ("POST", "/v1/gateway/erase"),
               ("POST", "/v1/epcis/capture"), ("POST", "/v1/epcis/validate"), ("POST", "/fhir/auth/token"),
               *(("POST", f"/v1/research/{p}") for p in ("linkage", "releases", "packages", "answers", "results",
                                                         "log")),
               *(("POST", f"/v1/claims/{p}") for p in ("prepare", "coverages/prepare", "intake", "txs", "status",
                                                       "list", "flags", "coverages", "eligibility"))}
NOT_JSON: list[dict[str, str]] = [{}, {"content-type": "text/plain"},
                                  {"content-type": "application/x-www-form-urlencoded"},
                                  {"content-type": "application/json; charset=latin-1"},
                                  {"content-type": "application/jsonx"}]
JSON = {"content-type": "application/json"}


@pytest.fixture
def api(node: Node) -> Iterator[tuple[BackgroundServer, httpx.Client]]:
    server = serve_in_thread(node)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield server, http
    finally:
        server.stop()


def refused(response: httpx.Response, status: int, code: Code) -> dict[str, Any]:
    """The refusal's ``error`` object; the FHIR facade's routes answer with an OperationOutcome whose
    issue carries the same code and message, read here into the same shape."""
    assert response.status_code == status, response.text
    doc: dict[str, Any] = response.json()
    if doc.get("resourceType") == "OperationOutcome":
        issue = doc["issue"][0]
        coding = issue["details"]["coding"][0]
        doc = {"error": {"code": int(coding["code"]), "name": coding["display"], "message": issue["diagnostics"]}}
    assert doc["error"]["code"] == int(code) and doc["error"]["name"] == code.name, doc
    return doc


def enrol(consortium: Consortium, nonce: int = 1) -> bytes:
    admin = consortium.admin("hospital")
    return sign_tx(admin, consortium.chain_id, "identity.enrol_member", 1, nonce,
                   {"member": "ab" * 32, "org": "hospital", "roles": ["nurse"]})


def test_every_route_that_takes_a_body_refuses_anything_but_json(api: tuple[BackgroundServer, httpx.Client],
                                                                 node: Node, consortium: Consortium) -> None:
    server, http = api
    paths = server.app.openapi()["paths"]
    taking = {(m.upper(), path) for path, ops in paths.items() for m in ops if m in ("post", "put", "patch", "delete")}
    assert taking == BODY_ROUTES  # a new route that takes a body joins this test
    routes = [r for module in ROUTES for r in module.router.routes if isinstance(r, APIRoute)]
    assert {(m, r.path) for r in routes for m in r.methods or ()} >= BODY_ROUTES
    assert all(r.body_field is None for r in routes)  # bodies are read only through the checked readers
    raw = enrol(consortium)
    for method, path in sorted(taking):
        for headers in NOT_JSON:
            doc = refused(http.request(method, path, content=raw, headers=headers), 415, Code.UNSUPPORTED_MEDIA_TYPE)
            assert "application/json" in doc["error"]["message"]
    assert node.head.height == 0 and len(node.mempool) == 0  # nothing admitted, nothing written


def test_json_is_taken_with_a_utf8_charset_and_epcis_also_as_json_ld(api: tuple[BackgroundServer, httpx.Client],
                                                                      consortium: Consortium) -> None:
    _, http = api
    ok = http.post("/v1/txs", content=enrol(consortium), params={"wait": "commit"},
                   headers={"content-type": "Application/JSON; charset=UTF-8"})
    assert ok.status_code == 200 and ok.json()["receipt"]["code"] == 0, ok.text
    for media_type in ("application/ld+json", "application/json"):
        checked = http.post("/v1/epcis/validate", content=b"{}", headers={"content-type": media_type})
        assert checked.status_code == 200 and checked.json()["valid"] is False, checked.text
    refused(http.post("/v1/txs", content=enrol(consortium, 2), headers={"content-type": "application/ld+json"}),
            415, Code.UNSUPPORTED_MEDIA_TYPE)


def test_a_transaction_refused_for_its_media_type_is_named_by_its_hash(
        api: tuple[BackgroundServer, httpx.Client], consortium: Consortium) -> None:
    _, http = api
    raw = enrol(consortium)
    doc = refused(http.post("/v1/txs", content=raw, headers={"content-type": "text/plain"}), 415,
                  Code.UNSUPPORTED_MEDIA_TYPE)
    assert doc["tx_hash"] == hashlib.sha256(raw).hexdigest()


def test_an_oversized_transaction_is_named_by_its_hash_unless_too_large_to_read(
        api: tuple[BackgroundServer, httpx.Client], node: Node) -> None:
    _, http = api
    limit = node.chain.max_tx_bytes
    for size in (limit + 1, READ_THROUGH_FACTOR * limit):
        body = b"x" * size
        doc = refused(http.post("/v1/txs", content=body, headers=JSON), 413, Code.OVERSIZED)
        assert doc["tx_hash"] == hashlib.sha256(body).hexdigest()
    doc = refused(http.post("/v1/txs", content=b"x" * (READ_THROUGH_FACTOR * limit + 1), headers=JSON), 413,
                  Code.OVERSIZED)
    assert "tx_hash" not in doc  # refused unread: no hash to give
    assert node.head.height == 0 and len(node.mempool) == 0


def _capture_headers(consortium: Consortium, document: str, nonce: int = 1) -> tuple[dict[str, str], str]:
    key = consortium.admin("manufacturer")
    body = body_of(consortium.chain_id, "supply.epcis_capture", 1, key.public_hex, nonce, {"document": document})
    sig = key.sign("tx", consortium.chain_id, codec.encode(body)).hex()
    tx_hash = hashlib.sha256(capture_tx(consortium.chain_id, key.public_hex, nonce, document, sig)).hexdigest()
    return {"X-CareLedger-Key": key.public_hex, "X-CareLedger-Nonce": str(nonce),
            "X-CareLedger-Signature": sig}, tx_hash


def test_epcis_capture_refusals_name_the_rebuilt_transaction(api: tuple[BackgroundServer, httpx.Client],
                                                             node: Node, consortium: Consortium) -> None:
    _, http = api
    document = '{"type": "EPCISDocument"}'
    headers, tx_hash = _capture_headers(consortium, document)
    doc = refused(http.post("/v1/epcis/capture", content=document.encode(), headers={**headers, **JSON}), 400,
                  Code.EPCIS_SCHEMA_INVALID)
    assert doc["tx_hash"] == doc["captureID"] == tx_hash
    doc = refused(http.post("/v1/epcis/capture", content=document.encode(),
                            headers={**headers, "content-type": "text/plain"}), 415, Code.UNSUPPORTED_MEDIA_TYPE)
    assert doc["tx_hash"] == tx_hash
    big = '{"pad": "' + "x" * node.chain.max_tx_bytes + '"}'
    headers, tx_hash = _capture_headers(consortium, big)
    doc = refused(http.post("/v1/epcis/capture", content=big.encode(),
                            headers={**headers, "content-type": "application/ld+json"}), 413, Code.OVERSIZED)
    assert doc["tx_hash"] == doc["captureID"] == tx_hash
    doc = refused(http.post("/v1/epcis/capture", content=document.encode(), headers=JSON), 401,
                  Code.MISSING_SIGNATURE)
    assert "tx_hash" not in doc  # no signing headers: no transaction to name
    assert node.head.height == 0 and len(node.mempool) == 0


def test_an_erasure_refused_by_the_gateway_is_named_by_its_hash(api: tuple[BackgroundServer, httpx.Client],
                                                                consortium: Consortium) -> None:
    _, http = api
    raw = sign_tx(consortium.admin("hospital"), consortium.chain_id, "records.erase", 1, 1,
                  {"reason": "patient_request", "record": "r-" + "0" * 32})
    doc = refused(http.post("/v1/gateway/erase", json={"tx": raw.hex()}), 404, Code.RECORD_UNKNOWN)
    assert doc["tx_hash"] == hashlib.sha256(raw).hexdigest()
    doc = refused(http.post("/v1/gateway/erase", json={"tx": "zz"}), 400, Code.REQUEST_MALFORMED)
    assert "tx_hash" not in doc
