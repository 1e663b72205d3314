"""The ABCI socket server: asyncio, TCP or Unix socket, one request at a time for the whole app.

CometBFT opens four connections (consensus, mempool, query, snapshot) and sends on each a stream of
length-delimited ``Request`` frames (see :mod:`careledger.abci.wire`), expecting the ``Response``
frames back in the same order. A ``Flush`` request asks for everything written so far to be sent.

Each read takes whatever the socket holds and every complete frame in it is answered before the
responses go out in one write (under load CometBFT's mempool connection delivers CheckTx requests
by the hundred, and answering them one write at a time doubled the CPU both sides spend). All
connections share one event loop and the application is synchronous, so requests are handled
strictly one after another, like the global lock of CometBFT's own socket server: no two requests
ever run concurrently. An application error becomes a ``ResponseException`` (CometBFT then stops
the node, which is what must happen when, say, Commit cannot persist); a broken frame closes the
connection.

Addresses: ``tcp://127.0.0.1:26658``, ``127.0.0.1:26658`` or ``unix:///path/to/app.sock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Any, Protocol

from careledger.abci import abci_pb2 as pb
from careledger.abci.wire import DEFAULT_MAX_MESSAGE_BYTES, FrameBuffer, FrameError, frame

log = logging.getLogger("careledger.abci.server")

# Request kinds the application answers; the method name equals the oneof field name in both
# Request and Response. Echo and Flush are answered by the server itself.
APP_METHODS = frozenset({
    "info", "init_chain", "query", "check_tx", "commit", "list_snapshots", "offer_snapshot",
    "load_snapshot_chunk", "apply_snapshot_chunk", "prepare_proposal", "process_proposal", "extend_vote",
    "verify_vote_extension", "finalize_block",
})
WRITE_BUFFER_LIMIT = 1 << 20
READ_CHUNK = 1 << 20  # read whatever the socket holds, up to this much, then answer every complete frame


class Application(Protocol):
    """What the server needs: one method per ABCI request kind, taking and returning messages.

    An application may also have ``prepare_batch(requests)``, called before a run of requests read
    together is answered (a hint, e.g. to load state for many CheckTx at once)."""

    def info(self, req: pb.InfoRequest) -> pb.InfoResponse: ...
    def init_chain(self, req: pb.InitChainRequest) -> pb.InitChainResponse: ...
    def query(self, req: pb.QueryRequest) -> pb.QueryResponse: ...
    def check_tx(self, req: pb.CheckTxRequest) -> pb.CheckTxResponse: ...
    def commit(self, req: pb.CommitRequest) -> pb.CommitResponse: ...
    def prepare_proposal(self, req: pb.PrepareProposalRequest) -> pb.PrepareProposalResponse: ...
    def process_proposal(self, req: pb.ProcessProposalRequest) -> pb.ProcessProposalResponse: ...
    def finalize_block(self, req: pb.FinalizeBlockRequest) -> pb.FinalizeBlockResponse: ...
    def extend_vote(self, req: pb.ExtendVoteRequest) -> pb.ExtendVoteResponse: ...
    def verify_vote_extension(self, req: pb.VerifyVoteExtensionRequest) -> pb.VerifyVoteExtensionResponse: ...
    def list_snapshots(self, req: pb.ListSnapshotsRequest) -> pb.ListSnapshotsResponse: ...
    def offer_snapshot(self, req: pb.OfferSnapshotRequest) -> pb.OfferSnapshotResponse: ...
    def load_snapshot_chunk(self, req: pb.LoadSnapshotChunkRequest) -> pb.LoadSnapshotChunkResponse: ...
    def apply_snapshot_chunk(self, req: pb.ApplySnapshotChunkRequest) -> pb.ApplySnapshotChunkResponse: ...


def handle_request(app: Application, request: pb.Request) -> pb.Response:
    """Answer one request. Never raises: an application error becomes an exception response."""
    kind = request.WhichOneof("value")
    if kind == "echo":
        return pb.Response(echo=pb.EchoResponse(message=request.echo.message))
    if kind == "flush":
        return pb.Response(flush=pb.FlushResponse())
    if kind not in APP_METHODS:
        return pb.Response(exception=pb.ExceptionResponse(error=f"unsupported ABCI request {kind!r}"))
    method: Callable[[Any], Any] = getattr(app, kind)
    try:
        result = method(getattr(request, kind))
    except Exception as exc:
        log.exception("ABCI %s failed", kind)
        return pb.Response(exception=pb.ExceptionResponse(error=f"{kind}: {exc}"))
    response = pb.Response()
    getattr(response, kind).CopyFrom(result)
    return response


def parse_address(address: str) -> tuple[str, str, int]:
    """``("tcp", host, port)`` or ``("unix", path, 0)``; raises ValueError for anything else."""
    if address.startswith("unix://"):
        path = address[len("unix://"):]
        if not path:
            raise ValueError("unix:// address without a path")
        return "unix", path, 0
    rest = address[len("tcp://"):] if address.startswith("tcp://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or "://" in rest:
        raise ValueError(f"ABCI address {address!r} is neither tcp://host:port nor unix:///path")
    return "tcp", host or "127.0.0.1", int(port)


class AbciServer:
    """Serves one application to CometBFT's ABCI socket client."""

    def __init__(self, app: Application, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.app = app
        self.max_message_bytes = max_message_bytes
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, address: str) -> None:
        scheme, where, port = parse_address(address)
        if scheme == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)
            self._server = await asyncio.start_unix_server(self._serve_connection, path=where, limit=READ_CHUNK)
        else:
            self._server = await asyncio.start_server(self._serve_connection, host=where, port=port,
                                                      reuse_address=True, limit=READ_CHUNK)
        log.info("ABCI server listening on %s", address)

    @property
    def bound_port(self) -> int | None:
        """The TCP port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            return None
        name = self._server.sockets[0].getsockname()
        return int(name[1]) if isinstance(name, tuple) else None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._connections.values()):
            writer.close()  # the connection's reader sees the end of the stream and its loop ends
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=5)
            for task in late:
                task.cancel()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        peer = writer.get_extra_info("peername") or "unix socket"
        log.info("ABCI connection from %s", peer)
        frames = FrameBuffer(self.max_message_bytes)
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    if frames.partial:
                        raise asyncio.IncompleteReadError(frames.partial, None)
                    break
                requests = []
                for body in frames.feed(data):
                    try:
                        requests.append(pb.Request.FromString(body))
                    except Exception as exc:  # google.protobuf.message.DecodeError
                        frames.error = FrameError(f"undecodable request: {exc}")
                        break
                prepare = getattr(self.app, "prepare_batch", None)
                if prepare is not None and len(requests) > 1:
                    try:
                        prepare(requests)
                    except Exception:  # only a hint; the requests are still answered one by one
                        log.exception("prepare_batch failed")
                out = [frame(handle_request(self.app, request)) for request in requests]
                if out:  # one write for everything answered: the client reads the responses in order
                    writer.write(b"".join(out))
                    if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                        await writer.drain()
                if frames.error is not None:
                    await writer.drain()
                    raise frames.error
        except (FrameError, asyncio.IncompleteReadError) as exc:
            log.error("closing ABCI connection from %s: %s", peer, exc)
        except (ConnectionResetError, BrokenPipeError):
            log.info("ABCI connection from %s reset", peer)
        except asyncio.CancelledError:  # server shutdown; end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("ABCI connection from %s closed", peer)


async def serve(app: Application, address: str, ready: Callable[[AbciServer], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then close the server (the caller closes the app)."""
    server = AbciServer(app)
    await server.start(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        log.info("ABCI server stopping")
        await server.close()
