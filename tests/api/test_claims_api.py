"""The claims routes over real HTTP: typed bodies and every answered status in the OpenAPI document, JSON
bodies only, size limits, and the public rule data (plans, edit tables)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from careledger.api.claims import router
from careledger.claims.edits import synthetic_tables
from careledger.vault.requests import sign_headers
from support.claims_node import ClaimsNode, claims_node_fixture  # noqa: F401

POSTS = ("/v1/claims/prepare", "/v1/claims/coverages/prepare", "/v1/claims/intake", "/v1/claims/txs",
         "/v1/claims/status", "/v1/claims/list", "/v1/claims/flags", "/v1/claims/coverages",
         "/v1/claims/eligibility")
SIGNED = {"/v1/claims/prepare": "claim.prepare", "/v1/claims/coverages/prepare": "coverage.prepare",
          "/v1/claims/status": "claims.status", "/v1/claims/list": "claims.list", "/v1/claims/flags": "claims.flags",
          "/v1/claims/coverages": "claims.coverages", "/v1/claims/eligibility": "claims.eligibility"}
"""The routes that take a signed request (docs/protocol.md section 4.3), each with its one kind."""


@pytest.fixture
def openapi(claims_node: ClaimsNode) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{claims_node.url}/openapi.json").json()
    return doc


def declared(doc: dict[str, Any], path: str, method: str = "post") -> set[int]:
    """The statuses the route declares, as served (the app's OpenAPI hook replaces only FastAPI's own
    validation answer, never a declared 422)."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path
                 and method.upper() in (r.methods or ()))
    assert {int(s) for s in doc["paths"][path][method]["responses"]} == {int(s) for s in route.responses}
    return {int(s) for s in route.responses}


def test_every_route_has_a_typed_body_and_declares_its_statuses(openapi: dict[str, Any]) -> None:
    claims_paths = {p for p in openapi["paths"] if p.startswith("/v1/claims")}
    assert claims_paths == {*POSTS, "/v1/claims/plans/{insurer}/{plan}", "/v1/claims/tables/{name}"}
    for path in POSTS:
        op = openapi["paths"][path]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object" and schema["properties"] and "$defs" not in str(schema), path
        assert {200, 400, 413, 415, 503} <= declared(openapi, path), path
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/"), path
    for path, kind in SIGNED.items():
        op = openapi["paths"][path]["post"]
        assert op["security"] == [{"CareLedgerRequest": []}], path
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["kind"]["const"] == kind and schema["additionalProperties"] is False, path
        assert not {"request", "sig", "requester", "time_ms", "nonce", "content"} & set(schema["properties"]), path
    assert "security" not in openapi["paths"]["/v1/claims/intake"]["post"]  # the reads it forwards are signed
    assert {401, 403, 404, 409, 410, 422, 500} <= declared(openapi, "/v1/claims/prepare")
    assert {502, 504} <= declared(openapi, "/v1/claims/intake")
    intake_502 = openapi["paths"]["/v1/claims/intake"]["post"]["responses"]["502"]["content"]["application/json"]
    assert intake_502["schema"]["$ref"].endswith("/IntakeRefusal")
    assert declared(openapi, "/v1/claims/plans/{insurer}/{plan}", "get") == {200, 400, 404}


@pytest.mark.parametrize("path", POSTS)
def test_bodies_must_be_json_and_within_their_limit(claims_node: ClaimsNode, openapi: dict[str, Any],
                                                    path: str) -> None:
    url = claims_node.url + path
    signed = {"content-type": "application/json"}  # the signature is checked before the body
    if path in SIGNED:
        signed |= sign_headers(claims_node.keys["hospital-officer"], claims_node.ledger.chain_id(), "POST", path,
                               b"{not json")
    answers = [httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}),
               httpx.post(url, content=b"{not json", headers=signed),
               httpx.post(url, content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                          headers={"content-type": "application/json"})]
    assert [(r.status_code, r.json()["error"]["name"]) for r in answers] == [
        (415, "UNSUPPORTED_MEDIA_TYPE"), (400, "REQUEST_MALFORMED"), (413, "OVERSIZED")]
    assert {r.status_code for r in answers} <= declared(openapi, path)


def test_refusals_answer_a_declared_status(claims_node: ClaimsNode, openapi: dict[str, Any]) -> None:
    w = claims_node
    key, chain = w.keys["hospital-officer"], w.ledger.chain_id()

    def signed(path: str, doc: dict[str, Any]) -> dict[str, str]:
        return sign_headers(key, chain, "POST", path, httpx.Request("POST", "/", json=doc).content)

    status_query = {"kind": "claims.status"}  # no claim
    forwarded = {"authorization": "CareLedger-Request key=00", "body": "{}"}
    cases = [("/v1/claims/status", status_query, {}, 401, "MISSING_SIGNATURE"),
             ("/v1/claims/status", status_query, signed("/v1/claims/list", status_query), 401, "BAD_SIGNATURE"),
             ("/v1/claims/status", status_query, signed("/v1/claims/status", status_query), 400, "REQUEST_MALFORMED"),
             ("/v1/claims/status", {**status_query, "claim": "clm-" + "0" * 24, "requester": key.public_hex},
              signed("/v1/claims/status", {**status_query, "claim": "clm-" + "0" * 24,
                                           "requester": key.public_hex}), 400, "REQUEST_MALFORMED"),
             ("/v1/claims/txs", {"tx": "00"}, {}, 400, "MALFORMED_ENCODING"),
             ("/v1/claims/intake", {"claim": "clm-" + "0" * 24, "reads": [forwarded]}, {}, 404, "CLAIM_UNKNOWN"),
             ("/v1/claims/intake", {"claim": "clm-" + "0" * 24, "reads": [{"request": {}, "sig": "00" * 64}]}, {},
              400, "REQUEST_MALFORMED")]  # the old envelope
    for path, body, headers, status, name in cases:
        r = httpx.post(w.url + path, json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["name"]) == (status, name), r.text
        assert status in declared(openapi, path)


def test_plans_and_edit_tables_are_public_rule_data(claims_node: ClaimsNode) -> None:
    w = claims_node
    plan = httpx.get(f"{w.url}/v1/claims/plans/insurer/example-ppo").json()
    assert [v["version"] for v in plan["versions"]] == [1] and len(plan["versions"][0]["digest"]) == 64
    t = synthetic_tables()
    table = httpx.get(f"{w.url}/v1/claims/tables/{t.name}").json()
    [version] = table["versions"]
    assert (version["version"], version["digest"], version["status"]) == (t.version, t.digest, "approved")
    for missing in ("/v1/claims/plans/insurer/no-such-plan", "/v1/claims/tables/no-such-table"):
        r = httpx.get(w.url + missing)
        assert (r.status_code, r.json()["error"]["name"]) == (404, "NOT_FOUND")
    assert httpx.get(f"{w.url}/v1/claims/plans/Not An Org/x").status_code == 400
