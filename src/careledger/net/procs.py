"""``careledger net start|stop|status``: a local network's processes, in the background.

Each CareLedger node is two processes: ``python -m careledger.abci node`` (ABCI server and HTTP
API over the node's ledger) and ``cometbft start``. The benchmark's baselines: a ``kvstore``
network runs CometBFT alone (its built-in app), a ``kvstore-socket`` network runs CometBFT with
its kvstore example app as a separate process (``abci-cli kvstore``) in the app's place. Pid files
live in ``nodeK/run/``, logs in ``nodeK/logs/`` (appended to). A pid is only signalled if the
process still runs in the node's directory (its command line or working directory names it), so a
stale pid file can never hit an unrelated process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from careledger.abci.cometbft import CometbftSetupError, find_abci_cli, find_cometbft
from careledger.net.layout import NetworkSpec, NodeSpec, StateSyncTrust

PROCESSES = ("careledger", "cometbft")


class NetError(Exception):
    """A network's processes cannot be started, stopped or reached as asked."""


@dataclass
class NodeStatus:
    name: str
    org: str
    running: dict[str, int | None]
    height: int | None = None
    app_hash: str | None = None
    peers: int | None = None
    catching_up: bool | None = None
    ledger_height: int | None = None
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _pid_file(spec: NetworkSpec, node: NodeSpec, process: str) -> Path:
    return spec.node_dir(node) / "run" / f"{process}.pid"


def running_pid(spec: NetworkSpec, node: NodeSpec, process: str) -> int | None:
    """The pid of ``process`` of ``node`` if it is alive and still ours, else None."""
    path = _pid_file(spec, node, process)
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError):
        return None
    node_dir = str(spec.node_dir(node))
    if (node_dir not in cmdline and cwd != node_dir) or stat.split(") ", 1)[-1].startswith("Z"):
        return None
    return pid


def _wait_port(port: int, pid_alive: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive():
            raise NetError("the process exited while starting (see its log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise NetError(f"nothing listens on port {port} after {timeout:g}s")


def _wait_app(node: NodeSpec, pid_alive: Any, timeout: float) -> None:
    """Wait until the node's app accepts ABCI connections. A Unix socket appears only once it listens
    (the server renames it into place), so its path is watched and never connected to: a probe would
    hold one of the four connections the server allows."""
    path = node.abci_socket
    if path is None:
        _wait_port(node.abci_port, pid_alive, timeout)
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive():
            raise NetError("the process exited while starting (see its log)")
        if path.exists():
            return
        time.sleep(0.05)
    raise NetError(f"no ABCI socket at {path} after {timeout:g}s")


def _spawn(spec: NetworkSpec, node: NodeSpec, process: str, argv: list[str]) -> subprocess.Popen[bytes]:
    node_dir = spec.node_dir(node)
    (node_dir / "logs").mkdir(exist_ok=True)
    (node_dir / "run").mkdir(exist_ok=True)
    with open(node_dir / "logs" / f"{process}.log", "ab") as log:
        log.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=node_dir)
    _pid_file(spec, node, process).write_text(f"{proc.pid}\n")
    return proc


def start_nodes(spec: NetworkSpec, names: list[str] | None = None, timeout: float = 60.0,
                cometbft: Path | None = None, on_started: Callable[[int, int], None] | None = None) -> list[str]:
    """Start the given nodes (default: all that are not running); returns the names started.

    The apps start first, all at once; each CometBFT starts once its app listens (``on_started(done,
    total)`` after each, for a progress bar). Raises NetError.
    """
    binary = cometbft or find_cometbft()
    if binary is None:
        raise NetError("cometbft not found: run scripts/install-cometbft.sh")
    app_argv = _app_command(spec)
    namespaces = spec.namespaces
    if namespaces is not None:
        namespaces.up(len(spec.nodes))
    chosen = [n for n in spec.nodes if names is None or n.name in names]
    if names is not None and len(chosen) != len(set(names)):
        raise NetError(f"no such node among {[n.name for n in spec.nodes]}")
    started: list[str] = []
    apps: list[tuple[NodeSpec, subprocess.Popen[bytes] | None]] = []
    for node in chosen:
        if running_pid(spec, node, "cometbft") is not None:
            continue
        proc = None
        if app_argv is not None and running_pid(spec, node, "careledger") is None:
            proc = _spawn(spec, node, "careledger", [*_inside(spec, node), *app_argv(node)])
        apps.append((node, proc))
    for node, proc in apps:
        if app_argv is not None:
            def alive(p: subprocess.Popen[bytes] | None = proc) -> bool:
                return p is None or p.poll() is None

            try:
                _wait_app(node, alive, timeout)
            except NetError as exc:
                last = _last_log_line(spec, node, "careledger")
                raise NetError(f"{node.name}: the CareLedger app did not start: {exc}"
                               + (f"; its log ends: {last}" if last else "")) from None
        _spawn(spec, node, "cometbft", [*_inside(spec, node), str(binary), "start", "--home",
                                        str(spec.cometbft_home(node))])
        started.append(node.name)
        if on_started is not None:
            on_started(len(started), len(apps))
    return started


def _inside(spec: NetworkSpec, node: NodeSpec) -> list[str]:
    """The command prefix that runs a process in the node's network namespace (none on loopback)."""
    namespaces = spec.namespaces
    return namespaces.exec_prefix(node.index) if namespaces is not None else []


def _last_log_line(spec: NetworkSpec, node: NodeSpec, process: str) -> str:
    """The last non-empty line of a process's log (at most 300 characters), for an error message."""
    try:
        with open(spec.node_dir(node) / "logs" / f"{process}.log", "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 4096))
            lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _app_command(spec: NetworkSpec) -> Callable[[NodeSpec], list[str]] | None:
    """The command line of a node's app process (None: the app is built into CometBFT)."""
    if spec.proxy_app == "kvstore":
        return None
    if spec.proxy_app == "kvstore-socket":
        abci_cli = find_abci_cli()
        if abci_cli is None:
            raise NetError("abci-cli not found: run scripts/install-cometbft.sh")
        return lambda node: [str(abci_cli), "kvstore", "--address", node.abci, "--log_level", "error"]
    return lambda node: [sys.executable, "-m", "careledger.abci", "node", "--node-dir", str(spec.node_dir(node))]


def signal_node(spec: NetworkSpec, node: NodeSpec, sig: int = signal.SIGKILL,
                processes: tuple[str, ...] = PROCESSES) -> list[int]:
    """Send ``sig`` to the node's live processes; returns the pids signalled."""
    pids = []
    for process in processes:
        pid = running_pid(spec, node, process)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                pids.append(pid)
    return pids


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < end:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                left.remove(pid)
                continue
            if stat.split(") ", 1)[-1].startswith("Z"):
                left.remove(pid)
        time.sleep(0.05)
    return left


def kill_node(spec: NetworkSpec, node: NodeSpec | int, timeout: float = 10.0,
              processes: tuple[str, ...] = PROCESSES) -> None:
    """SIGKILL a node's processes (both by default) and wait until they are gone."""
    target = spec.nodes[node] if isinstance(node, int) else node
    _wait_gone(signal_node(spec, target, signal.SIGKILL, processes), timeout)


def stop_nodes(spec: NetworkSpec, names: list[str] | None = None, timeout: float = 15.0) -> list[str]:
    """SIGTERM (CometBFT first, then the app), then SIGKILL what is still alive after ``timeout``."""
    chosen = [n for n in spec.nodes if names is None or n.name in names]
    stopped = []
    for process in ("cometbft", "careledger"):
        pids = [p for n in chosen for p in signal_node(spec, n, signal.SIGTERM, (process,))]
        for pid in _wait_gone(pids, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(pids, 5)
    for node in chosen:
        for process in PROCESSES:
            path = _pid_file(spec, node, process)
            if path.exists():
                path.unlink()
                stopped.append(node.name)
    return sorted(set(stopped))


def rpc(node: NodeSpec, method: str, timeout: float = 5.0, **params: Any) -> Any:
    """One JSON-RPC call to a node's CometBFT; raises NetError."""
    try:
        res = httpx.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                         timeout=timeout)
        doc = res.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise NetError(f"{node.name}: CometBFT RPC does not answer: {type(exc).__name__}") from exc
    if "error" in doc:
        raise NetError(f"{node.name}: {method}: {doc['error']}")
    return doc["result"]


def node_status(spec: NetworkSpec, node: NodeSpec) -> NodeStatus:
    processes = ("cometbft",) if spec.proxy_app == "kvstore" else PROCESSES
    status = NodeStatus(node.name, node.org, {p: running_pid(spec, node, p) for p in processes})
    try:
        sync = rpc(node, "status", timeout=2)["sync_info"]
        status.height = int(sync["latest_block_height"])
        status.app_hash = str(sync["latest_app_hash"]).lower()
        status.catching_up = bool(sync["catching_up"])
        status.peers = int(rpc(node, "net_info", timeout=2)["n_peers"])
    except NetError as exc:
        status.error = str(exc)
    if not spec.proxy_app:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            status.ledger_height = int(httpx.get(f"{node.api_url}/v1/status", timeout=2).json()["height"])
    return status


def state_sync_trust(spec: NetworkSpec, servers: tuple[int, ...] = (0, 1)) -> StateSyncTrust:
    """A trusted height and hash for a node joining by state sync, from the latest block of the first of
    ``servers`` (running nodes the operator trusts), whose RPCs the light client then uses. Raises NetError."""
    nodes = [spec.nodes[i] for i in servers]
    sync = rpc(nodes[0], "status")["sync_info"]
    return StateSyncTrust(tuple(n.rpc_url for n in nodes), int(sync["latest_block_height"]),
                          str(sync["latest_block_hash"]))


def network_status(spec: NetworkSpec) -> list[NodeStatus]:
    return [node_status(spec, n) for n in spec.nodes]


def load(root: Path) -> NetworkSpec:
    try:
        return NetworkSpec.load(root)
    except CometbftSetupError as exc:
        raise NetError(str(exc)) from None
