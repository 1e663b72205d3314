"""The HTTP fast path: the server stack the node picks (httptools on uvloop when installed, h11 on
request), the guarded protocol each gets, and the admitter that hands ``POST /v1/txs`` to the engine
from one thread (it stops when idle and starts again with the next submission)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from careledger.api.server import (
    HAS_FAST_STACK,
    GuardedProtocol,
    guarded_protocol,
    http_stack,
    serve_in_thread,
)
from careledger.api.settings import ApiSettings
from careledger.api.txs import Admitter
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code, LedgerError
from careledger.core.tx import sign_tx
from careledger.node.home import Home, init_home
from careledger.node.solo import Node, SoloEngine
from support import seeded_key

GENESIS_TIME_MS = 1_700_000_000_000


def home_of(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = init_home(tmp_path / "home", None, None, GENESIS_TIME_MS).open_node()
    n.start()
    try:
        yield n
    finally:
        n.close()


def enrol(node: Node, admin: SigningKey, nonce: int) -> bytes:
    return sign_tx(admin, node.chain.chain_id, "identity.enrol_member", 1, nonce,
                   {"member": seeded_key(f"fast/{nonce}").public_hex, "org": "org.dev", "roles": ["nurse"]})


def test_the_stack_is_httptools_when_installed_and_h11_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HAS_FAST_STACK  # uvloop and httptools are dependencies
    assert http_stack() == "httptools"
    assert guarded_protocol(ApiSettings()).__mro__[1].__name__ == "GuardedHttpToolsProtocol"
    monkeypatch.setenv("CARELEDGER_HTTP_STACK", "h11")
    assert http_stack() == "h11"
    assert issubclass(guarded_protocol(ApiSettings()), GuardedProtocol)


@pytest.mark.parametrize("stack", ["httptools", "h11"])
def test_either_stack_admits_and_refuses_a_transaction(node: Node, tmp_path: Path, stack: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_HTTP_STACK", stack)
    admin = home_of(tmp_path).key("admin")
    server = serve_in_thread(node)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            raw = enrol(node, admin, 1)
            ok = http.post("/v1/txs", content=raw, params={"wait": "commit"},
                           headers={"content-type": "application/json"})
            assert ok.status_code == 200 and ok.json()["receipt"]["code"] == 0, ok.text
            again = http.post("/v1/txs", content=raw, headers={"content-type": "application/json"})
            assert again.status_code == 409 and again.json()["error"]["name"] == "DUPLICATE_TX"
    finally:
        server.stop()


def test_the_admitter_stops_when_idle_and_starts_again(node: Node, tmp_path: Path) -> None:
    admin = home_of(tmp_path).key("admin")
    admitter = Admitter(SoloEngine(node))
    admitter.IDLE_S = 0.01

    async def go() -> None:
        first = await admitter.submit(enrol(node, admin, 1))
        assert first.admitted.result(timeout=30) == "pending"
        while admitter._running:  # its thread ends once idle
            await asyncio.sleep(0.01)
        second = await admitter.submit(enrol(node, admin, 2))
        assert second.admitted.result(timeout=30) == "pending"
        with pytest.raises(LedgerError) as refused:
            await admitter.submit(b"not json")
        assert refused.value.code is Code.MALFORMED_ENCODING

    asyncio.run(go())


def test_the_relay_delivers_a_burst_of_outcomes_and_never_cancels_the_nodes_future() -> None:
    import threading
    from concurrent.futures import Future

    from careledger.api.txs import Relay

    async def go() -> None:
        relay = Relay(asyncio.get_running_loop())
        futures: list[Future[object]] = [Future() for _ in range(50)]
        for f in futures:
            f.set_running_or_notify_cancel()  # as the node's: nobody may cancel them
        watches = [relay.watch(f) for f in futures]

        def settle() -> None:
            for i, f in enumerate(futures):
                if i == 7:
                    f.set_exception(LedgerError("refused", Code.NONCE_ALREADY_PENDING))
                else:
                    f.set_result(i)

        threading.Thread(target=settle).start()
        outcomes = await asyncio.gather(*watches, return_exceptions=True)
        assert [o for i, o in enumerate(outcomes) if i != 7] == [i for i in range(50) if i != 7]
        assert isinstance(outcomes[7], LedgerError) and outcomes[7].code is Code.NONCE_ALREADY_PENDING
        never: Future[object] = Future()
        never.set_running_or_notify_cancel()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(relay.watch(never), 0.01)
        assert not never.cancelled()
        never.set_result("late")  # arrives after its waiter gave up: delivered to nobody, no error
        await asyncio.sleep(0)

    asyncio.run(go())


def test_only_an_engine_whose_submission_never_waits_on_io_goes_through_the_admitter(node: Node) -> None:
    from careledger.abci.engine import CometbftEngine
    from careledger.api.metrics import MeteredEngine, NodeMetrics

    solo = SoloEngine(node)
    assert MeteredEngine(solo, NodeMetrics(solo)).quick_submit is True
    assert not hasattr(CometbftEngine, "quick_submit")  # its submission is an RPC: a pool thread each
