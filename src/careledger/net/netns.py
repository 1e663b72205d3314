"""Network namespaces for a local network whose links can be cut (the fault matrix's partition).

On loopback every node reaches every other one, and nothing short of a firewall separates two of
them. With namespaces (Linux, root, iproute2's ``ip``), node K runs in its own namespace
``<prefix>-nK`` with one interface, ``eth0`` at ``10.A.B.(10+K)``, whose other end ``<prefix>vK`` is
attached to a bridge ``<prefix>br`` (``10.A.B.1``) in the host's namespace; the host reaches every
node's RPC and API through the bridge. :meth:`Namespaces.isolate` takes a node's link down (its
processes keep running, cut off from everyone) and :meth:`Namespaces.heal` brings it back.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass


class NetnsError(Exception):
    """Namespaces cannot be made or changed here."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip()}")
    return proc


def available() -> str:
    """"" when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"clprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return ""


@dataclass(frozen=True)
class Namespaces:
    prefix: str  # short: interface names hold 15 characters
    subnet: str  # "10.A.B"

    @classmethod
    def fresh(cls, rng: random.Random | None = None) -> Namespaces:
        rng = rng or random.Random()
        return cls(f"cl{rng.randrange(16**4):04x}", f"10.{rng.randrange(200, 250)}.{rng.randrange(256)}")

    def ns(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def veth(self, i: int) -> str:
        return f"{self.prefix}v{i}"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{10 + i}"

    def exec_prefix(self, i: int) -> list[str]:
        """What runs a command inside node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    def up(self, count: int) -> None:
        """Make the bridge and the namespaces of nodes ``0..count-1`` (those that exist are kept)."""
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        existing = set(_ip("netns", "list").stdout.split())
        for i in range(count):
            if self.ns(i) in existing:
                continue
            _ip("netns", "add", self.ns(i))
            _ip("link", "add", self.veth(i), "type", "veth", "peer", "name", "eth0", "netns", self.ns(i))
            _ip("link", "set", self.veth(i), "master", self.bridge)
            _ip("link", "set", self.veth(i), "up")
            _ip("-n", self.ns(i), "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", self.ns(i), "link", "set", "eth0", "up")
            _ip("-n", self.ns(i), "link", "set", "lo", "up")

    def down(self, count: int) -> None:
        """Remove the namespaces (their interfaces go with them) and the bridge (the processes are gone)."""
        for i in range(count):
            _ip("netns", "del", self.ns(i), check=False)
        _ip("link", "del", self.bridge, check=False)

    def isolate(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "down")

    def heal(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "up")
