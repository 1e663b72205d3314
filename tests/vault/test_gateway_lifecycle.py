"""The records gateway is opened when the API starts and closed when it stops (not on first use):
its start-up clean-up runs before any request, a vault that cannot open keeps the server from
starting, and a stopped gateway no longer acts on commits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.api.app import create_app
from careledger.api.records import RecordsServices
from careledger.api.server import serve_in_thread
from careledger.core.errors import Code, LedgerError
from careledger.node.solo import Node
from support.records import OBSERVATION, build_world, send


def _held(world: Any, record: str) -> int:
    return int(world.vaults["hospital"].versions_held(record))


def test_start_up_shreds_erasures_and_drops_unanchored_versions_before_any_request(node: Node,
                                                                                  node_home: Any) -> None:
    first = serve_in_thread(node)
    world = build_world(node, node_home, first.url)
    try:
        alice = world.pseudonym("alice")
        record = world.client("dr_a").store("hospital", alice, OBSERVATION)["records"][0]["record"]
        assert "hospital" in [c["org"] for c in first.services.get(RecordsServices).gateway.custodians()]
        world.client("dr_a").close()
        world.clients.clear()
        first.stop()
        with pytest.raises(LedgerError) as stopped:
            first.services.get(RecordsServices)
        assert stopped.value.code == Code.NODE_UNAVAILABLE  # closed at shutdown
        # while no gateway runs: the patient's erasure commits, and a store dies half-way (pending, no anchor)
        send(node, world.keys["alice"], "records.erase", {"reason": "patient_request", "record": record})
        vault = world.vaults["hospital"]
        vault.put_pending([vault.seal("r-" + "1" * 32, 1, alice, "Observation", b'{"resourceType":"Observation"}')])
        time.sleep(0.3)  # the stopped gateway heard the commit and must have ignored it
        assert _held(world, record) == 1 and vault.pending() == [("r-" + "1" * 32, 1)]
        second = serve_in_thread(node)  # no request is made to it
        try:
            assert _held(world, record) == 0, "the start-up clean-up did not shred the erased record"
            assert vault.pending() == [] and vault.count() == 0
        finally:
            second.stop()
    finally:
        assert world.ledger is not None
        world.ledger.close()
        first.stop()
        for v in world.vaults.values():
            v.close()


def test_a_vault_that_cannot_open_keeps_the_server_from_starting(node: Node, node_home: Any) -> None:
    from careledger.vault.store import Vault

    vault = Vault.create(Path(node_home.path) / "vault" / "hospital", "hospital")
    vault.close()
    key_file = vault.directory / "org_key.json"
    doc = json.loads(key_file.read_text())
    key_file.write_text(json.dumps({**doc, "key": "00" * 32}))  # key_id no longer matches: damaged
    with pytest.raises(RuntimeError, match="did not start"):
        serve_in_thread(node)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_an_app_served_without_its_lifespan_has_no_services(node: Node) -> None:
    transport = httpx.ASGITransport(app=create_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://careledger.test") as client:
        response = await client.get("/v1/gateway")
    assert response.status_code == 503
    assert response.json()["error"]["name"] == "NODE_UNAVAILABLE"
