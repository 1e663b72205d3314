"""`careledger demo` is the product's front door: it must run its whole story and verify, every time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from careledger.node.verify import verify_file


def test_demo_walks_the_whole_story_and_verifies(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    cli = Path(sys.executable).with_name("careledger")
    done = subprocess.run([str(cli), "demo", "--home", str(home)], check=False, capture_output=True, text=True,
                          timeout=600, env={"COLUMNS": "200", "PATH": f"{cli.parent}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for chapter in ("The consortium", "What the ledger refuses", "Governance", "Revocation",
                    "Proofs anyone can check offline", "Health records", "Consent", "The patient's view",
                    "Revocation and erasure", "a pack's life", "a batch recall", "a counterfeit caught",
                    "careledger verify"):
        assert chapter in out, f"chapter {chapter!r} missing from the demo"
    assert "ledger intact" in out
    # the web console: its URL, how to serve the home, and a key file for each role's view
    assert "http://127.0.0.1:8700/ui/" in out and f"careledger node start --home {home}" in out.replace("\n", "")
    from careledger.demo.console_keys import ROLES

    assert sorted(p.stem for p in (home / "console-keys").glob("*.json")) == sorted(ROLES)
    assert "Traceback" not in out + done.stderr
    report = verify_file(home / "data" / "ledger.sqlite")
    assert report.ok and report.blocks > 10
