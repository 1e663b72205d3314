"""The ceiling of the node's HTTP stack: a bare endpoint doing one Ed25519 verification per request.

``python -m careledger.bench.ceiling --chain-id ID [--host H] [--port P] [--app fastapi|asgi]`` serves
``POST /v1/txs`` on the same server, event loop and HTTP parser as the node's API (uvicorn with the
settings of :mod:`careledger.api.server`; under ``fastapi`` the same framework and response class)
and prints ``READY http://HOST:PORT`` once it accepts connections. Each request carries a signed
transaction's wire bytes, exactly as the node receives them; the endpoint checks its one signature
(the signer's key and the signature are sliced out of the canonical bytes, no JSON is parsed) and
answers ``202 {"status": "pending"}``, or ``401`` with the node's error shape when it does not verify.
It keeps no state: what the node does beyond this (decoding, nonces, mempool, blocks, SQLite) is
what separates its rate from this one.

``asgi`` serves the same endpoint as a bare ASGI callable (no framework), the lower bound of the
framework's own cost.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from careledger.core.crypto import ED25519_SHA256
from careledger.core.errors import AuthError, Code
from careledger.core.tx import signed_body

SIGNER_FIELD = b'"signer":"'
ACCEPTED = b'{"status":"pending"}'

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def verify_wire(raw: bytes, chain_id: str) -> None:
    """Check the one signature of a transaction's canonical wire bytes, without decoding them.

    Raises AuthError(BAD_SIGNATURE) when the bytes do not have the canonical envelope's shape (a
    signer field and a 128-digit signature at the end) or the signature does not verify.
    """
    at = raw.find(SIGNER_FIELD)
    if at < 0 or len(raw) < 146 or raw[-2:] != b'"}':
        raise AuthError("not a signed transaction", Code.BAD_SIGNATURE)
    try:
        public_key = bytes.fromhex(raw[at + len(SIGNER_FIELD):at + len(SIGNER_FIELD) + 64].decode())
        signature = bytes.fromhex(raw[-130:-2].decode())
    except (ValueError, UnicodeDecodeError):
        raise AuthError("not a signed transaction", Code.BAD_SIGNATURE) from None
    ED25519_SHA256.verify(public_key, "tx", chain_id, signed_body(raw), signature)


def _refusal(exc: AuthError) -> dict[str, Any]:
    return {"error": {"code": int(exc.code), "name": exc.code.name, "message": str(exc)}}


def create_fastapi_ceiling(chain_id: str) -> FastAPI:
    """The bare endpoint as a FastAPI application (the node's framework and response class)."""
    app = FastAPI(title="CareLedger HTTP ceiling", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/txs", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            verify_wire(raw, chain_id)
        except AuthError as exc:
            return JSONResponse(_refusal(exc), status_code=401)
        return JSONResponse({"status": "pending"}, status_code=202)

    return app


def create_asgi_ceiling(chain_id: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The bare endpoint as a plain ASGI callable (no framework)."""
    import json

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to set up or tear down
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = 202, ACCEPTED
        if scope["method"] != "POST" or scope["path"] != "/v1/txs":
            status, body = 404, b'{"error":{"code":404,"name":"NOT_FOUND","message":"POST /v1/txs only"}}'
        else:
            try:
                verify_wire(b"".join(chunks), chain_id)
            except AuthError as exc:
                status, body = 401, json.dumps(_refusal(exc)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_ceiling(chain_id: str, host: str = "127.0.0.1", port: int = 0, kind: str = "fastapi") -> None:
    """Serve the ceiling until interrupted, with the node API's uvicorn settings; prints READY URL."""
    app: Any = create_fastapi_ceiling(chain_id) if kind == "fastapi" else create_asgi_ceiling(chain_id)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as BackgroundServer does
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    from careledger.api.server import http_stack  # the node's own parser and loop

    stack = http_stack()
    config = uvicorn.Config(app, host=host, port=bound, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, http=stack, loop="uvloop" if stack == "httptools" else "asyncio")
    server = uvicorn.Server(config)

    async def announce() -> None:
        print(f"READY http://{host}:{bound}", flush=True)

    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets)
        await announce()

    server.startup = startup  # type: ignore[method-assign]
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m careledger.bench.ceiling", description=__doc__.split("\n")[0])
    parser.add_argument("--chain-id", required=True, help="chain id the signatures are bound to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--app", choices=("fastapi", "asgi"), default="fastapi")
    args = parser.parse_args(argv)
    serve_ceiling(args.chain_id, args.host, args.port, args.app)
    return 0


if __name__ == "__main__":
    sys.exit(main())
