"""``careledger net``: a local consortium network on CometBFT (init, start, stop, kill, status, add, faults)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from careledger.cli.common import EXIT_NEGATIVE, activity, emit, expand, fail, note, print_table, progress, say

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
    abci: Annotated[str, typer.Option(help="How CometBFT reaches each app: unix (an owner-only socket) or tcp "
                                           "(a loopback port, base+10K+2).")] = "unix",
    snapshot_interval: Annotated[int, typer.Option(help="CometBFT heights between state-sync snapshots "
                                                        "(0: none).")] = 100,
    snapshot_keep: Annotated[int, typer.Option(help="State-sync snapshots each node keeps.")] = 2,
) -> None:
    """Create the network: keys, one genesis, and every node's CometBFT and CareLedger home."""
    from careledger.net.layout import Tuning, init_network

    spec = init_network(expand(home), validators, chain_id=chain_id, base_port=base_port,
                        tuning=Tuning(timeout_commit=timeout_commit, create_empty_blocks=empty_blocks),
                        abci_transport=abci, snapshot_interval=snapshot_interval, snapshot_keep=snapshot_keep)
    _print_nodes(spec)
    note(f"next: careledger net start --home {spec.root}")


def _print_nodes(spec: Any, only: str | None = None) -> None:
    nodes = [{"node": n.name, "org": n.org, "validator": n.validator, "rpc": n.rpc_url, "api": n.api_url,
              "abci": n.abci, "metrics": n.metrics_url} for n in spec.nodes if only is None or n.name == only]
    emit({"chain_id": spec.chain_id, "home": str(spec.root), "nodes": nodes},
         lambda: print_table(["node", "organisation", "validator key", "RPC", "HTTP API", "metrics"],
                             ([n["node"], n["org"], n["validator"], n["rpc"], n["api"], n["metrics"]] for n in nodes),
                             title=f"network {spec.chain_id}"))


@net_app.command("add")
def net_add(
    home: NetHome,
    org: Annotated[str, typer.Option(help="The organisation the new node belongs to.")],
    role: Annotated[str, typer.Option(help="That organisation's role.")] = "hospital",
    state_sync: Annotated[bool, typer.Option(help="Join from a snapshot of the running nodes (trusting node0's "
                                                  "latest block) instead of replaying every block.")] = False,
) -> None:
    """Add a full node (a validator once governance makes its key one); start it with `net start --node`."""
    from careledger.net import procs
    from careledger.net.layout import add_node

    spec = procs.load(expand(home))
    trust = procs.state_sync_trust(spec) if state_sync else None
    grown = add_node(spec, org, role, state_sync=trust)
    _print_nodes(grown, grown.nodes[-1].name)
    note(f"next: careledger net start --home {grown.root} --node {grown.nodes[-1].name}")


@net_app.command("faults")
def net_faults(
    home: NetHome,
    plan: Annotated[str, typer.Option(help="long (about 10 minutes) or short (about 1.5 minutes).")] = "long",
    partition: Annotated[bool, typer.Option(help="Also partition one validator (needs root and `ip netns`).")]
    = True,
    keep: Annotated[bool, typer.Option(help="Keep the network's directory afterwards.")] = False,
) -> None:
    """Run the fault matrix on a fresh 4-validator network in HOME and print its figures; exit 4 when an
    invariant does not hold (acknowledged transactions lost, diverging hashes, a dead CometBFT unreported)."""
    import shutil

    from careledger.net.faults import FaultPlan, fresh_network, run_fault_matrix
    from careledger.net.layout import Tuning

    if plan not in ("long", "short"):
        fail(f"--plan is long or short, not {plan!r}")
    root = expand(home)
    with activity("fault matrix") as update:
        update("starting a 4-validator network")
        net = fresh_network(root, Tuning(timeout_commit="200ms"), netns=partition)
        try:
            report = run_fault_matrix(net, FaultPlan.long() if plan == "long" else FaultPlan.short(), update,
                                      partition=net.partitioner)
        finally:
            net.stop()
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
    emit(report.to_json(), lambda: _print_report(report))
    if not report.ok:
        raise typer.Exit(EXIT_NEGATIVE)


def _print_report(report: Any) -> None:
    say(f"fault matrix on {report.validators} validators, {report.seconds:g} s: "
        + ("[green]all invariants hold[/]" if report.ok else "[red]an invariant does not hold[/]"))
    print_table(["figure", "value"], [
        ["acknowledged transactions", report.acknowledged], ["lost", report.lost],
        ["at another height", report.misplaced], ["unknown (timed out)", report.unknown],
        ["refused", report.refused], ["ledger heights compared", report.ledger_heights_compared],
        ["CometBFT heights compared", report.cometbft_heights_compared],
        ["divergent heights", len(report.divergent_ledger_heights) + len(report.divergent_cometbft_heights)],
        ["longest commit stall (s)", report.longest_stall_s],
        ["longest stall with 3+ validators up (s)", report.longest_stall_with_quorum_s],
        ["catch-up times (s)", " ".join(f"{t:g}" for t in report.catch_up_s)],
        ["dead CometBFT: /v1/status ready", report.dead_cometbft.get("status_ready")],
        ["dead CometBFT: submission", f"{report.dead_cometbft.get('submit_refused')} "
                                      f"({report.dead_cometbft.get('submit_http_status')})"],
        ["partition", report.partition]])
    print_table(["phase", "nodes", "s", "acked", "blocks", "longest stall (s)", "catch-up (s)", "note"],
                ([p.name, " ".join(map(str, p.nodes)), p.seconds, p.acked, p.blocks, p.longest_stall_s,
                  " ".join(f"{t:g}" for t in p.catch_up_s), p.note] for p in report.phases))


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
