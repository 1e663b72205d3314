"""The ABCI adapter and its framing, in process (no CometBFT): requests in, responses out.

The wire tests pin our schema to CometBFT v0.38's field numbers with bytes written out by hand from
the upstream ``tendermint/abci/types.proto`` numbering, so a renumbered field fails here and not only
against a live node. The adapter tests drive :class:`CareLedgerApp` exactly as CometBFT would
(InitChain, CheckTx, PrepareProposal, ProcessProposal, FinalizeBlock, Commit, Info, Query) over a
real SQLite store, and compare its results with :class:`BlockExecution` run directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci import abci_pb2 as pb
from careledger.abci.app import CareLedgerApp, add_event, attribute_text, to_validator_updates, tx_proto_size
from careledger.abci.cometbft import validator_address
from careledger.abci.server import AbciServer, handle_request, parse_address
from careledger.abci.wire import (
    FrameBuffer,
    FrameError,
    IncompleteFrame,
    decode_uvarint,
    encode_uvarint,
    frame,
    read_frame,
)
from careledger.chain.executor import BlockExecution, check_stateless, genesis_app_hash, genesis_state
from careledger.core import codec
from careledger.core.block import BlockEnv, Receipt
from careledger.core.crypto import SigningKey
from careledger.core.errors import Code, GenesisError, LedgerError
from careledger.core.state import MemoryState
from careledger.core.tx import sign_tx
from careledger.node.store import Store
from support import GENESIS_TIME_MS, Consortium, make_consortium, seeded_key

PROPOSER = validator_address(seeded_key("validator/0").public_key)
BLOCK_MS = 1_000


# -- helpers ---------------------------------------------------------------------------------------------

def ts(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000 + 123)  # sub-ms part is dropped


def init_request(consortium: Consortium, chain_id: str | None = None, doc: dict[str, Any] | None = None
                 ) -> pb.InitChainRequest:
    return pb.InitChainRequest(time=ts(GENESIS_TIME_MS), chain_id=chain_id or consortium.chain_id,
                               app_state_bytes=json.dumps(doc or consortium.doc, indent=2).encode(),
                               initial_height=1)


def block_time(height: int) -> int:
    return GENESIS_TIME_MS + height * BLOCK_MS


def finalize(app: CareLedgerApp, txs: list[bytes], height: int | None = None) -> pb.FinalizeBlockResponse:
    height = app.cometbft_height + 1 if height is None else height
    return app.finalize_block(pb.FinalizeBlockRequest(txs=txs, height=height, time=ts(block_time(height)),
                                                      hash=hashlib.sha256(b"block%d" % height).digest(),
                                                      proposer_address=PROPOSER))


def run_block(app: CareLedgerApp, txs: list[bytes]) -> pb.FinalizeBlockResponse:
    res = finalize(app, txs)
    app.commit(pb.CommitRequest())
    return res


def process(app: CareLedgerApp, txs: list[bytes]) -> int:
    height = app.cometbft_height + 1
    return int(app.process_proposal(pb.ProcessProposalRequest(txs=txs, height=height, time=ts(block_time(height)),
                                                              proposer_address=PROPOSER)).status)


def check(app: CareLedgerApp, raw: bytes) -> int:
    return int(app.check_tx(pb.CheckTxRequest(tx=raw)).code)


def enrol(consortium: Consortium, nonce: int, member: SigningKey, org: str = "hospital",
          roles: list[str] | None = None) -> bytes:
    return sign_tx(consortium.admin(org), consortium.chain_id, "identity.enrol_member", 1, nonce,
                   {"member": member.public_hex, "org": org, "roles": roles or ["physician"]})


def query(app: CareLedgerApp, path: str, height: int = 0) -> pb.QueryResponse:
    return app.query(pb.QueryRequest(path=path, height=height))


@pytest.fixture
def app(tmp_path: Path) -> Any:
    a = CareLedgerApp(tmp_path / "ledger.sqlite")
    yield a
    a.close()


@pytest.fixture
def ready(app: CareLedgerApp, consortium: Consortium) -> CareLedgerApp:
    app.init_chain(init_request(consortium))
    return app


# -- framing ----------------------------------------------------------------------------------------------

def test_uvarint_known_values_and_round_trip() -> None:
    assert encode_uvarint(0) == b"\x00"
    assert encode_uvarint(127) == b"\x7f"
    assert encode_uvarint(300) == b"\xac\x02"
    assert encode_uvarint(2**64 - 1) == b"\xff" * 9 + b"\x01"
    for n in (0, 1, 127, 128, 16_383, 16_384, 2**32, 2**63, 2**64 - 1):
        assert decode_uvarint(b"x" + encode_uvarint(n) + b"rest", 1) == (n, 1 + len(encode_uvarint(n)))
    with pytest.raises(ValueError):
        encode_uvarint(-1)


def test_uvarint_refuses_overlong_and_reports_incomplete() -> None:
    with pytest.raises(FrameError):
        decode_uvarint(b"\x80" * 10 + b"\x01")
    with pytest.raises(FrameError):
        decode_uvarint(b"\xff" * 9 + b"\x7f")  # > 64 bits
    with pytest.raises(IncompleteFrame):
        decode_uvarint(b"\x80\x80")


def test_frame_buffer_cuts_frames_across_reads_and_enforces_limit() -> None:
    a = frame(pb.Request(echo=pb.EchoRequest(message="a")))
    b = frame(pb.Request(flush=pb.FlushRequest()))
    frames = FrameBuffer()
    bodies = frames.feed(a + b + a[:3])
    assert [pb.Request.FromString(x).WhichOneof("value") for x in bodies] == ["echo", "flush"]
    assert frames.partial == a[:3]
    assert frames.feed(a[3:-1]) == []  # still one byte short
    assert [pb.Request.FromString(x).echo.message for x in frames.feed(a[-1:] + b"\x00")] == ["a", ""]
    assert frames.partial == b""
    small = FrameBuffer(max_bytes=999)
    assert len(small.feed(a + encode_uvarint(1000) + b"x")) == 1  # the frame before the bad one still counts
    assert isinstance(small.error, FrameError) and small.feed(a) == []
    long_prefix = FrameBuffer()
    assert long_prefix.feed(b"\x80" * 11) == [] and isinstance(long_prefix.error, FrameError)


def test_read_frame_from_stream() -> None:
    async def go() -> list[Any]:
        reader = asyncio.StreamReader()
        reader.feed_data(frame(pb.Request(echo=pb.EchoRequest(message="hi"))) + b"\x00")
        reader.feed_eof()
        return [await read_frame(reader), await read_frame(reader), await read_frame(reader)]

    first, empty, end = asyncio.run(go())
    assert pb.Request.FromString(first).echo.message == "hi"
    assert empty == b""  # a zero-length frame is an empty message
    assert end is None

    async def truncated() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(encode_uvarint(5) + b"ab")
        reader.feed_eof()
        await read_frame(reader)

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(truncated())


# -- wire compatibility with CometBFT v0.38 (bytes written from tendermint/abci/types.proto) ---------------

def test_request_info_bytes_match_cometbft_numbering() -> None:
    # Request.info = 3; RequestInfo{version=1, block_version=2, p2p_version=3, abci_version=4}
    wire = b"\x1a\x14" + b"\x0a\x070.38.26" + b"\x10\x0b" + b"\x18\x08" + b"\x22\x052.0.0"
    req = pb.Request.FromString(wire)
    assert req.WhichOneof("value") == "info"
    assert (req.info.version, req.info.block_version, req.info.p2p_version, req.info.abci_version) == \
        ("0.38.26", 11, 8, "2.0.0")
    assert req.SerializeToString() == wire


def test_request_finalize_block_parses_cometbft_bytes() -> None:
    # Request.finalize_block = 20 (tag 0xa2 0x01); txs=1, hash=4, height=5, time=6, proposer_address=8
    time_field = b"\x32\x06\x08\x80\xb5\x18\x10\x07"  # Timestamp{seconds=400000, nanos=7}
    inner = (b"\x0a\x02tx" + b"\x0a\x01y" + b"\x22\x02hh" + b"\x28\x07" + time_field
             + b"\x42\x14" + PROPOSER + b"\x1a\x00")  # 3 = misbehavior (an empty one)
    req = pb.Request.FromString(b"\xa2\x01" + encode_uvarint(len(inner)) + inner)
    fb = req.finalize_block
    assert req.WhichOneof("value") == "finalize_block"
    assert list(fb.txs) == [b"tx", b"y"] and fb.hash == b"hh" and fb.height == 7
    assert (fb.time.seconds, fb.time.nanos) == (400_000, 7)
    assert fb.proposer_address == PROPOSER and len(fb.misbehavior) == 1


def test_response_bytes_match_cometbft_numbering() -> None:
    app_hash = bytes(range(32))
    # Response.finalize_block = 21 (tag 0xaa 0x01); ResponseFinalizeBlock.app_hash = 5
    fin = pb.Response(finalize_block=pb.FinalizeBlockResponse(app_hash=app_hash))
    assert fin.SerializeToString() == b"\xaa\x01\x22\x2a\x20" + app_hash
    # Response.check_tx = 9; ResponseCheckTx.code = 1
    chk = pb.Response(check_tx=pb.CheckTxResponse(code=301))
    assert chk.SerializeToString() == b"\x4a\x03\x08\xad\x02"
    # Response.commit = 12; ResponseCommit.retain_height = 3
    assert pb.Response(commit=pb.CommitResponse(retain_height=5)).SerializeToString() == b"\x62\x02\x18\x05"
    # Response.info = 4; last_block_height = 4, last_block_app_hash = 5
    info = pb.Response(info=pb.InfoResponse(last_block_height=9, last_block_app_hash=b"\x01\x02"))
    assert info.SerializeToString() == b"\x22\x06\x20\x09\x2a\x02\x01\x02"
    # ValidatorUpdate{pub_key=1 {ed25519=1}, power=2}
    key = bytes(32)
    upd = pb.ValidatorUpdate(pub_key=pb.PublicKey(ed25519=key), power=20)
    assert upd.SerializeToString() == b"\x0a\x22\x0a\x20" + key + b"\x10\x14"
    # Response.process_proposal = 18, status ACCEPT = 1; Response.exception = 1
    assert pb.Response(process_proposal=pb.ProcessProposalResponse(status=pb.ProcessProposalResponse.ACCEPT)
                       ).SerializeToString() == b"\x92\x01\x02\x08\x01"
    assert pb.Response(exception=pb.ExceptionResponse(error="x")).SerializeToString() == b"\x0a\x03\x0a\x01x"


# -- server ------------------------------------------------------------------------------------------------

def test_handle_request_answers_echo_flush_and_turns_errors_into_exceptions(app: CareLedgerApp) -> None:
    assert handle_request(app, pb.Request(echo=pb.EchoRequest(message="ping"))).echo.message == "ping"
    assert handle_request(app, pb.Request(flush=pb.FlushRequest())).WhichOneof("value") == "flush"
    assert handle_request(app, pb.Request()).WhichOneof("value") == "exception"
    # Commit before genesis is an application error: CometBFT gets an exception response
    res = handle_request(app, pb.Request(commit=pb.CommitRequest()))
    assert res.WhichOneof("value") == "exception" and "commit" in res.exception.error


def test_parse_address() -> None:
    assert parse_address("tcp://127.0.0.1:26658") == ("tcp", "127.0.0.1", 26658)
    assert parse_address("localhost:1") == ("tcp", "localhost", 1)
    assert parse_address("unix:///tmp/app.sock") == ("unix", "/tmp/app.sock", 0)
    for bad in ("tcp://nohost", "http://x:y", "unix://"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_server_answers_in_order_over_tcp(ready: CareLedgerApp) -> None:
    async def go() -> list[pb.Response]:
        server = AbciServer(ready)
        await server.start("tcp://127.0.0.1:0")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            for req in (pb.Request(echo=pb.EchoRequest(message="one")), pb.Request(info=pb.InfoRequest()),
                        pb.Request(query=pb.QueryRequest(path="/head")), pb.Request(flush=pb.FlushRequest())):
                writer.write(frame(req))
            await writer.drain()
            out = []
            for _ in range(4):
                body = await asyncio.wait_for(read_frame(reader), 5)
                assert body is not None
                out.append(pb.Response.FromString(body))
            writer.close()
            return out
        finally:
            await server.close()

    echo, info, query_res, flush = asyncio.run(go())
    assert echo.echo.message == "one"
    assert info.info.last_block_height == 0 and info.info.last_block_app_hash == ready.head.app_hash
    assert query_res.query.code == 0
    assert flush.WhichOneof("value") == "flush"


def check_txs_in_one_write(app: CareLedgerApp, txs: list[bytes], tmp_path: Path) -> list[int]:
    """CheckTx codes from a real server, all the requests written at once (so they are read together)."""
    async def go() -> list[int]:
        server = AbciServer(app)
        await server.start(f"unix://{tmp_path / 'abci.sock'}")
        try:
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "abci.sock"))
            writer.write(b"".join(frame(pb.Request(check_tx=pb.CheckTxRequest(tx=raw))) for raw in txs))
            await writer.drain()
            codes = [pb.Response.FromString(await asyncio.wait_for(read_frame(reader), 5) or b"").check_tx.code
                     for _ in txs]
            writer.close()
            return codes
        finally:
            await server.close()

    return asyncio.run(go())


def test_a_run_of_check_tx_read_together_gets_the_answers_each_would_get_alone(
        ready: CareLedgerApp, consortium: Consortium, tmp_path: Path) -> None:
    """The server hands the whole run to prepare_batch (one state query) and answers in order; the
    codes are those of the same requests sent one at a time to a fresh app."""
    patient = sign_tx(seeded_key("p"), consortium.chain_id, "identity.register_patient", 1, 1, {})
    txs = [enrol(consortium, 1, seeded_key("a")), b"junk", patient, enrol(consortium, 3, seeded_key("b")),
           enrol(consortium, 2, seeded_key("c")), patient, enrol(consortium, 3, seeded_key("d"))]
    seen: list[int] = []
    real_prepare = ready.prepare_batch

    def spy(requests: list[pb.Request]) -> None:
        seen.append(len(requests))
        real_prepare(requests)

    ready.prepare_batch = spy  # type: ignore[method-assign]

    batched = check_txs_in_one_write(ready, txs, tmp_path)
    alone = CareLedgerApp(tmp_path / "alone.sqlite")
    alone.init_chain(init_request(consortium))
    assert batched == [check(alone, raw) for raw in txs]
    assert batched[0] == 0 and batched[1] != 0 and batched[2] == 0 and batched[3] == Code.NONCE_OUT_OF_ORDER
    assert batched[4] == 0 and batched[6] == 0
    assert seen and max(seen) > 1  # the run reached prepare_batch together
    alone.close()


def test_a_failing_batch_hint_does_not_stop_the_answers(ready: CareLedgerApp, consortium: Consortium,
                                                          tmp_path: Path) -> None:
    txs = [enrol(consortium, 1, seeded_key("a")), enrol(consortium, 2, seeded_key("b"))]

    called: list[int] = []

    def broken(requests: list[pb.Request]) -> None:
        called.append(len(requests))
        raise RuntimeError("hint failed")

    ready.prepare_batch = broken  # type: ignore[method-assign]

    assert check_txs_in_one_write(ready, txs, tmp_path) == [0, 0]
    assert called == [2]  # the hint ran, failed, and the requests were still answered


def test_event_attributes_are_strings_or_canonical_json() -> None:
    assert attribute_text("x") == "x" and attribute_text(7) == "7" and attribute_text(-3) == "-3"
    assert attribute_text(["a", 1]) == '["a",1]' and attribute_text(True) == "true"
    assert attribute_text({"b": 1, "a": 2}) == '{"a":2,"b":1}'
    with pytest.raises(LedgerError):
        attribute_text(2**60)  # outside the profile's safe integers, as the encoder says
    result = pb.ExecTxResult()
    add_event(result.events, "careledger_tx", {"type": "identity.register_patient", "code": 0, "signer": "ab"})
    assert result.events[0].type == "careledger_tx"
    assert [(a.key, a.value, a.index) for a in result.events[0].attributes] == [
        ("code", "0", True), ("signer", "ab", True), ("type", "identity.register_patient", True)]


def test_server_drops_a_connection_that_sends_garbage(ready: CareLedgerApp, tmp_path: Path) -> None:
    async def go() -> tuple[bytes, bytes | None]:
        server = AbciServer(ready, max_message_bytes=1024)
        sock = tmp_path / "abci.sock"
        await server.start(f"unix://{sock}")
        try:
            reader, writer = await asyncio.open_unix_connection(str(sock))
            writer.write(frame(pb.Request(echo=pb.EchoRequest(message="ok"))) + encode_uvarint(4096))
            await writer.drain()
            first = await asyncio.wait_for(read_frame(reader), 5)
            after = await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
            writer.close()
            return first or b"", after
        finally:
            await server.close()

    first, after = asyncio.run(go())
    assert pb.Response.FromString(first).echo.message == "ok"
    assert after == b""


# -- Info and InitChain -------------------------------------------------------------------------------------

def test_before_genesis_info_reports_height_zero_and_check_tx_is_unavailable(app: CareLedgerApp,
                                                                              consortium: Consortium) -> None:
    info = app.info(pb.InfoRequest(version="0.38.26"))
    assert (info.last_block_height, info.last_block_app_hash) == (0, b"")
    assert info.app_version == 1 and info.version.startswith("careledger/")
    assert check(app, enrol(consortium, 1, seeded_key("m"))) == Code.NODE_UNAVAILABLE


def test_init_chain_returns_genesis_validators_and_app_hash(app: CareLedgerApp, consortium: Consortium) -> None:
    res = app.init_chain(init_request(consortium))
    genesis = consortium.genesis
    assert res.app_hash == genesis_app_hash(genesis, genesis_state(genesis))
    assert [(v.pub_key.ed25519, v.power) for v in res.validators] == [(consortium.validator.public_key, 10)]
    info = app.info(pb.InfoRequest())
    assert (info.last_block_height, info.last_block_app_hash) == (0, res.app_hash)


def test_init_chain_is_idempotent_even_across_restarts(tmp_path: Path, consortium: Consortium) -> None:
    db = tmp_path / "ledger.sqlite"
    first = CareLedgerApp(db)
    a = first.init_chain(init_request(consortium))
    b = first.init_chain(init_request(consortium))
    first.close()
    again = CareLedgerApp(db)  # a crash after InitChain but before the first commit repeats InitChain
    c = again.init_chain(init_request(consortium))
    assert a == b == c
    assert again.info(pb.InfoRequest()).last_block_height == 0
    again.close()


def test_init_chain_refuses_other_genesis_chain_id_and_bad_app_state(ready: CareLedgerApp, tmp_path: Path,
                                                                     consortium: Consortium) -> None:
    other = make_consortium(label="other/")
    with pytest.raises(GenesisError, match="different genesis"):
        ready.init_chain(init_request(other))
    fresh = CareLedgerApp(tmp_path / "fresh.sqlite")
    with pytest.raises(GenesisError, match="chain_id"):
        fresh.init_chain(init_request(consortium, chain_id="some-other-chain"))
    with pytest.raises(GenesisError):
        fresh.init_chain(pb.InitChainRequest(chain_id=consortium.chain_id, app_state_bytes=b"{not json"))
    with pytest.raises(GenesisError):
        fresh.init_chain(pb.InitChainRequest(chain_id=consortium.chain_id, app_state_bytes=b'{"chain_id": 1}'))
    assert fresh.info(pb.InfoRequest()).last_block_height == 0 and fresh.store is None  # nothing written
    fresh.close()


def test_init_chain_after_the_first_block_is_refused(ready: CareLedgerApp, consortium: Consortium) -> None:
    run_block(ready, [])
    with pytest.raises(LedgerError, match="ahead of CometBFT"):
        ready.init_chain(init_request(consortium))


# -- CheckTx ------------------------------------------------------------------------------------------------

def test_check_tx_codes_for_bad_inputs(ready: CareLedgerApp, consortium: Consortium) -> None:
    admin = consortium.admin("hospital")
    good = enrol(consortium, 1, seeded_key("m1"))
    doc = codec.decode(good)
    flipped = codec.encode({**doc, "sig": ("0" if doc["sig"][0] != "0" else "1") + doc["sig"][1:]})
    stranger = seeded_key("stranger")
    member = seeded_key("member")
    cases = {
        "garbage": (b"\xff\x00not json", Code.MALFORMED_ENCODING),
        "non-canonical": (good.replace(b'{"body":', b'{ "body":', 1), Code.NON_CANONICAL_ENCODING),
        "wrong chain": (sign_tx(admin, "another-chain", "identity.enrol_member", 1, 1,
                                {"member": member.public_hex, "org": "hospital", "roles": ["nurse"]}),
                        Code.WRONG_CHAIN),
        "bad signature": (flipped, Code.BAD_SIGNATURE),
        "unknown type": (sign_tx(admin, consortium.chain_id, "identity.fly", 1, 1, {}), Code.UNKNOWN_TX_TYPE),
        "bad payload": (sign_tx(admin, consortium.chain_id, "identity.enrol_member", 1, 1, {"org": "hospital"}),
                        Code.INVALID_PAYLOAD),
        "unknown signer": (sign_tx(stranger, consortium.chain_id, "identity.enrol_member", 1, 1,
                                   {"member": member.public_hex, "org": "hospital", "roles": ["nurse"]}),
                           Code.UNKNOWN_SIGNER),
        "nonce gap": (enrol(consortium, 2, member), Code.NONCE_OUT_OF_ORDER),
        "not admin of org": (sign_tx(admin, consortium.chain_id, "identity.enrol_member", 1, 1,
                                     {"member": member.public_hex, "org": "clinic", "roles": ["nurse"]}),
                             Code.UNAUTHORISED),
        "oversized": (b"x" * (consortium.genesis.params.max_tx_bytes + 1), Code.OVERSIZED),
    }
    for name, (raw, code) in cases.items():
        res = ready.check_tx(pb.CheckTxRequest(tx=raw))
        assert res.code == int(code), f"{name}: got {res.code} ({res.log}), want {int(code)}"
        assert res.codespace == "careledger" and res.log
    assert ready.info(pb.InfoRequest()).last_block_height == 0  # nothing written


def test_check_tx_tracks_pending_nonces_until_commit(ready: CareLedgerApp, consortium: Consortium) -> None:
    t1, t2, t3 = (enrol(consortium, n, seeded_key(f"m{n}")) for n in (1, 2, 3))
    admitted = ready.check_tx(pb.CheckTxRequest(tx=t1))
    assert (admitted.code, admitted.data) == (0, hashlib.sha256(t1).digest())
    assert check(ready, t1) == Code.NONCE_REPLAYED  # CometBFT's cache would normally catch this first
    assert check(ready, enrol(consortium, 1, seeded_key("other"))) == Code.NONCE_REPLAYED  # pending nonce 1
    assert check(ready, t3) == Code.NONCE_OUT_OF_ORDER
    assert check(ready, t2) == 0
    run_block(ready, [t1])  # Commit resets the pending nonces: CometBFT rechecks what is left
    assert check(ready, t1) == Code.DUPLICATE_TX
    assert ready.check_tx(pb.CheckTxRequest(tx=t2, type=pb.CheckTxRequest.RECHECK)).code == 0
    assert check(ready, t3) == 0


# -- proposals -----------------------------------------------------------------------------------------------

def test_process_proposal_rejects_a_block_with_an_invalid_tx(ready: CareLedgerApp, consortium: Consortium) -> None:
    t1, t2 = enrol(consortium, 1, seeded_key("m1")), enrol(consortium, 2, seeded_key("m2"))
    bad_nonce = enrol(consortium, 5, seeded_key("m5"))
    unsigned_doc = codec.decode(t2)
    tampered = codec.encode({**unsigned_doc, "body": {**unsigned_doc["body"], "nonce": 3}})
    before = ready.info(pb.InfoRequest())
    accept, reject = pb.ProcessProposalResponse.ACCEPT, pb.ProcessProposalResponse.REJECT
    assert process(ready, [t1, t2]) == accept
    assert process(ready, []) == accept
    assert process(ready, [t1, bad_nonce]) == reject
    assert process(ready, [t1, tampered]) == reject
    assert process(ready, [t2, t1]) == reject  # order matters: nonce 2 before 1
    assert process(ready, [t1, t1]) == reject  # a duplicate replays nonce 1
    assert process(ready, [b"junk"]) == reject
    assert process(ready, [t1, bad_nonce]) == reject  # deterministic: the same answer again
    assert ready.info(pb.InfoRequest()) == before  # proposals never touch committed state


def test_process_proposal_rejects_more_than_max_block_txs(tmp_path: Path) -> None:
    small = make_consortium(("hospital",), params={"max_block_txs": 2})
    a = CareLedgerApp(tmp_path / "l.sqlite")
    a.init_chain(init_request(small))
    txs = [enrol(small, n, seeded_key(f"m{n}")) for n in (1, 2, 3)]
    assert process(a, txs[:2]) == pb.ProcessProposalResponse.ACCEPT
    assert process(a, txs) == pb.ProcessProposalResponse.REJECT
    prepared = a.prepare_proposal(pb.PrepareProposalRequest(txs=txs, max_tx_bytes=10**6, height=1,
                                                            time=ts(block_time(1)), proposer_address=PROPOSER))
    assert list(prepared.txs) == txs[:2]
    a.close()


def test_prepare_proposal_drops_invalid_and_respects_max_tx_bytes(ready: CareLedgerApp,
                                                                  consortium: Consortium) -> None:
    t1, t2, t3 = (enrol(consortium, n, seeded_key(f"m{n}")) for n in (1, 2, 3))
    stranger = sign_tx(seeded_key("s"), consortium.chain_id, "identity.enrol_member", 1, 1,
                       {"member": seeded_key("x").public_hex, "org": "hospital", "roles": ["nurse"]})
    patient = sign_tx(seeded_key("patient"), consortium.chain_id, "identity.register_patient", 1, 1, {})

    def prepare(txs: list[bytes], max_bytes: int = 10**6) -> list[bytes]:
        res = ready.prepare_proposal(pb.PrepareProposalRequest(txs=txs, max_tx_bytes=max_bytes, height=1,
                                                               time=ts(block_time(1)), proposer_address=PROPOSER))
        return list(res.txs)

    assert prepare([t1, b"junk", stranger, t3, t2, patient]) == [t1, t2, patient]  # t3 before t2: out of order
    budget = tx_proto_size(t1) + tx_proto_size(t2)
    for raw in (t1, b"", b"x" * 127, b"x" * 128, b"x" * 16_384):  # the size CometBFT's protobuf code gives
        assert tx_proto_size(raw) == pb.PrepareProposalResponse(txs=[raw]).ByteSize()
    assert prepare([t1, t2, t3], budget) == [t1, t2]
    assert prepare([t1, t2, t3], budget - 1) == [t1]  # t2 no longer fits, and t3 cannot go without it
    # coherence: whatever PrepareProposal returns, ProcessProposal accepts
    assert process(ready, prepare([t1, b"junk", t2, stranger, t3, patient])) == pb.ProcessProposalResponse.ACCEPT
    assert ready.head.height == 0


def test_vote_extensions_are_empty_and_no_snapshot_before_one_is_taken(ready: CareLedgerApp) -> None:
    assert ready.extend_vote(pb.ExtendVoteRequest(height=1)).vote_extension == b""
    ok = ready.verify_vote_extension(pb.VerifyVoteExtensionRequest(height=1))
    bad = ready.verify_vote_extension(pb.VerifyVoteExtensionRequest(height=1, vote_extension=b"x"))
    assert ok.status == pb.VerifyVoteExtensionResponse.ACCEPT
    assert bad.status == pb.VerifyVoteExtensionResponse.REJECT
    # no snapshot yet (see test_statesync.py), and nothing to apply without an accepted offer
    assert list(ready.list_snapshots(pb.ListSnapshotsRequest()).snapshots) == []
    assert ready.offer_snapshot(pb.OfferSnapshotRequest()).result == pb.OfferSnapshotResponse.REJECT_FORMAT
    assert ready.load_snapshot_chunk(pb.LoadSnapshotChunkRequest()).chunk == b""
    assert ready.apply_snapshot_chunk(pb.ApplySnapshotChunkRequest()).result == pb.ApplySnapshotChunkResponse.ABORT


# -- FinalizeBlock and Commit ---------------------------------------------------------------------------------

def test_finalize_and_commit_advance_info_and_persist(ready: CareLedgerApp, consortium: Consortium,
                                                      tmp_path: Path) -> None:
    m1, m2 = seeded_key("m1"), seeded_key("m2")
    res = finalize(ready, [enrol(consortium, 1, m1), enrol(consortium, 2, m2), enrol(consortium, 3, m1)])
    assert [r.code for r in res.tx_results] == [0, 0, Code.KEY_IN_USE]  # the third is included, and fails
    assert res.tx_results[2].log and res.tx_results[2].codespace == "careledger"
    assert ready.info(pb.InfoRequest()).last_block_height == 0  # FinalizeBlock persists nothing
    ready.commit(pb.CommitRequest())
    info = ready.info(pb.InfoRequest())
    assert (info.last_block_height, info.last_block_app_hash) == (1, res.app_hash)

    store = Store(tmp_path / "ledger.sqlite")
    header, _, signature = store.block(1)
    assert signature == b"" and header.proposer == PROPOSER.hex() and header.time_ms == block_time(1)
    assert header.app_hash == res.app_hash.hex() and header.tx_count == 3
    assert header.prev_hash == consortium.genesis.hash.hex()
    assert store.check_integrity().height == 1
    store.close()

    events = {e.type: {a.key: a.value for a in e.attributes} for e in res.tx_results[0].events}
    assert events["member_enrolled"]["member"] == m1.public_hex
    assert events["careledger_tx"] == {"code": "0", "signer": consortium.admin("hospital").public_hex,
                                       "type": "identity.enrol_member"}
    res2 = run_block(ready, [])  # an empty CometBFT block is not a ledger block: the app hash stays
    assert ready.info(pb.InfoRequest()).last_block_height == 2
    assert res2.app_hash == res.app_hash and ready.head.height == 1
    res3 = run_block(ready, [enrol(consortium, 4, seeded_key("m3"))])  # CometBFT height 3 is ledger height 2
    assert ready.info(pb.InfoRequest()).last_block_height == 3 and ready.head.height == 2
    assert res3.app_hash not in (b"", res.app_hash) and ready.head.app_hash == res3.app_hash
    assert json.loads(query(ready, "/head").value)["cometbft_height"] == 3


def test_abci_block_equals_block_execution_directly(ready: CareLedgerApp, consortium: Consortium) -> None:
    m1, m2, patient = seeded_key("m1"), seeded_key("m2"), seeded_key("patient")
    txs = [enrol(consortium, 1, m1), enrol(consortium, 2, m2), enrol(consortium, 3, m1),
           sign_tx(patient, consortium.chain_id, "identity.register_patient", 1, 1, {})]
    chain = consortium.chain()
    state = MemoryState()
    changes = genesis_state(chain.genesis)
    state.apply(changes)
    env = BlockEnv(chain.chain_id, 1, block_time(1), PROPOSER.hex())
    run = BlockExecution(chain, state, env, genesis_app_hash(chain.genesis, changes))
    for raw in txs:
        run.add(check_stateless(chain, raw))
    direct = run.finish()

    res = run_block(ready, txs)
    assert res.app_hash == direct.app_hash
    assert [r.data for r in res.tx_results] == [r.encode() for r in direct.receipts]
    assert [Receipt.from_json(codec.decode(r.data)) for r in res.tx_results] == direct.receipts
    assert [r.code for r in res.tx_results] == [r.code for r in direct.receipts] == [0, 0, Code.KEY_IN_USE, 0]
    assert ready.head.app_hash == direct.app_hash


def test_validator_updates_are_deduplicated_and_sorted(tmp_path: Path) -> None:
    solo = make_consortium(("hospital",))
    a = CareLedgerApp(tmp_path / "l.sqlite")
    a.init_chain(init_request(solo))
    action = {"kind": "set_validator", "org": "hospital", "pub_key": solo.validator.public_hex, "power": 20}
    newcomer = seeded_key("validator/1")
    propose = sign_tx(solo.admin("hospital"), solo.chain_id, "governance.propose", 1, 1,
                      {"action": action, "title": "double the power"})
    add = sign_tx(solo.admin("hospital"), solo.chain_id, "governance.propose", 1, 2,
                  {"action": {**action, "pub_key": newcomer.public_hex, "power": 5}, "title": "a second validator"})
    res = run_block(a, [propose, add])
    assert [r.code for r in res.tx_results] == [0, 0]
    expected = sorted([(solo.validator.public_key, 20), (newcomer.public_key, 5)])
    assert [(u.pub_key.ed25519, u.power) for u in res.validator_updates] == expected
    assert [(v.pub_key.ed25519, v.power) for v in a.validator_set(a.store)] == expected  # type: ignore[arg-type]
    a.close()
    updates = to_validator_updates([{"pub_key": "bb" * 32, "power": 1}, {"pub_key": "aa" * 32, "power": 2},
                                    {"pub_key": "bb" * 32, "power": 0}])
    assert [(u.pub_key.ed25519.hex(), u.power) for u in updates] == [("aa" * 32, 2), ("bb" * 32, 0)]


def test_decided_block_with_invalid_tx_executes_the_rest(ready: CareLedgerApp, consortium: Consortium) -> None:
    t1, t2 = enrol(consortium, 1, seeded_key("m1")), enrol(consortium, 2, seeded_key("m2"))
    res = run_block(ready, [t1, b"junk", enrol(consortium, 7, seeded_key("m7")), t2])
    assert [r.code for r in res.tx_results] == [0, Code.MALFORMED_ENCODING, Code.NONCE_OUT_OF_ORDER, 0]
    assert res.tx_results[1].data == b"" and "not executed" in res.tx_results[1].log
    assert [r.index for r in (Receipt.from_json(codec.decode(x.data)) for x in (res.tx_results[0], res.tx_results[3]))
            ] == [0, 1]
    assert query(ready, f"/tx/{hashlib.sha256(t2).hexdigest()}").code == 0


def test_finalize_at_the_wrong_height_and_commit_without_finalize_fail(ready: CareLedgerApp,
                                                                       consortium: Consortium) -> None:
    with pytest.raises(LedgerError, match="height 3"):
        finalize(ready, [], height=3)
    with pytest.raises(LedgerError, match="Commit without"):
        ready.commit(pb.CommitRequest())
    res = handle_request(ready, pb.Request(finalize_block=pb.FinalizeBlockRequest(height=5, time=ts(1))))
    assert res.WhichOneof("value") == "exception"
    assert ready.info(pb.InfoRequest()).last_block_height == 0


def test_crash_before_commit_loses_the_block_and_replay_gives_the_same_hash(tmp_path: Path,
                                                                           consortium: Consortium) -> None:
    db = tmp_path / "ledger.sqlite"
    a = CareLedgerApp(db)
    a.init_chain(init_request(consortium))
    run_block(a, [enrol(consortium, 1, seeded_key("m1"))])
    block2 = [enrol(consortium, 2, seeded_key("m2"))]
    lost = finalize(a, block2)
    a.close()  # "crash": FinalizeBlock ran, Commit did not

    b = CareLedgerApp(db)
    info = b.info(pb.InfoRequest())
    assert info.last_block_height == 1  # never ahead of CometBFT
    replayed = run_block(b, block2)  # CometBFT replays the block
    assert replayed.app_hash == lost.app_hash
    assert b.info(pb.InfoRequest()).last_block_app_hash == lost.app_hash
    b.close()


# -- Query ------------------------------------------------------------------------------------------------

def test_query_reads_committed_state(ready: CareLedgerApp, consortium: Consortium) -> None:
    m1 = seeded_key("m1")
    t1 = enrol(consortium, 1, m1)
    run_block(ready, [t1])
    head = json.loads(query(ready, "/head").value)
    assert head["height"] == 1 and head["app_hash"] == ready.head.app_hash.hex()
    member = query(ready, f"/state/identity/key/{m1.public_hex}")
    assert member.code == 0 and member.height == 1 and json.loads(member.value)["kind"] == "member"
    nonce = query(ready, f"/state/nonce/{consortium.admin('hospital').public_hex}")
    assert nonce.value == b"1"
    tx = json.loads(query(ready, f"/tx/{hashlib.sha256(t1).hexdigest()}").value)
    assert (tx["height"], tx["index"], tx["receipt"]["code"]) == (1, 0, 0)
    assert codec.encode(tx["tx"]) == t1
    header = json.loads(query(ready, "/block/1").value)
    assert header["app_hash"] == ready.head.app_hash.hex()
    finalize(ready, [enrol(consortium, 1, seeded_key("m2"), org="clinic", roles=["nurse"])])  # not committed
    assert query(ready, f"/state/identity/key/{seeded_key('m2').public_hex}").code == Code.NOT_FOUND


def test_query_errors_have_stable_codes(ready: CareLedgerApp) -> None:
    assert query(ready, "/state/no/such/key").code == Code.NOT_FOUND
    assert query(ready, "/tx/" + "00" * 32).code == Code.NOT_FOUND
    assert query(ready, "/tx/xyz").code == Code.BAD_REQUEST
    assert query(ready, "/block/9").code == Code.NOT_FOUND
    assert query(ready, "/block/-1").code == Code.BAD_REQUEST
    assert query(ready, "/nowhere").code == Code.BAD_REQUEST
    assert query(ready, "/head", height=5).code == Code.BAD_REQUEST


# -- ledger heights, crash points of the progress record, and the execution caches ---------------------------

def test_crash_between_progress_record_and_ledger_commit_recovers_to_the_previous_height(
        tmp_path: Path, consortium: Consortium) -> None:
    from careledger.abci.progress import ProgressRecord

    db = tmp_path / "ledger.sqlite"
    a = CareLedgerApp(db)
    a.init_chain(init_request(consortium))
    run_block(a, [])  # CometBFT 1: empty
    run_block(a, [enrol(consortium, 1, seeded_key("m1"))])  # CometBFT 2 = ledger 1
    hash_at_2 = a.head.app_hash
    a.close()
    record = ProgressRecord(db)
    record.write(3, 2)  # the record of block 3 was written, then the process died before the ledger commit
    record.close()
    b = CareLedgerApp(db)
    info = b.info(pb.InfoRequest())
    assert (info.last_block_height, info.last_block_app_hash, b.head.height) == (2, hash_at_2, 1)
    replayed = run_block(b, [enrol(consortium, 2, seeded_key("m2"))])  # CometBFT replays block 3
    assert (b.cometbft_height, b.head.height) == (3, 2) and replayed.app_hash == b.head.app_hash
    b.close()
    record = ProgressRecord(db)
    record.write(9, 7)  # a record the ledger cannot be at: refuse to start
    record.close()
    with pytest.raises(LedgerError, match="progress record"):
        CareLedgerApp(db)


def test_finalize_reuses_process_proposal_and_never_reverifies_a_checked_tx(
        ready: CareLedgerApp, consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> None:
    import careledger.abci.app as app_module

    txs = [enrol(consortium, 1, seeded_key("m1")), enrol(consortium, 2, seeded_key("m2"))]
    assert [check(ready, t) for t in txs] == [0, 0]
    calls: list[bytes] = []
    real = app_module.check_stateless  # type: ignore[attr-defined]

    def counted(chain: Any, raw: bytes) -> Any:
        calls.append(raw)
        return real(chain, raw)

    monkeypatch.setattr(app_module, "check_stateless", counted)
    height = ready.cometbft_height + 1
    block_hash = hashlib.sha256(b"proposal").digest()
    accepted = ready.process_proposal(pb.ProcessProposalRequest(
        txs=txs, height=height, time=ts(block_time(height)), proposer_address=PROPOSER, hash=block_hash))
    assert accepted.status == pb.ProcessProposalResponse.ACCEPT
    res = ready.finalize_block(pb.FinalizeBlockRequest(txs=txs, height=height, time=ts(block_time(height)),
                                                       hash=block_hash, proposer_address=PROPOSER))
    ready.commit(pb.CommitRequest())
    assert calls == []  # both were checked once, in CheckTx
    assert [r.code for r in res.tx_results] == [0, 0] and res.app_hash == ready.head.app_hash


def test_commit_and_evict_listeners_hear_of_receipts_and_evictions(ready: CareLedgerApp,
                                                                   consortium: Consortium) -> None:
    heard: list[tuple[int, list[str], list[int]]] = []
    evicted: list[tuple[str, int]] = []
    ready.commit_listeners.append(lambda h, ok, bad: heard.append((h, [t.hex() for t, _ in ok],
                                                                    [int(e.code) for _, e in bad])))
    ready.evict_listeners.append(lambda t, exc: evicted.append((t.hex(), int(exc.code))))
    t1 = enrol(consortium, 1, seeded_key("m1"))
    assert check(ready, t1) == 0 and ready.is_pending(hashlib.sha256(t1).digest())
    assert ready.next_nonce(consortium.admin("hospital").public_hex) == 2
    run_block(ready, [t1, b"junk"])
    assert heard == [(1, [hashlib.sha256(t1).hexdigest()], [int(Code.MALFORMED_ENCODING)])]
    assert not ready.is_pending(hashlib.sha256(t1).digest())
    # a transaction left in the mempool that no longer passes its re-check is evicted
    assert ready.check_tx(pb.CheckTxRequest(tx=t1, type=pb.CheckTxRequest.RECHECK)).code == Code.DUPLICATE_TX
    assert evicted == [(hashlib.sha256(t1).hexdigest(), int(Code.DUPLICATE_TX))]


def test_recheck_catches_a_nonce_a_block_used_and_skips_the_signature(ready: CareLedgerApp, consortium: Consortium,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import careledger.abci.app as app_module

    mine, theirs = enrol(consortium, 1, seeded_key("m1")), enrol(consortium, 1, seeded_key("m2"))
    later = enrol(consortium, 2, seeded_key("m3"))
    assert check(ready, mine) == 0 and check(ready, later) == 0  # in this node's mempool: nonces 1, 2
    run_block(ready, [theirs])  # another node's transaction with nonce 1 committed first
    monkeypatch.setattr(app_module, "check_stateless", lambda *a: pytest.fail("re-verified a signature"))
    recheck = pb.CheckTxRequest.RECHECK
    assert ready.check_tx(pb.CheckTxRequest(tx=mine, type=recheck)).code == Code.NONCE_REPLAYED
    assert ready.check_tx(pb.CheckTxRequest(tx=later, type=recheck)).code == 0  # nonce 2 is next now
    assert ready.next_nonce(consortium.admin("hospital").public_hex) == 3


def test_an_engine_whose_cometbft_does_not_answer_says_so(app: Any, consortium: Consortium) -> None:
    """Issue 16: with its CometBFT process gone, a node's /v1/status must not look healthy."""
    from careledger.abci.engine import CometbftEngine
    from support.load import free_port

    app.init_chain(init_request(consortium))
    engine = CometbftEngine(app, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        health = engine.health()
        assert (health["ready"], health["engine"]) == (False, "halted"), health
        assert health["halt"]["kind"] == "cometbft_unreachable" and "does not answer" in health["halt"]["reason"]
        assert engine.status()["health"] == health
    finally:
        engine.close()
