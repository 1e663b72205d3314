"""The nonce queue under CometBFT, on a real two-validator network on loopback (``careledger net``):
the node that receives a signer's transactions ahead of its next nonce holds them (``202 queued``)
and broadcasts them in nonce order once the gap fills; the other validator commits them too; a
second transaction for a queued nonce is refused ``NONCE_ALREADY_PENDING``; a restart of the
receiving node forgets what it held (404). docs/protocol.md section 5 states the rules.

Needs the cometbft binary (scripts/install-cometbft.sh); skipped without it, except under CI=true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from careledger.client import ClientError
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.net.cluster import LocalNetwork
from careledger.net.layout import Tuning
from support import require_cometbft, seeded_key

pytestmark = pytest.mark.cometbft


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    require_cometbft()
    network = LocalNetwork.create(tmp_path_factory.mktemp("queue-net") / "net", 2, chain_id="careledger-queue",
                                  tuning=Tuning(timeout_commit="150ms"))
    try:
        network.start()
        network.wait_api()
        yield network
    finally:
        network.stop()


def enrol(net: LocalNetwork, nonce: int, label: str = "") -> bytes:
    node = net.spec.nodes[0]
    admin: SigningKey = net.spec.admin_key(0)
    return sign_tx(admin, net.client(0).chain_id(), "identity.enrol_member", 1, nonce,
                   {"member": seeded_key(f"cmt-queue/{nonce}/{label}").public_hex, "org": node.org,
                    "roles": ["physician"]})


def hash_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_the_receiving_node_holds_a_gap_and_broadcasts_in_order_once_it_fills(net: LocalNetwork) -> None:
    client = net.client(0)
    base = client.request("GET", f"/v1/accounts/{net.spec.admin_key(0).public_hex}/nonce")["next"]
    ahead = [enrol(net, base + k) for k in (3, 2, 1)]
    for raw in ahead:
        assert client.submit(raw)["status"] == "queued"
        assert client.tx(hash_of(raw))["status"] == "queued"
    with pytest.raises(ClientError) as rival:
        client.submit(enrol(net, base + 2, "rival"))
    assert rival.value.code == Code.NONCE_ALREADY_PENDING
    done = client.submit(enrol(net, base), wait=True)
    assert done["status"] == "committed"
    for raw in reversed(ahead):  # nonce order: base+1, base+2, base+3
        tx_hash = hash_of(raw)

        def committed_on_both(tx_hash: str = tx_hash) -> bool:
            return all(net.client(i).tx(tx_hash).get("status") == "committed" for i in (0, 1))

        net.wait(f"{tx_hash} committed on both validators", committed_on_both)
    heights = [net.client(1).tx(hash_of(raw))["height"] for raw in reversed(ahead)]
    assert heights == sorted(heights)
    assert client.request("GET", f"/v1/accounts/{net.spec.admin_key(0).public_hex}/nonce")["committed"] == base + 3


def test_a_restart_forgets_what_the_node_held(net: LocalNetwork) -> None:
    client = net.client(0)
    base = client.request("GET", f"/v1/accounts/{net.spec.admin_key(0).public_hex}/nonce")["next"]
    held = enrol(net, base + 1)
    assert client.submit(held)["status"] == "queued"
    net.kill(0)
    net.start(0)
    net.wait_api([0])
    with pytest.raises(ClientError) as unknown:
        net.client(0).tx(hash_of(held))
    assert unknown.value.code == Code.NOT_FOUND
    with pytest.raises(ClientError) as elsewhere:  # the other validator never saw it
        net.client(1).tx(hash_of(held))
    assert elsewhere.value.code == Code.NOT_FOUND
