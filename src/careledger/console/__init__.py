"""The web console: a browser front end for the people on the ledger, served by the node at ``/ui``.

``mount(app)`` adds two things to a node's API application:

* ``/ui/…``: the console's static files, shipped in this package (``static/``: plain ES modules,
  styles, two message catalogues and the vendored third-party files listed in
  ``static/vendor/SOURCES.md``). Nothing is fetched from elsewhere at run time and nothing is built at
  demo time. Every response carries a Content-Security-Policy that lets the page load only its own
  files and talk only to this node and the API endpoints the consortium's organisations declare on
  the ledger (their custodian gateways);
* the small read-only routes of :mod:`careledger.console.routes` the views need and the API lacked.

Keys never leave the browser: the page signs transactions and requests with WebCrypto Ed25519, keeps
the private key in IndexedDB sealed with a passphrase (the format of :mod:`careledger.keycrypt`) and
sends only signatures. The reference is ``docs/console.md``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from careledger.console import routes

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "/ui"

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")


def content_security_policy(api_origins: list[str]) -> str:
    """The console's policy: its own scripts, styles and WebAssembly only; network calls to this node
    and to the organisations' declared API origins (where their custodian gateways answer)."""
    connect = " ".join(["'self'", *sorted(set(api_origins))])
    return ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
            f"media-src 'self' blob: mediastream:; connect-src {connect}; font-src 'self'; manifest-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class ConsoleFiles(StaticFiles):
    """The console's static files with security headers; every file is revalidated (``no-cache``), so an
    upgraded node never serves a page with stale modules. The policy is rebuilt when the height changes
    (an organisation's declared API can change only with a block)."""

    _policy: tuple[int, str] | None = None

    def policy(self, app: Any) -> str:
        node = getattr(app.state, "node", None) if app is not None else None
        height = node.head.height if node is not None else -1
        if self._policy is None or self._policy[0] != height:
            origins = routes.organisation_origins(app) if node is not None else []
            self._policy = (height, content_security_policy(origins))
        return self._policy[1]

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = self.policy(scope.get("app"))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(app: FastAPI) -> None:
    """Serve the console at ``/ui`` (``/ui`` redirects to ``/ui/``) and its read-only routes on ``app``."""
    app.include_router(routes.router)

    @app.get(UI_PATH, include_in_schema=False)
    def _ui_root() -> Any:
        return RedirectResponse(UI_PATH + "/", status_code=308)

    app.mount(UI_PATH, ConsoleFiles(directory=STATIC_DIR, html=True), name="console")


__all__ = ["STATIC_DIR", "UI_PATH", "content_security_policy", "mount"]
