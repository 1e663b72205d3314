"""``careledger net``: a local consortium network on CometBFT (init, start, stop, status)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from careledger.cli.common import console, expand, fail, print_json

net_app = typer.Typer(help="A local consortium: one CometBFT validator node per organisation.", no_args_is_help=True)

NetHome = Annotated[Path, typer.Option("--home", help="The network's directory.")]
Nodes = Annotated[list[str] | None, typer.Option("--node", help="Only this node (repeatable), e.g. node2.")]


@net_app.command("init")
def net_init(
    home: NetHome,
    validators: Annotated[int, typer.Option(help="Organisations, one validator node each.")] = 4,
    chain_id: Annotated[str, typer.Option(help="Chain id.")] = "careledger-net",
    base_port: Annotated[int, typer.Option(help="First port; node K uses base+10K .. base+10K+3.")] = 26600,
    timeout_commit: Annotated[str, typer.Option(help="CometBFT's consensus.timeout_commit.")] = "300ms",
    empty_blocks: Annotated[bool, typer.Option(help="Make blocks even without transactions.")] = False,
) -> None:
    """Create the network: keys, one genesis, and every node's CometBFT and CareLedger home."""
    from careledger.abci.cometbft import CometbftSetupError
    from careledger.net.layout import Tuning, init_network

    try:
        spec = init_network(expand(home), validators, chain_id=chain_id, base_port=base_port,
                            tuning=Tuning(timeout_commit=timeout_commit, create_empty_blocks=empty_blocks))
    except CometbftSetupError as exc:
        fail(str(exc))
    table = Table("node", "organisation", "validator key", "RPC", "HTTP API", title=f"network {spec.chain_id}")
    for n in spec.nodes:
        table.add_row(n.name, n.org, n.validator[:16] + "…", n.rpc_url, n.api_url)
    console.print(table)
    console.print(f"next: careledger net start --home {spec.root}")


@net_app.command("start")
def net_start(home: NetHome, node: Nodes = None) -> None:
    """Start the nodes in the background (pid files in nodeK/run, logs in nodeK/logs)."""
    from careledger.net import procs

    try:
        spec = procs.load(expand(home))
        started = procs.start_nodes(spec, node)
    except procs.NetError as exc:
        fail(str(exc))
    console.print(f"started: {', '.join(started) or 'nothing (already running)'}")


@net_app.command("stop")
def net_stop(home: NetHome, node: Nodes = None) -> None:
    """Stop the nodes (SIGTERM, then SIGKILL after 15 s)."""
    from careledger.net import procs

    try:
        stopped = procs.stop_nodes(procs.load(expand(home)), node)
    except procs.NetError as exc:
        fail(str(exc))
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@net_app.command("kill")
def net_kill(home: NetHome, node: Annotated[list[str], typer.Option("--node", help="Node to SIGKILL.")]) -> None:
    """SIGKILL nodes (both processes), as a crash would."""
    from careledger.net import procs

    try:
        spec = procs.load(expand(home))
    except procs.NetError as exc:
        fail(str(exc))
    for n in spec.nodes:
        if n.name in node:
            procs.kill_node(spec, n)
    console.print(f"killed: {', '.join(node)}")


@net_app.command("status")
def net_status(
    home: NetHome,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each node's processes, CometBFT height, app hash, peers and ledger height."""
    from careledger.net import procs

    try:
        statuses = procs.network_status(procs.load(expand(home)))
    except procs.NetError as exc:
        fail(str(exc))
    if as_json:
        print_json([s.to_json() for s in statuses])
        return
    table = Table("node", "organisation", "processes", "height", "app hash", "peers", "ledger height", "note")
    for s in statuses:
        procs_text = " ".join(f"{k}:{v or '-'}" for k, v in s.running.items())
        table.add_row(s.name, s.org, procs_text, str(s.height if s.height is not None else "-"),
                      (s.app_hash or "-")[:16], str(s.peers if s.peers is not None else "-"),
                      str(s.ledger_height if s.ledger_height is not None else "-"),
                      "catching up" if s.catching_up else s.error[:40])
    console.print(table)
