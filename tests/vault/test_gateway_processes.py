"""Two separate processes over HTTP on loopback: organisation A's node, and organisation B's client.

Process 1 is ``careledger node start`` for the hospital's home: the ledger (solo engine), the
hospital's vault and its gateway. Process 2 is the clinic's client, a separate Python process with
only the clinic physician's key and A's URL: it lists the patient's records it may see, reads them
through A's gateway and checks every commitment against the ledger anchors. Set-up and the patient's
actions go through the ``careledger`` CLI, as an operator would type them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from careledger.client import Client, ClientError
from careledger.contracts.identity import compute_pseudonym
from careledger.keys import write_key
from support import seeded_key
from support.records import SYNTHEA_FILES

CLI = [str(Path(sys.executable).parent / "careledger")]
CLIENT_B = """
import json, sys
from careledger.client import Client
from careledger.core.crypto import SigningKey
from careledger.client.records import RecordsClient
url, seed, patient = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
clinic = RecordsClient(Client(url), SigningKey(seed), gateways={"hospital": url})
listed = clinic.index(patient, "TREAT")
wanted = [r["record"] for r in listed if r["type"] in ("Observation", "Condition")][:20]
if not wanted:
    print(json.dumps({"listed": len(listed), "types": [], "fetched": []}))
    sys.exit(0)
fetched = clinic.read("hospital", patient, wanted, "TREAT")   # verifies each commitment against the ledger
print(json.dumps({"listed": len(listed), "types": sorted({r["type"] for r in listed}),
                  "fetched": [[f.record, f.type, f.mode, json.loads(f.resource_json())["resourceType"]]
                              for f in fetched]}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(home: Path, *args: str) -> str:
    out = subprocess.run([*CLI, *args, "--home", str(home)], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def test_two_processes_over_loopback(node_home: Any) -> None:
    home = Path(node_home.path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dr_a, dr_b, alice = seeded_key("member/dr_a"), seeded_key("member/dr_b"), seeded_key("patient/alice")
    for name, key in (("dr_a", dr_a), ("alice", alice)):
        write_key(home / "keys" / f"{name}.json", key, name)
    node = subprocess.Popen([*CLI, "node", "start", "--home", str(home), "--api", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = Client(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.status()
                break
            except ClientError:
                assert time.monotonic() < deadline and node.poll() is None, "node did not start"
                time.sleep(0.1)
        out = cli(home, "records", "vault-init", "--org", "hospital", "--enrol-as", "hospital-admin", "--url", url)
        assert "gateway key enrolled" in out
        client.send(seeded_key("admin/hospital"), "identity.enrol_member", 1,
                    {"member": dr_a.public_hex, "org": "hospital", "roles": ["physician"]})
        client.send(seeded_key("admin/clinic"), "identity.enrol_member", 1,
                    {"member": dr_b.public_hex, "org": "clinic", "roles": ["physician"]})
        client.send(alice, "identity.register_patient", 1, {})
        patient = compute_pseudonym(alice.public_hex)
        out = cli(home, "records", "import", str(SYNTHEA_FILES[0]), "--patient", patient, "--custodian", "hospital",
                  "--as", "dr_a", "--url", url, "--json")
        imported = json.loads(out)
        assert len(imported["records"]) == 168
        # before consent, the clinic's process sees nothing and reads nothing
        proc = subprocess.run([sys.executable, "-c", CLIENT_B, url, dr_b.seed.hex(), patient],
                              capture_output=True, check=False, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["listed"] == 0
        cli(home, "consent", "grant", "--as", "alice", "--org", "clinic", "--purpose", "TREAT",
            "--type", "Observation", "--type", "Condition", "--url", url)
        proc = subprocess.run([sys.executable, "-c", CLIENT_B, url, dr_b.seed.hex(), patient],
                              capture_output=True, check=False, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["types"] == ["Condition", "Observation"]  # the index shows only what consent covers
        assert len(result["fetched"]) == 20
        assert all(mode == "consent" and rtype in ("Observation", "Condition") for _, rtype, mode, _ in
                   result["fetched"])
        time.sleep(0.3)
        log = json.loads(cli(home, "audit", "log", "--as", "alice", "--json", "--url", url))
        granted = [e for e in log if e["outcome"] == "granted" and e["requester_org"] == "clinic"]
        assert len(granted) == 20
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
    status = subprocess.run([*CLI, "verify", "--home", str(home), "--json"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert status.returncode == 0, status.stdout + status.stderr
