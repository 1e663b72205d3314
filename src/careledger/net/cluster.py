"""A local network driven from Python: what the tests, the benchmark and the demo use.

:class:`LocalNetwork` wraps a :class:`~careledger.net.layout.NetworkSpec` with process control
(:mod:`careledger.net.procs`) and the observations a fault test needs: CometBFT heights, each
node's ledger blocks (read-only from its SQLite file) and CometBFT's block hashes.
"""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from careledger.client import Client
from careledger.core.crypto import SigningKey
from careledger.net import procs
from careledger.net.layout import (
    DEFAULT_SNAPSHOT_INTERVAL,
    PORT_STRIDE,
    PORTS_PER_NODE,
    NetworkSpec,
    Tuning,
    add_node,
    init_network,
)
from careledger.net.netns import Namespaces


def ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(nodes: int, rng: random.Random | None = None) -> int:
    """A base port whose whole block of ports (5 per node) is free now."""
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 32_000, 100)  # below the kernel's ephemeral range (32768-60999)
        if all(ports_free(base + PORT_STRIDE * i, PORTS_PER_NODE) for i in range(nodes)):
            return base
    raise procs.NetError("no free block of loopback ports")


class LocalNetwork:
    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        self._clients: dict[int, Client] = {}

    @classmethod
    def create(cls, root: Path, validators: int, chain_id: str = "careledger-net", tuning: Tuning | None = None,
               proxy_app: str = "", base_port: int | None = None,
               organisations: list[tuple[dict[str, Any], SigningKey]] | None = None, abci_transport: str = "unix",
               snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, snapshot_keep: int = 2,
               namespaces: Namespaces | None = None) -> LocalNetwork:
        """A new network under ``root`` (not started); ``namespaces``: each node in its own network
        namespace (see :mod:`careledger.net.netns`), so :attr:`partitioner` can cut it off."""
        base = base_port if base_port is not None else free_base_port(validators + 1)  # room for one more node
        return cls(init_network(root, validators, chain_id=chain_id, base_port=base, tuning=tuning,
                                proxy_app=proxy_app, organisations=organisations, abci_transport=abci_transport,
                                snapshot_interval=snapshot_interval, snapshot_keep=snapshot_keep,
                                namespaces=namespaces))

    @property
    def partitioner(self) -> Namespaces | None:
        """What isolates and heals a node (None on loopback, where nodes cannot be separated)."""
        return self.spec.namespaces

    @property
    def nodes(self) -> list[Any]:
        return self.spec.nodes

    # -- processes ------------------------------------------------------------------------------------
    def start(self, *indexes: int, timeout: float = 60.0) -> None:
        names = [self.spec.nodes[i].name for i in indexes] if indexes else None
        procs.start_nodes(self.spec, names, timeout=timeout)

    def kill(self, *indexes: int) -> None:
        for i in indexes:
            procs.kill_node(self.spec, i)

    def kill_process(self, i: int, process: str) -> None:
        """SIGKILL one of node ``i``'s processes (``cometbft`` or ``careledger``) and wait until it is gone."""
        procs.kill_node(self.spec, i, processes=(process,))

    def pause(self, *indexes: int) -> None:
        """SIGSTOP both processes of the nodes (frozen, connections open), as a stalled machine would be."""
        for i in indexes:
            procs.signal_node(self.spec, self.spec.nodes[i], signal.SIGSTOP)

    def resume(self, *indexes: int) -> None:
        for i in indexes:
            procs.signal_node(self.spec, self.spec.nodes[i], signal.SIGCONT)

    def add_node(self, org: str, role: str, state_sync: bool = False, tuning: Tuning | None = None,
                 snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, snapshot_keep: int = 2) -> int:
        """Add a full node for ``org`` (not started); with ``state_sync`` it trusts node0's latest block
        and joins from a snapshot. Returns its index."""
        trust = procs.state_sync_trust(self.spec) if state_sync else None
        self.spec = add_node(self.spec, org, role, tuning=tuning, state_sync=trust,
                             snapshot_interval=snapshot_interval, snapshot_keep=snapshot_keep)
        return len(self.spec.nodes) - 1

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        procs.stop_nodes(self.spec)
        if self.spec.namespaces is not None:
            self.spec.namespaces.down(len(self.spec.nodes))

    def alive(self, i: int) -> bool:
        node = self.spec.nodes[i]
        return procs.running_pid(self.spec, node, "cometbft") is not None

    def logs(self, i: int, tail: int = 4000) -> str:
        out = []
        for path in sorted((self.spec.node_dir(i) / "logs").glob("*.log")):
            out.append(f"--- {path}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    # -- observation ----------------------------------------------------------------------------------
    def rpc(self, i: int, method: str, **params: Any) -> Any:
        return procs.rpc(self.spec.nodes[i], method, **params)

    def height(self, i: int) -> int | None:
        """CometBFT's latest height at node ``i`` (None if it does not answer)."""
        try:
            return int(self.rpc(i, "status")["sync_info"]["latest_block_height"])
        except procs.NetError:
            return None

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0, every: float = 0.2) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")

    def wait_height(self, height: int, nodes: list[int] | None = None, timeout: float = 60.0) -> None:
        targets = nodes if nodes is not None else list(range(len(self.spec.nodes)))
        self.wait(f"CometBFT height {height} on nodes {targets}",
                  lambda: all((self.height(i) or 0) >= height for i in targets), timeout)

    def client(self, i: int, timeout: float = 30.0) -> Client:
        if i not in self._clients:
            self._clients[i] = Client(self.spec.nodes[i].api_url, timeout=timeout)
        return self._clients[i]

    def wait_api(self, nodes: list[int] | None = None, timeout: float = 60.0) -> None:
        targets = nodes if nodes is not None else list(range(len(self.spec.nodes)))

        def up() -> bool:
            for i in targets:
                try:
                    self.client(i).status()
                except Exception:
                    return False
            return True

        self.wait(f"the HTTP API of nodes {targets}", up, timeout)

    def ledger_blocks(self, i: int) -> list[tuple[int, str, str]]:
        """``(height, block hash, app hash)`` of every ledger block node ``i`` has committed (read-only)."""
        conn = sqlite3.connect(f"file:{self.spec.db_path(i)}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("SELECT height, hash, header FROM blocks ORDER BY height").fetchall()
        finally:
            conn.close()
        import json

        return [(int(h), bytes(bh).hex(), json.loads(bytes(hdr))["app_hash"]) for h, bh, hdr in rows]

    def ledger_txs(self, i: int) -> dict[str, int]:
        """Every committed transaction's hash at node ``i``, with its ledger height."""
        conn = sqlite3.connect(f"file:{self.spec.db_path(i)}?mode=ro", uri=True, timeout=30)
        try:
            return {bytes(h).hex(): int(height) for h, height in conn.execute("SELECT hash, height FROM txs")}
        finally:
            conn.close()

    def earliest_height(self, i: int) -> int:
        """The lowest height node ``i``'s CometBFT block store holds (above 1 after state sync)."""
        return int(self.rpc(i, "status")["sync_info"]["earliest_block_height"])

    def cometbft_headers(self, i: int, low: int, high: int) -> dict[int, tuple[str, str]]:
        """``height -> (block hash, app hash)`` of CometBFT's blocks ``low..high`` at node ``i``."""
        out: dict[int, tuple[str, str]] = {}
        for start in range(low, high + 1, 20):
            metas = self.rpc(i, "blockchain", minHeight=str(start), maxHeight=str(min(high, start + 19)))
            for meta in metas["block_metas"]:
                out[int(meta["header"]["height"])] = (str(meta["block_id"]["hash"]), str(meta["header"]["app_hash"]))
        return out

    def cometbft_block_hashes(self, i: int, low: int, high: int) -> dict[int, str]:
        """CometBFT's block hashes at node ``i`` for heights ``low..high``."""
        out: dict[int, str] = {}
        for start in range(low, high + 1, 20):
            metas = self.rpc(i, "blockchain", minHeight=str(start), maxHeight=str(min(high, start + 19)))
            for meta in metas["block_metas"]:
                out[int(meta["header"]["height"])] = str(meta["block_id"]["hash"])
        return out
