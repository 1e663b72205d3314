"""The ABCI socket server: asyncio, Unix socket (default) or loopback TCP, one request at a time for the
whole app, and only for CometBFT.

CometBFT opens four connections (query, snapshot, mempool, consensus, in that order: v0.38's
``proxy/multi_app_conn.go``) and sends on each a stream of length-delimited ``Request`` frames (see
:mod:`careledger.abci.wire`), expecting the ``Response`` frames back in the same order. A ``Flush``
request asks for everything written so far to be sent.

**The connection belongs to CometBFT alone.** Anyone who can drive the consensus requests can make
the app persist a block CometBFT never decided, after which the validator cannot restart (its app is
ahead of its block store). So:

* the default transport is a Unix socket created with owner-only permissions (0600, bound under a
  temporary name and renamed into place once it listens, in a directory made 0700 when the server
  creates it); TCP is used only when asked, and only on a loopback address;
* at most :data:`MAX_CONNECTIONS` (4, as many as CometBFT opens) are open at once; a fifth is closed
  as soon as it is accepted, so while CometBFT is connected nobody else can be;
* each connection has one *role*, claimed by its first request of a role's kind (:data:`ROLE_OF`:
  ``info``/``query`` the query role, ``check_tx`` the mempool role, the four snapshot requests the
  snapshot role, and ``init_chain``, ``prepare_proposal``, ``process_proposal``, ``extend_vote``,
  ``verify_vote_extension``, ``finalize_block`` and ``commit`` the consensus role); a role is held by
  one open connection at a time, and a request of another role on a connection, or a claim of a role
  another connection holds, is refused (an exception response, then the connection is closed). So
  consensus requests are answered on the consensus connection only;
* when the consensus connection closes, the application is told
  (``consensus_connection_lost()``): a block it finalised and did not commit is forgotten, so Commit
  persists only what the same consensus connection finalised (and, as before, only the next height).

Each read takes whatever the socket holds and every complete frame in it is answered before the
responses go out in one write (under load CometBFT's mempool connection delivers CheckTx requests
by the hundred, and answering them one write at a time doubled the CPU both sides spend). All
connections share one event loop and the application is synchronous, so requests are handled
strictly one after another, like the global lock of CometBFT's own socket server: no two requests
ever run concurrently. An application error becomes a ``ResponseException`` (CometBFT then stops
the node, which is what must happen when, say, Commit cannot persist); a broken frame closes the
connection.

Addresses: ``unix:///path/to/app.sock``, ``tcp://127.0.0.1:26658`` or ``127.0.0.1:26658``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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
ROLE_OF: dict[str, str] = {
    "info": "query", "query": "query",
    "check_tx": "mempool",
    "list_snapshots": "snapshot", "offer_snapshot": "snapshot", "load_snapshot_chunk": "snapshot",
    "apply_snapshot_chunk": "snapshot",
    "init_chain": "consensus", "prepare_proposal": "consensus", "process_proposal": "consensus",
    "extend_vote": "consensus", "verify_vote_extension": "consensus", "finalize_block": "consensus",
    "commit": "consensus",
}
"""The connection role each application request belongs to (echo and flush belong to none)."""
CONSENSUS_METHODS = frozenset(kind for kind, role in ROLE_OF.items() if role == "consensus")
MAX_CONNECTIONS = 4  # CometBFT's query, snapshot, mempool and consensus connections
SOCKET_MODE = 0o600
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen_address(address: str) -> tuple[str, str, int]:
    """:func:`parse_address`, refusing (ValueError) a TCP address that is not loopback: the ABCI port
    must never be reachable from another machine."""
    scheme, where, port = parse_address(address)
    if scheme == "tcp" and not is_loopback(where):
        raise ValueError(f"the ABCI server listens on TCP only on loopback (127.0.0.1 or ::1), not {where!r}; "
                         "prefer a Unix socket (unix:///path)")
    return scheme, where, port


def unix_listener(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` that only its owner can connect to.

    It is bound under a temporary name, made 0600 and listening, then renamed to ``path``, so the
    path never exists with looser permissions or before it accepts. A missing parent directory is
    created 0700. A stale socket file at ``path`` is replaced; a live one (another server answers
    there) is refused with OSError, and so is a path that is not a socket.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        if not stat.S_ISSOCK(target.lstat().st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            pass  # nobody listens: a stale file from a process that died
        else:
            raise OSError(f"another ABCI server already listens on {path}")
        finally:
            probe.close()
    # the temporary name is no longer than the target's (".<pid in hex>"), so any path short enough
    # for a Unix socket can be served
    temporary = target.with_name(f".{os.getpid():x}"[: max(len(target.name), 2)])
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, SOCKET_MODE)
        sock.listen(64)
        os.replace(temporary, target)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    sock.setblocking(False)
    return sock


@dataclass(eq=False)
class Connection:
    """One accepted connection and the role its first role-specific request claimed."""

    number: int
    peer: str
    writer: asyncio.StreamWriter
    role: str | None = None


class RefusedRequest(Exception):
    """A request this connection may not make (another role's, or a role another connection holds)."""


class AbciServer:
    """Serves one application to CometBFT's ABCI socket client, and to nothing else (see the module doc)."""

    def __init__(self, app: Application, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.app = app
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._unix_path: str | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._roles: dict[str, Connection] = {}
        self._numbers = itertools.count(1)
        self.refused_connections = 0
        self.refused_requests = 0

    async def start(self, address: str) -> None:
        """Listen on ``address``; raises ValueError for a non-loopback TCP address, OSError when the
        address is taken."""
        scheme, where, port = check_listen_address(address)
        if scheme == "unix":
            sock = unix_listener(where)
            self._unix_path = where
            self._server = await asyncio.start_unix_server(self._serve_connection, sock=sock, limit=READ_CHUNK)
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

    @property
    def roles(self) -> dict[str, int]:
        """Which connection (by its number) holds each claimed role."""
        return {role: conn.number for role, conn in sorted(self._roles.items())}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            if self._unix_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._unix_path)
        for conn in list(self._connections.values()):
            conn.writer.close()  # the connection's reader sees the end of the stream and its loop ends
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=5)
            for task in late:
                task.cancel()

    def _authorise(self, conn: Connection, kind: str) -> None:
        """Claim or check the role ``kind`` belongs to; raises RefusedRequest (see the module doc)."""
        role = ROLE_OF.get(kind)
        if role is None:
            return
        if conn.role is None:
            holder = self._roles.get(role)
            if holder is not None and holder is not conn:
                raise RefusedRequest(f"{kind} refused: connection {holder.number} is already the {role} connection")
            conn.role = role
            self._roles[role] = conn
            log.info("ABCI connection %d (%s) is the %s connection", conn.number, conn.peer, role)
        elif conn.role != role:
            raise RefusedRequest(f"{kind} refused: connection {conn.number} is the {conn.role} connection, and "
                                 f"{kind} belongs on the {role} connection")

    def _release(self, conn: Connection) -> None:
        if conn.role is not None and self._roles.get(conn.role) is conn:
            del self._roles[conn.role]
            if conn.role == "consensus":
                lost = getattr(self.app, "consensus_connection_lost", None)
                if lost is not None:
                    lost()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername") or "unix socket")
        if len(self._connections) >= self.max_connections:
            self.refused_connections += 1
            log.warning("refusing an ABCI connection from %s: %d connections are open already (CometBFT "
                        "opens %d)", peer, len(self._connections), self.max_connections)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        conn = Connection(next(self._numbers), peer, writer)
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = conn
        log.info("ABCI connection %d from %s", conn.number, peer)
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
                refused: RefusedRequest | None = None
                allowed = []
                for request in requests:
                    try:
                        self._authorise(conn, request.WhichOneof("value") or "")
                    except RefusedRequest as exc:
                        refused = exc
                        break
                    allowed.append(request)
                prepare = getattr(self.app, "prepare_batch", None)
                if prepare is not None and len(allowed) > 1:
                    try:
                        prepare(allowed)
                    except Exception:  # only a hint; the requests are still answered one by one
                        log.exception("prepare_batch failed")
                out = [frame(handle_request(self.app, request)) for request in allowed]
                if refused is not None:
                    out.append(frame(pb.Response(exception=pb.ExceptionResponse(error=str(refused)))))
                if out:  # one write for everything answered: the client reads the responses in order
                    writer.write(b"".join(out))
                    if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                        await writer.drain()
                if refused is not None:
                    self.refused_requests += 1
                    log.warning("closing ABCI connection %d from %s: %s", conn.number, peer, refused)
                    await writer.drain()
                    break
                if frames.error is not None:
                    await writer.drain()
                    raise frames.error
        except (FrameError, asyncio.IncompleteReadError) as exc:
            log.error("closing ABCI connection %d from %s: %s", conn.number, peer, exc)
        except (ConnectionResetError, BrokenPipeError):
            log.info("ABCI connection %d from %s reset", conn.number, peer)
        except asyncio.CancelledError:  # server shutdown; end quietly (asyncio logs a cancelled handler)
            pass
        finally:
            if task is not None:
                self._connections.pop(task, None)
            self._release(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("ABCI connection %d from %s closed", conn.number, peer)


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
