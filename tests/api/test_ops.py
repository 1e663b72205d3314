"""The operations surface over real HTTP on loopback against a real node: ``/healthz``, ``/readyz``,
``/metrics``, per-client rate limits on the open read routes, the connection cap and the header and
idle time-outs (1,000 idle connections are closed or refused, not held)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from careledger.api.limits import OPEN_READ_PREFIXES, RateLimit, TokenBuckets
from careledger.api.server import BackgroundServer
from careledger.api.settings import ApiSettings
from careledger.core.errors import Code
from careledger.core.tx import sign_tx
from careledger.node.solo import Node
from support import seeded_key

GTIN = "09506000134352"


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def server(node: Node) -> Iterator[BackgroundServer]:
    with BackgroundServer(node) as srv:
        yield srv


def test_healthz_and_readyz_while_the_node_runs(server: BackgroundServer, node: Node) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").json() == {"status": "alive"}
        deadline = time.monotonic() + 10  # the engine is "starting" until it has checked the store's rows
        while (ready := http.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            assert ready.json()["checks"]["engine"]["engine"] == "starting", ready.text
            time.sleep(0.05)
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["engine"] == {"ready": True, "engine": "producing", "height": node.head.height, "halt": None}
        assert checks["store"] == {"open": True, "height": node.head.height}
        assert checks["services"] == {"open": True}


def test_readyz_answers_503_once_the_engine_stops(server: BackgroundServer, node: Node) -> None:
    node.stop()
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/healthz").status_code == 200  # alive, not ready
        answer = http.get("/readyz")
        assert answer.status_code == 503
        doc = answer.json()
        assert doc["error"]["code"] == Code.NODE_UNAVAILABLE and doc["ready"] is False
        assert doc["checks"]["engine"]["engine"] == "stopped" and doc["checks"]["store"]["open"] is True
        assert "engine" in doc["error"]["message"]
        metrics = metric_samples(http.get("/metrics").text)
    assert metrics[("careledger_ready", ())] == 0


def test_readyz_answers_503_when_the_store_file_is_gone(server: BackgroundServer, node: Node) -> None:
    moved = node.store.path.with_suffix(".moved")
    node.store.path.rename(moved)
    try:
        answer = httpx.get(f"{server.url}/readyz")
    finally:
        moved.rename(node.store.path)
    assert answer.status_code == 503
    assert answer.json()["checks"]["store"] == {"open": False, "reason": "the ledger file is gone"}


def test_metrics_count_admissions_refusals_receipts_and_commit_latency(server: BackgroundServer, node: Node,
                                                                       consortium: Any) -> None:
    admin = consortium.admin("hospital")
    chain_id = node.chain.chain_id
    good = sign_tx(admin, chain_id, "identity.enrol_member", 1, 1,
                   {"member": seeded_key("member/ops-1").public_hex, "org": "hospital", "roles": ["physician"]})
    refused = sign_tx(admin, chain_id, "identity.enrol_member", 1, 1,  # nonce 1 again: NONCE_REPLAYED
                      {"member": seeded_key("member/ops-2").public_hex, "org": "hospital", "roles": ["nurse"]})
    failing = sign_tx(admin, chain_id, "identity.enrol_member", 1, 2,  # committed, refused by the contract
                      {"member": seeded_key("member/ops-3").public_hex, "org": "hospital", "roles": ["inspector"]})
    json_body = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, headers=json_body) as http:
        assert http.post("/v1/txs", content=good, params={"wait": "commit"}).status_code == 200
        assert http.post("/v1/txs", content=refused, params={"wait": "commit"}).json()["error"]["code"] == 301
        assert http.post("/v1/txs", content=failing, params={"wait": "commit"}).json()["receipt"]["code"] == 1003
        http.get(f"/v1/accounts/{admin.public_hex}/nonce")
        text = http.get("/metrics").text
    m = metric_samples(text)
    assert m[("careledger_tx_admitted_total", ())] == 2
    assert m[("careledger_tx_refused_total", (("code", "301"), ("name", "NONCE_REPLAYED")))] == 1
    assert m[("careledger_tx_receipts_total", (("code", "0"), ("name", "OK")))] == 1
    assert m[("careledger_tx_receipts_total", (("code", "1003"), ("name", "ROLE_NOT_ALLOWED")))] == 1
    assert m[("careledger_tx_commit_seconds_count", ())] == 2
    assert 0 < m[("careledger_tx_commit_seconds_sum", ())] < 10
    assert m[("careledger_height", ())] == node.head.height == 2
    assert m[("careledger_mempool_transactions", ())] == 0
    assert m[("careledger_startup_seconds", ())] > 0
    assert m[("careledger_gateway_reads_total", (("outcome", "granted"),))] == 0
    # requests are counted by route template, never by the path with its values
    assert m[("careledger_http_requests_total", (("route", "/v1/accounts/{pubkey}/nonce"), ("status", "200")))] == 1
    assert m[("careledger_http_requests_total", (("route", "/v1/txs"), ("status", "409")))] == 1
    assert admin.public_hex not in text


# -- rate limits ---------------------------------------------------------------------------------------------

def test_token_buckets_refill_at_the_rate_and_forget_full_buckets() -> None:
    now = [100.0]
    buckets = TokenBuckets(RateLimit(rate=2.0, burst=3, max_clients=2), clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: half a second to the next token
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0
    now[0] += 10  # a and b have refilled: the bucket of a third client drops them, not its own
    assert buckets.take("c") == 0.0
    assert len(buckets) <= 2
    with pytest.raises(ValueError):
        RateLimit(rate=-1)


def test_open_read_routes_are_rate_limited_per_client(node: Node) -> None:
    settings = ApiSettings(rate_limit=RateLimit(rate=1.0, burst=3))
    assert "/v1/supply/verify" in OPEN_READ_PREFIXES
    assert {"/v1/supply/locations", "/v1/supply/captures", "/v1/epcis/events"} <= set(OPEN_READ_PREFIXES)
    height = node.head.height
    with BackgroundServer(node, settings=settings) as srv, httpx.Client(base_url=srv.url) as http:
        answers = [http.get("/v1/supply/verify", params={"gtin": GTIN, "serial": f"S{i}"}) for i in range(8)]
        statuses = [a.status_code for a in answers]
        assert statuses[:3] == [200, 200, 200], [a.text for a in answers[:3]]
        limited = [a for a in answers if a.status_code == 429]
        assert len(limited) >= 4  # a token comes back each second: at most one more got through
        for answer in limited:
            assert answer.json()["error"]["code"] == Code.RATE_LIMITED
            assert answer.json()["error"]["name"] == "RATE_LIMITED"
            assert 1 <= int(answer.headers["retry-after"]) <= 2
        # other routes are not limited for the same client ...
        assert all(http.get("/v1/status").status_code == 200 for _ in range(10))
        # ... and another client has its own bucket
        other = httpx.Client(base_url=srv.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            assert other.get("/v1/supply/verify", params={"gtin": GTIN, "serial": "X"}).status_code == 200
        m = metric_samples(http.get("/metrics").text)
    assert m[("careledger_rate_limited_total", ())] == len(limited)
    assert node.head.height == height  # verification writes nothing, limited or not


def test_rate_limit_zero_turns_it_off(node: Node) -> None:
    settings = ApiSettings(rate_limit=RateLimit(rate=0, burst=1))
    with BackgroundServer(node, settings=settings) as srv, httpx.Client(base_url=srv.url) as http:
        assert {http.get("/v1/supply/verify", params={"gtin": GTIN, "serial": "S"}).status_code
                for _ in range(20)} == {200}


# -- connections -----------------------------------------------------------------------------------------------

def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes (or ``timeout`` passes: then what came so far)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def _is_closed(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(65536) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except ConnectionResetError:
        return True


def _first_bytes(socks: list[socket.socket], want: int, within_s: float) -> list[bytes]:
    """The first bytes each socket receives, gathered until ``want`` sockets have answered or
    ``within_s`` has passed (a socket closed without a byte gives nothing)."""
    answered: list[bytes] = []
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within_s
        while len(answered) < want and time.monotonic() < deadline and sel.get_map():
            for key, _ in sel.select(timeout=0.2):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                sel.unregister(ready)
                with contextlib.suppress(OSError):
                    head = ready.recv(65536)
                    if head:
                        answered.append(head)
    return answered


def test_a_thousand_idle_connections_are_refused_or_closed(node: Node) -> None:
    """1,000 connections that never send a byte: those above the cap are answered 503 TOO_MANY_CONNECTIONS
    at once, the rest are closed by the header time-out; the node serves normally afterwards."""
    settings = ApiSettings(max_connections=100, header_timeout_s=1.0)
    with BackgroundServer(node, settings=settings) as srv:
        socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(1000)]
        try:
            refused = _first_bytes(socks, want=1000 - 100, within_s=15.0)  # patient on a loaded machine
            assert len(refused) >= 1000 - 100
            sample = refused[-1]
            assert sample.startswith(b"HTTP/1.1 503 "), sample[:80]
            assert b'"code": 931' in sample and b"TOO_MANY_CONNECTIONS" in sample
            deadline = time.monotonic() + 30  # the 1 s header time-out, late on a loaded machine
            open_now = [s for s in socks if not _is_closed(s)]
            while open_now and time.monotonic() < deadline:
                time.sleep(0.2)
                open_now = [s for s in open_now if not _is_closed(s)]
            assert not open_now, f"{len(open_now)} idle connections still open after the header time-out"
        finally:
            for sock in socks:
                sock.close()
        with httpx.Client(base_url=srv.url) as http:
            assert http.get("/v1/status").status_code == 200
            m = metric_samples(http.get("/metrics").text)
    assert m[("careledger_connections_refused_total", ())] >= 900
    assert m[("careledger_connections_timed_out_total", ())] >= 1


def test_a_slow_request_head_is_cut_off(node: Node) -> None:
    """A client trickling its request head (a byte every 0.2 s) is closed at the header time-out, not
    kept alive by each byte; one that sends its head at once is answered."""
    settings = ApiSettings(header_timeout_s=1.0)
    with BackgroundServer(node, settings=settings) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as slow:
            began = time.monotonic()
            slow.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            closed_after = None
            for _ in range(40):
                try:
                    slow.sendall(b"X")
                except OSError:
                    closed_after = time.monotonic() - began
                    break
                if _is_closed(slow):
                    closed_after = time.monotonic() - began
                    break
                time.sleep(0.2)
            assert closed_after is not None and closed_after < 3, closed_after
        with socket.create_connection(("127.0.0.1", srv.port)) as fast:
            fast.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_all(fast, 5).startswith(b"HTTP/1.1 200 ")


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_time(node: Node) -> None:
    settings = ApiSettings(keep_alive_s=1.0, header_timeout_s=30.0)
    with BackgroundServer(node, settings=settings) as srv, socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b'{"status":"alive"}'):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        began = time.monotonic()
        assert _read_all(sock, 5) == b""  # closed by the server, with nothing more sent
        assert time.monotonic() - began < 3


# -- a CometBFT node's readiness -----------------------------------------------------------------------------------

class _CometbftRpc:
    """A stand-in for CometBFT's RPC on loopback that answers ``status`` with ``catching_up`` as set."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        rpc = self
        self.catching_up = False

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {
                    "sync_info": {"catching_up": rpc.catching_up, "latest_block_height": "1"}}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_cometbft_node_is_ready_only_while_its_cometbft_answers_and_has_caught_up(tmp_path: Any,
                                                                                   consortium: Any) -> None:
    import json

    from google.protobuf.timestamp_pb2 import Timestamp

    from careledger.abci import abci_pb2 as pb
    from careledger.abci.app import CareLedgerApp
    from careledger.abci.engine import CometbftEngine
    from support import GENESIS_TIME_MS
    from support.load import free_port

    app = CareLedgerApp(tmp_path / "data" / "ledger.sqlite")
    time_ms = Timestamp()
    time_ms.FromMilliseconds(GENESIS_TIME_MS)
    app.init_chain(pb.InitChainRequest(time=time_ms, chain_id=consortium.chain_id, initial_height=1,
                                       app_state_bytes=json.dumps(consortium.doc).encode()))
    rpc = _CometbftRpc()
    engines = [CometbftEngine(app, rpc.url), CometbftEngine(app, f"http://127.0.0.1:{free_port()}")]
    try:
        with BackgroundServer(engines[0], home=tmp_path) as srv:
            assert httpx.get(f"{srv.url}/readyz").status_code == 200
            rpc.catching_up = True
            answer = httpx.get(f"{srv.url}/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"]["engine"]["engine"] == "catching_up"
        with BackgroundServer(engines[1], home=tmp_path) as srv:  # nothing listens at its CometBFT's RPC
            answer = httpx.get(f"{srv.url}/readyz")
            assert answer.status_code == 503 and answer.json()["error"]["name"] == "NODE_UNAVAILABLE"
            engine = answer.json()["checks"]["engine"]
            assert engine["engine"] == "halted" and engine["halt"]["kind"] == "cometbft_unreachable"
            assert httpx.get(f"{srv.url}/healthz").status_code == 200
    finally:
        for engine in engines:
            engine.close()
        rpc.close()
        app.close()
