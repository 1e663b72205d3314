"""Schemathesis (all checks) against a real node on loopback, for every route that takes a signed
request: each generated case is sent once unsigned and once signed by an organisation admin
(``Authorization: CareLedger-Request …`` over the exact bytes sent, docs/protocol.md section 4.3), and
every answer must have a declared status, content type and body. A bounded number of examples per
operation (seeded); the rest of the API joins this run as its routes declare their statuses
(issue 11, item 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import ignored_auth

from careledger.api.server import BackgroundServer, serve_in_thread
from careledger.node.solo import Node
from careledger.vault.requests import sign_headers
from support import Consortium

SIGNED = (r"^/(v1/records/query|v1/gateway/(read|store)|v1/supply/alerts|v1/research/(releases|packages|answers|"
          r"results|log)|v1/claims/(prepare|coverages/prepare|status|list|flags|coverages|eligibility)|"
          r"fhir/(auth/token|\{resource_type\}.*))$")
EXAMPLES = 12


@pytest.fixture
def server(node: Node) -> Iterator[BackgroundServer]:
    srv = serve_in_thread(node)
    try:
        yield srv
    finally:
        srv.stop()


def send(http: httpx.Client, case: Case[Any], sign: Any | None, chain_id: str) -> httpx.Response:
    """The case as schemathesis would send it, its JSON body serialised here so that the signature
    covers exactly the bytes sent."""
    kwargs = case.as_transport_kwargs(base_url=str(http.base_url))
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    content: bytes | None = None
    if "json" in kwargs:
        content = json.dumps(kwargs["json"]).encode()
        headers["Content-Type"] = "application/json"
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else str(data).encode()
    request = http.build_request(case.method, kwargs["url"], params=kwargs.get("params"), headers=headers,
                                 content=content)
    if sign is not None:
        request.headers.update(sign_headers(sign, chain_id, request.method, request.url.raw_path.decode("ascii"),
                                            request.content))
    return http.send(request)


def test_signed_routes_answer_only_what_they_declare(server: BackgroundServer, consortium: Consortium) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(path_regex=SIGNED)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("POST", "/v1/records/query"), ("POST", "/v1/gateway/read"), ("POST", "/v1/gateway/store"),
        ("GET", "/v1/supply/alerts"), ("POST", "/fhir/auth/token"), ("GET", "/fhir/{resource_type}"),
        ("GET", "/fhir/{resource_type}/{resource_id}"), ("POST", "/v1/research/releases"),
        ("POST", "/v1/research/packages"), ("POST", "/v1/research/answers"), ("POST", "/v1/research/results"),
        ("POST", "/v1/research/log"), *(("POST", f"/v1/claims/{p}") for p in (
            "prepare", "coverages/prepare", "status", "list", "flags", "coverages", "eligibility"))}
    admin, chain_id = consortium.admin("hospital"), consortium.chain_id
    seen: dict[str, set[int]] = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for operation in operations:
            statuses = seen.setdefault(operation.label, set())

            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(), signed=st.booleans())
            def check(case: Case[Any], signed: bool) -> None:
                response = send(http, case, admin if signed else None, chain_id)
                statuses.add(response.status_code)  # noqa: B023 (run before the next operation)
                if not signed:  # a request no key signed is refused as such, whatever else it holds
                    assert response.status_code in (401, 415), (case.method, case.path, response.text)
                # schemathesis cannot tell our own signature from none: ignored_auth is the check above
                case.validate_response(response, excluded_checks=[ignored_auth],
                                       transport_kwargs=case.as_transport_kwargs(base_url=str(http.base_url)))

            check()
    assert all(seen.values())
    assert any(s < 400 for s in seen["GET /fhir/{resource_type}"] | seen["POST /fhir/auth/token"]), seen
