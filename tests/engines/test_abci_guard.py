"""The ABCI connection belongs to CometBFT alone: the server's transport and connection rules, in process.

The fault behind these tests (issue 16): a second local client on a validator's ABCI TCP port sent
well-formed FinalizeBlock and Commit; the app committed a height CometBFT never decided, CometBFT
halted and the validator could not restart. Here a real :class:`AbciServer` over a real ledger is
driven by clients that open connections as CometBFT does (query, snapshot, mempool, consensus) and
by an intruder; ``test_net_guard`` replays the attack on a real validator.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from careledger.abci import abci_pb2 as pb
from careledger.abci.app import CareLedgerApp
from careledger.abci.cometbft import validator_address
from careledger.abci.server import MAX_CONNECTIONS, AbciServer, check_listen_address, is_loopback
from careledger.abci.wire import frame, read_frame
from careledger.core.tx import sign_tx
from support import GENESIS_TIME_MS, Consortium, seeded_key

PROPOSER = validator_address(seeded_key("validator/0").public_key)


def init_request(consortium: Consortium) -> pb.Request:
    import json

    return pb.Request(init_chain=pb.InitChainRequest(
        time=Timestamp(seconds=GENESIS_TIME_MS // 1000), chain_id=consortium.chain_id,
        app_state_bytes=json.dumps(consortium.doc).encode(), initial_height=1))


def finalize_request(height: int, txs: list[bytes]) -> pb.Request:
    ms = GENESIS_TIME_MS + height * 1000
    return pb.Request(finalize_block=pb.FinalizeBlockRequest(
        txs=txs, height=height, time=Timestamp(seconds=ms // 1000), proposer_address=PROPOSER,
        hash=hashlib.sha256(b"block%d" % height).digest()))


def commit_request() -> pb.Request:
    return pb.Request(commit=pb.CommitRequest())


def info_request() -> pb.Request:
    return pb.Request(info=pb.InfoRequest())


def patient_tx(consortium: Consortium, name: str) -> bytes:
    return sign_tx(seeded_key(name), consortium.chain_id, "identity.register_patient", 1, 1, {})


class Peer:
    """One client connection: send requests, read their responses (None once the server closed it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, *requests: pb.Request) -> list[pb.Response | None]:
        self.writer.write(b"".join(frame(r) for r in requests))
        await self.writer.drain()
        out: list[pb.Response | None] = []
        for _ in requests:
            body = await asyncio.wait_for(read_frame(self.reader), 10)
            out.append(None if body is None else pb.Response.FromString(body))
        return out

    async def closed_by_server(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), 5) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def serving(app: CareLedgerApp, sock: Path) -> AsyncIterator[tuple[AbciServer, Callable[[], Awaitable[Peer]]]]:
    server = AbciServer(app)
    await server.start(f"unix://{sock}")

    async def connect() -> Peer:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        return Peer(reader, writer)

    try:
        yield server, connect
    finally:
        await server.close()


async def cometbft_connections(connect: Callable[[], Awaitable[Peer]], consortium: Consortium,
                               init: bool = True) -> dict[str, Peer]:
    """Four connections opened and used as CometBFT v0.38 does: query (Info), snapshot
    (ListSnapshots), mempool (CheckTx) and consensus (InitChain)."""
    peers = {role: await connect() for role in ("query", "snapshot", "mempool", "consensus")}
    assert (await peers["query"].ask(info_request()))[0] is not None
    await peers["snapshot"].ask(pb.Request(list_snapshots=pb.ListSnapshotsRequest()))
    if init:
        (res,) = await peers["consensus"].ask(init_request(consortium))
        assert res is not None and res.WhichOneof("value") == "init_chain"
    (res,) = await peers["mempool"].ask(pb.Request(check_tx=pb.CheckTxRequest(tx=patient_tx(consortium, "p0"))))
    assert res is not None and res.WhichOneof("value") == "check_tx"
    return peers


@pytest.fixture
def app(tmp_path: Path) -> Any:
    a = CareLedgerApp(tmp_path / "data" / "ledger.sqlite")
    yield a
    a.close()


def short_dir() -> Path:
    """A directory whose socket paths fit a Unix socket address (108 bytes)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="abci-", dir="/tmp"))


# -- transport ------------------------------------------------------------------------------------------------

def test_unix_socket_is_owner_only_in_a_private_directory_and_appears_only_when_listening(app: CareLedgerApp) -> None:
    base = short_dir()
    sock = base / "run" / "abci.sock"

    async def go() -> None:
        async with serving(app, sock):
            mode = os.stat(sock).st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
            assert sorted(p.name for p in sock.parent.iterdir()) == ["abci.sock"]  # no temporary name left
            # a second server cannot steal a live socket
            with pytest.raises(OSError, match="already listens"):
                await AbciServer(app).start(f"unix://{sock}")
        assert not sock.exists()  # removed on close

    asyncio.run(go())
    # a stale socket file (its process died) is replaced; a file that is not a socket is not
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()
    asyncio.run(_start_and_close(app, sock))
    sock.write_text("not a socket")
    with pytest.raises(OSError, match="not a socket"):
        asyncio.run(_start_and_close(app, sock))


async def _start_and_close(app: CareLedgerApp, sock: Path) -> None:
    server = AbciServer(app)
    await server.start(f"unix://{sock}")
    await server.close()


def test_tcp_listens_on_loopback_only() -> None:
    for address in ("tcp://0.0.0.0:26658", "tcp://10.1.2.3:26658", "tcp://[::]:26658", "example.org:26658"):
        with pytest.raises(ValueError, match="loopback"):
            check_listen_address(address)
    for address in ("tcp://127.0.0.1:26658", "127.0.0.2:1", "tcp://[::1]:5", "localhost:26658"):
        assert check_listen_address(address)[0] == "tcp"
    assert is_loopback("::1") and not is_loopback("::")


# -- connections and roles ------------------------------------------------------------------------------------

def test_no_more_connections_than_cometbft_opens(app: CareLedgerApp, consortium: Consortium) -> None:
    sock = short_dir() / "abci.sock"

    async def go() -> None:
        async with serving(app, sock) as (server, connect):
            peers = await cometbft_connections(connect, consortium)
            assert server.roles == {"consensus": 4, "mempool": 3, "query": 1, "snapshot": 2}
            intruder = await connect()
            assert await intruder.closed_by_server()
            assert server.refused_connections == 1
            # CometBFT's connections are untouched
            (info,) = await peers["query"].ask(info_request())
            assert info is not None and info.WhichOneof("value") == "info"
            for peer in peers.values():
                peer.close()

    asyncio.run(go())
    assert MAX_CONNECTIONS == 4


def test_consensus_requests_are_answered_on_the_consensus_connection_only(app: CareLedgerApp,
                                                                         consortium: Consortium) -> None:
    sock = short_dir() / "abci.sock"

    async def go() -> None:
        async with serving(app, sock) as (server, connect):
            peers = await cometbft_connections(connect, consortium)
            peers["snapshot"].close()  # now one more client could connect
            await asyncio.sleep(0.05)
            intruder = await connect()
            (res,) = await intruder.ask(finalize_request(1, [patient_tx(consortium, "forged")]))
            assert res is not None and res.WhichOneof("value") == "exception"
            assert "consensus connection" in res.exception.error
            assert await intruder.closed_by_server()
            # a role's connection cannot switch roles either: CheckTx's connection sends Commit
            (res,) = await peers["mempool"].ask(commit_request())
            assert res is not None and res.WhichOneof("value") == "exception"
            assert await peers["mempool"].closed_by_server()
            assert app.cometbft_height == 0 and app.head.height == 0  # nothing was finalised or persisted
            # CometBFT's consensus connection goes on as if nothing happened
            real = finalize_request(1, [patient_tx(consortium, "real")])
            fin, com = await peers["consensus"].ask(real, commit_request())
            assert fin is not None and fin.WhichOneof("value") == "finalize_block"
            assert com is not None and com.WhichOneof("value") == "commit"
            assert app.cometbft_height == 1 and app.head.height == 1
            assert server.refused_requests == 2

    asyncio.run(go())


def test_commit_persists_only_what_the_same_consensus_connection_finalised(app: CareLedgerApp,
                                                                           consortium: Consortium) -> None:
    sock = short_dir() / "abci.sock"

    async def go() -> None:
        async with serving(app, sock) as (server, connect):
            peers = await cometbft_connections(connect, consortium)
            (fin,) = await peers["consensus"].ask(finalize_request(1, [patient_tx(consortium, "p1")]))
            assert fin is not None and fin.WhichOneof("value") == "finalize_block"
            peers["consensus"].close()  # CometBFT died between FinalizeBlock and Commit
            await asyncio.sleep(0.05)
            assert "consensus" not in server.roles
            newcomer = await connect()
            (res,) = await newcomer.ask(commit_request())
            assert res is not None and res.WhichOneof("value") == "exception"  # nothing of its own to commit
            assert app.cometbft_height == 0 and app.head.height == 0
            # the newcomer holds the consensus role now; the block is replayed and committed properly
            fin, com = await newcomer.ask(finalize_request(1, [patient_tx(consortium, "p1")]), commit_request())
            assert com is not None and com.WhichOneof("value") == "commit" and app.head.height == 1

    asyncio.run(go())


def test_finalize_for_a_height_cometbft_has_not_reached_is_refused(app: CareLedgerApp, consortium: Consortium) -> None:
    """Even on the consensus connection, only the next height can be finalised and committed."""
    sock = short_dir() / "abci.sock"

    async def go() -> None:
        async with serving(app, sock) as (_, connect):
            peers = await cometbft_connections(connect, consortium)
            (res,) = await peers["consensus"].ask(finalize_request(5, [patient_tx(consortium, "ahead")]))
            assert res is not None and res.WhichOneof("value") == "exception"
            (res,) = await peers["consensus"].ask(commit_request())
            assert res is not None and res.WhichOneof("value") == "exception"
            assert app.cometbft_height == 0 and app.head.height == 0

    asyncio.run(go())


def test_a_socket_path_of_the_longest_length_a_unix_socket_allows_is_served() -> None:
    """The socket is bound under a temporary name no longer than its own, so a path of 107 bytes (the
    most `net init` accepts) is served, as `net init` promises."""
    from careledger.abci.server import unix_listener
    from careledger.net.layout import MAX_UNIX_SOCKET_PATH

    base = Path(f"/tmp/cl-{os.getpid()}")
    name = "abci.sock"
    filler = MAX_UNIX_SOCKET_PATH - len(f"{base}/") - len(f"/{name}")
    directory = base / ("d" * filler)
    path = directory / name
    assert len(str(path).encode()) == MAX_UNIX_SOCKET_PATH
    try:
        sock = unix_listener(str(path))
        try:
            assert stat.S_ISSOCK(path.lstat().st_mode) and os.listdir(directory) == [name]
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(path))
        finally:
            sock.close()
    finally:
        for child in directory.iterdir() if directory.exists() else []:
            child.unlink()
        for d in (directory, base):
            if d.exists():
                d.rmdir()
