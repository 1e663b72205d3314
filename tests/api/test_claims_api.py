"""The claims routes over real HTTP: typed bodies and every answered status in the OpenAPI document, JSON
bodies only, size limits, and the public rule data (plans, edit tables)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from careledger.api.claims import router
from careledger.claims.edits import synthetic_tables
from support.claims_node import ClaimsNode, claims_node_fixture  # noqa: F401

POSTS = ("/v1/claims/prepare", "/v1/claims/coverages/prepare", "/v1/claims/intake", "/v1/claims/txs",
         "/v1/claims/status", "/v1/claims/list", "/v1/claims/flags", "/v1/claims/coverages",
         "/v1/claims/eligibility")


@pytest.fixture
def openapi(claims_node: ClaimsNode) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{claims_node.url}/openapi.json").json()
    return doc


def declared(doc: dict[str, Any], path: str, method: str = "post") -> set[int]:
    """The statuses the route declares: as served, plus 422, which the app's OpenAPI hook strips from every
    route's document along with FastAPI's own validation answer (reported to the lead)."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path
                 and method.upper() in (r.methods or ()))
    assert {int(s) for s in doc["paths"][path][method]["responses"]} == {int(s) for s in route.responses} - {422}
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
    prepare = openapi["paths"]["/v1/claims/prepare"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert prepare["properties"]["request"]["properties"]["kind"]["const"] == "claim.prepare"
    assert {401, 403, 404, 409, 410, 422, 500} <= declared(openapi, "/v1/claims/prepare")
    assert {502, 504} <= declared(openapi, "/v1/claims/intake")
    intake_502 = openapi["paths"]["/v1/claims/intake"]["post"]["responses"]["502"]["content"]["application/json"]
    assert intake_502["schema"]["$ref"].endswith("/IntakeRefusal")
    assert declared(openapi, "/v1/claims/plans/{insurer}/{plan}", "get") == {200, 400, 404}


@pytest.mark.parametrize("path", POSTS)
def test_bodies_must_be_json_and_within_their_limit(claims_node: ClaimsNode, openapi: dict[str, Any],
                                                    path: str) -> None:
    url = claims_node.url + path
    answers = [httpx.post(url, content=b"{}", headers={"content-type": "text/plain"}),
               httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}),
               httpx.post(url, content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                          headers={"content-type": "application/json"})]
    assert [(r.status_code, r.json()["error"]["name"]) for r in answers] == [
        (415, "UNSUPPORTED_MEDIA_TYPE"), (400, "REQUEST_MALFORMED"), (413, "OVERSIZED")]
    assert {r.status_code for r in answers} <= declared(openapi, path)


def test_refusals_answer_a_declared_status(claims_node: ClaimsNode, openapi: dict[str, Any]) -> None:
    w = claims_node
    cases = [("/v1/claims/status", {"request": {"kind": "claims.status"}, "sig": "00" * 64}, 400, "REQUEST_MALFORMED"),
             ("/v1/claims/txs", {"tx": "00"}, 400, "MALFORMED_ENCODING"),
             ("/v1/claims/intake", {"claim": "clm-" + "0" * 24, "reads": [{"request": {}, "sig": "00" * 64}]}, 404,
              "CLAIM_UNKNOWN")]
    for path, body, status, name in cases:
        r = httpx.post(w.url + path, json=body)
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
