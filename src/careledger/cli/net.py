"""``careledger net``: a local consortium network on CometBFT (init, start, stop, status)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from careledger.cli.common import emit, expand, note, print_table, progress, say

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
    from careledger.net.layout import Tuning, init_network

    spec = init_network(expand(home), validators, chain_id=chain_id, base_port=base_port,
                        tuning=Tuning(timeout_commit=timeout_commit, create_empty_blocks=empty_blocks))
    nodes = [{"node": n.name, "org": n.org, "validator": n.validator, "rpc": n.rpc_url, "api": n.api_url}
             for n in spec.nodes]
    emit({"chain_id": spec.chain_id, "home": str(spec.root), "nodes": nodes},
         lambda: print_table(["node", "organisation", "validator key", "RPC", "HTTP API"],
                             ([n["node"], n["org"], n["validator"], n["rpc"], n["api"]] for n in nodes),
                             title=f"network {spec.chain_id}"))
    note(f"next: careledger net start --home {spec.root}")


@net_app.command("start")
def net_start(home: NetHome, node: Nodes = None) -> None:
    """Start the nodes in the background (pid files in nodeK/run, logs in nodeK/logs)."""
    from careledger.net import procs

    spec = procs.load(expand(home))
    with progress("starting nodes", len(node) if node else len(spec.nodes)) as update:
        started = procs.start_nodes(spec, node, on_started=update)
    emit({"started": started}, lambda: say(f"started: {', '.join(started) or 'nothing (already running)'}"))


@net_app.command("stop")
def net_stop(home: NetHome, node: Nodes = None) -> None:
    """Stop the nodes (SIGTERM, then SIGKILL after 15 s)."""
    from careledger.net import procs

    stopped = procs.stop_nodes(procs.load(expand(home)), node)
    emit({"stopped": stopped}, lambda: say(f"stopped: {', '.join(stopped) or 'nothing was running'}"))


@net_app.command("kill")
def net_kill(home: NetHome, node: Annotated[list[str], typer.Option("--node", help="Node to SIGKILL.")]) -> None:
    """SIGKILL nodes (both processes), as a crash would."""
    from careledger.net import procs

    spec = procs.load(expand(home))
    unknown = sorted(set(node) - {n.name for n in spec.nodes})
    if unknown:
        raise procs.NetError(f"no such node: {', '.join(unknown)}")
    for n in spec.nodes:
        if n.name in node:
            procs.kill_node(spec, n)
    emit({"killed": node}, lambda: say(f"killed: {', '.join(node)}"))


@net_app.command("status")
def net_status(home: NetHome) -> None:
    """Each node's processes, CometBFT height, app hash, peers and ledger height."""
    from careledger.net import procs

    statuses = procs.network_status(procs.load(expand(home)))

    def dash(value: object) -> object:
        return "-" if value is None else value

    emit([s.to_json() for s in statuses], lambda: print_table(
        ["node", "organisation", "processes", "height", "app hash", "peers", "ledger height", "note"],
        ([s.name, s.org, " ".join(f"{k}:{v or '-'}" for k, v in s.running.items()), dash(s.height),
          dash(s.app_hash), dash(s.peers), dash(s.ledger_height), "catching up" if s.catching_up else s.error]
         for s in statuses)))
