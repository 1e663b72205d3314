"""``careledger demo``: a fresh consortium, the embedded node, the story, then ``verify``."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from careledger.cli.common import console, emit, err_console, expand, fail, json_mode, say

CONSOLE_URL = "http://127.0.0.1:8700/ui/"
"""Where the console answers once the demo home is served with ``--api 127.0.0.1:8700``."""


def demo(
    home: Annotated[Path | None, typer.Option(help="Create the demo home here (default: a new temp dir).")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Keep the node and API running after the story.")] = False,
    api: Annotated[str, typer.Option(help="HOST:PORT for the API (port 0 picks a free one).")] = "127.0.0.1:0",
    engine: Annotated[str, typer.Option(help="solo (embedded node) or cometbft (a local network of "
                                             "CometBFT validators).")] = "solo",
    validators: Annotated[int, typer.Option(help="cometbft: validator nodes.")] = 4,
) -> None:
    """Create a demo consortium, run the embedded node, walk the story, verify the ledger, exit 0."""
    if engine == "cometbft":
        _demo_cometbft(home, validators, serve)
        return
    if engine != "solo":
        fail(f"engine {engine!r} is not available")
    from careledger.api.server import serve_in_thread
    from careledger.client import Client
    from careledger.demo.console_keys import write_console_keys
    from careledger.demo.consortium import create_consortium
    from careledger.demo.story import DemoFailed, banner, run_story
    from careledger.node.verify import verify_file

    path = expand(home) if home else Path(tempfile.mkdtemp(prefix="careledger-demo-")) / "home"
    if path.exists() and any(path.iterdir()):
        fail(f"{path} is not empty; give a new directory")
    if path.exists():
        shutil.rmtree(path)
    out = err_console if json_mode() else console  # the story; under --json stdout carries only the summary
    consortium = create_consortium(path, int(time.time() * 1000), api=api)
    banner(out, path)
    node = consortium.home.open_node()
    node.start()
    host, port = api.rsplit(":", 1)
    server = serve_in_thread(node, host, int(port))
    base = server.url
    out.print(f"node running: solo engine, HTTP API at {base} (OpenAPI: {base}/openapi.json), "
              f"web console at {base}/ui/")
    try:
        story = run_story(Client(base), consortium, out)
    except DemoFailed as exc:
        server.stop()
        node.close()
        fail(f"demo step failed: {exc}")
    if serve:
        out.print(f"\n[bold green]serving[/] at {base} — Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    server.stop()
    node.close()
    keys_dir = path / "console-keys"
    write_console_keys(story.people, story.consortium.admins, keys_dir)
    out.print()
    out.rule("[bold cyan]careledger verify")
    report = verify_file(consortium.home.db_path)
    if not report.ok:
        fail(f"verify found damage at height {report.bad_height}: {report.problem}")

    def human() -> None:
        say(f"[green]ledger intact[/]: {report.blocks} blocks, {report.txs} transactions replayed from "
            f"genesis; receipts, Merkle roots, signatures and app hash all match.")
        say(f"\nThe demo home is kept at {path} — try `careledger verify --home {path}`.")
        say(f"\n[bold]Web console[/]: serve the demo home with `careledger node start --home {path} --api "
            f"127.0.0.1:8700`, then open {CONSOLE_URL} in Chromium (localhost: WebCrypto works without HTTPS). "
            f"Load a role's key file from {keys_dir} (patient, clinician, pharmacist, regulator, manufacturer, "
            "claims-officer, researcher, trial-sponsor, operator) in its Keys view.")

    emit({"engine": "solo", "home": str(path), "api": base, "console": CONSOLE_URL, "console_keys": str(keys_dir),
          "verify": report.to_json()}, human)


def _demo_cometbft(home: Path | None, validators: int, serve: bool) -> None:
    """The story on a local network of CometBFT validators (careledger.demo.cometbft)."""
    from careledger.demo.cometbft import run_demo
    from careledger.demo.story import DemoFailed

    path = expand(home) if home else Path(tempfile.mkdtemp(prefix="careledger-demo-")) / "net"
    if path.exists() and any(path.iterdir()):
        fail(f"{path} is not empty; give a new directory")
    out = err_console if json_mode() else console
    try:
        run_demo(path, out, validators, keep_running=serve)
    except (DemoFailed, RuntimeError, AssertionError) as exc:
        fail(f"demo failed: {exc} (logs under {path}/node*/logs)")
    if serve:
        out.print(f"\n[bold green]network running[/] — `careledger net status --home {path}`, "
                  f"`careledger net stop --home {path}`")
    emit({"engine": "cometbft", "home": str(path), "validators": validators},
         lambda: say(f"\nThe network is kept at {path} — try `careledger verify --home {path}/node0/careledger`."))
