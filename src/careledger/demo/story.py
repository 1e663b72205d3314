"""The demo story: a consortium's first hour on CareLedger, told through the real HTTP API.

Each step prints what happens and the receipt the ledger returned. Later releases add chapters
(records, consent, supply chain, claims, trials) by appending to :data:`CHAPTERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from careledger.client import Client, ClientError
from careledger.core.crypto import SigningKey
from careledger.core.tx import sign_tx
from careledger.demo.consortium import Consortium


@dataclass
class Story:
    """What the chapters share: the client, the consortium and the people met so far."""

    client: Client
    consortium: Consortium
    console: Console
    people: dict[str, SigningKey] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    steps: int = 0

    def person(self, name: str) -> SigningKey:
        if name not in self.people:
            self.people[name] = SigningKey.generate()
        return self.people[name]

    def chapter(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold cyan]{title}")

    def step(self, text: str) -> None:
        self.steps += 1
        self.console.print(f"[bold]{self.steps:>2}.[/] {text}")

    def send(self, key: SigningKey, tx_type: str, payload: dict[str, Any], expect: int = 0) -> dict[str, Any]:
        """Submit, wait for commit, print the receipt; stop the demo if the outcome is not the expected one."""
        result = self.client.send(key, tx_type, 1, payload, wait=True)
        receipt = result["receipt"]
        self._print_receipt(result["height"], result["tx_hash"], receipt)
        if receipt["code"] != expect:
            raise DemoFailed(f"{tx_type}: expected code {expect}, got {receipt['code']} {receipt.get('name')}")
        return result

    def refused(self, raw: bytes, expect: str) -> None:
        """Submit bytes the node must refuse at admission with error ``expect``."""
        try:
            self.client.submit(raw, wait=True)
        except ClientError as exc:
            self.console.print(f"    [yellow]refused[/] {exc.name} ({exc.code}): {exc.message}")
            if exc.name != expect:
                raise DemoFailed(f"expected {expect}, got {exc.name}") from exc
            return
        raise DemoFailed(f"expected refusal {expect}, but the node accepted the transaction")

    def _print_receipt(self, height: int, tx_hash: str, receipt: dict[str, Any]) -> None:
        ok = receipt["code"] == 0
        colour = "green" if ok else "red"
        label = "OK" if ok else f"{receipt.get('name')} ({receipt['code']})"
        self.console.print(f"    [{colour}]receipt {label}[/] block {height} tx {tx_hash[:16]}…"
                           + (f"  [dim]{receipt.get('message')}[/]" if receipt.get("message") else ""))
        if ok and receipt.get("result"):
            shown = {k: (v[:16] + "…" if isinstance(v, str) and len(v) > 40 else v)
                     for k, v in receipt["result"].items()}
            self.console.print(f"    [dim]result {shown}[/]")


class DemoFailed(RuntimeError):
    pass


def chapter_consortium(s: Story) -> None:
    s.chapter("The consortium")
    orgs = s.client.organisations()
    s.step(f"Genesis declares {len(orgs)} organisations and the validator set:")
    for org in orgs:
        s.console.print(f"    {org['id']:<22} {', '.join(org['roles']):<13} {org['name']}")
    status = s.client.status()
    s.console.print(f"    chain [bold]{status['chain_id']}[/], height {status['height']}, "
                    f"app hash {status['app_hash'][:16]}…")


def chapter_people(s: Story) -> None:
    c = s.consortium
    s.chapter("Members and patients")
    s.step("St Mary's admin enrols Dr Osei (physician) and an emergency-department nurse.")
    s.send(c.admin("st-marys"), "identity.enrol_member",
           {"handle": "dr.osei", "member": s.person("dr_osei").public_hex, "org": "st-marys", "roles": ["physician"]})
    s.send(c.admin("st-marys"), "identity.enrol_member",
           {"handle": "nurse.ed-17", "member": s.person("nurse").public_hex, "org": "st-marys",
            "roles": ["emergency", "nurse"]})
    s.step("The pharmacy enrols a pharmacist; the insurer a claims officer; the institute a researcher.")
    s.send(c.admin("high-street-pharmacy"), "identity.enrol_member",
           {"member": s.person("pharmacist").public_hex, "org": "high-street-pharmacy", "roles": ["pharmacist"]})
    s.send(c.admin("united-health-ins"), "identity.enrol_member",
           {"member": s.person("claims").public_hex, "org": "united-health-ins", "roles": ["claims_officer"]})
    s.send(c.admin("uni-research"), "identity.enrol_member",
           {"member": s.person("researcher").public_hex, "org": "uni-research", "roles": ["researcher"]})
    s.step("A patient registers a pseudonymous key: no name, no birth date, nothing identifying.")
    result = s.send(s.person("patient"), "identity.register_patient", {})
    s.facts["patient_tx"] = result["tx_hash"]
    s.facts["pseudonym"] = result["receipt"]["result"]["pseudonym"]


def chapter_refusals(s: Story) -> None:
    c = s.consortium
    chain_id = s.client.status()["chain_id"]
    s.chapter("What the ledger refuses")
    s.step("Dr Osei is not an admin: enrolling a colleague is refused before it reaches a block.")
    raw = sign_tx(s.person("dr_osei"), chain_id, "identity.enrol_member", 1, 1,
                  {"member": SigningKey.generate().public_hex, "org": "st-marys", "roles": ["nurse"]})
    s.refused(raw, "UNAUTHORISED")
    s.step("A hospital cannot grant a regulator's role: the transaction is included, its receipt fails, "
           "nothing but the nonce is written.")
    s.send(c.admin("st-marys"), "identity.enrol_member",
           {"member": SigningKey.generate().public_hex, "org": "st-marys", "roles": ["inspector"]},
           expect=1003)
    s.step("Replaying the patient's registration byte for byte is caught.")
    s.refused(bytes.fromhex(s.client.tx(s.facts["patient_tx"])["proof"]["tx"]), "DUPLICATE_TX")
    s.step("A transaction signed for another chain is refused.")
    s.refused(sign_tx(s.person("stranger"), "another-chain", "identity.register_patient", 1, 1, {}), "WRONG_CHAIN")
    s.step("A tampered signature is refused.")
    good = sign_tx(s.person("stranger"), chain_id, "identity.register_patient", 1, 1, {})
    tampered = good[:-3] + (b"0" if good[-3:-2] != b"0" else b"1") + good[-2:]
    s.refused(tampered, "BAD_SIGNATURE")


def chapter_governance(s: Story) -> None:
    c = s.consortium
    s.chapter("Governance: admitting a new hospital needs more than 2/3 of the organisations")
    new_admin = s.person("northside_admin")
    s.step("St Mary's proposes Northside General Hospital (St Mary's votes yes by proposing).")
    result = s.send(c.admin("st-marys"), "governance.propose", {
        "action": {"kind": "add_organisation", "organisation": {
            "admins": [new_admin.public_hex], "id": "northside-general", "name": "Northside General Hospital",
            "roles": ["hospital"]}},
        "title": "Admit Northside General Hospital"})
    proposal = result["receipt"]["result"]["proposal"]
    voters = ["riverside-clinic", "high-street-pharmacy", "acme-pharma", "medi-distrib", "united-health-ins"]
    for org in voters:
        s.step(f"{org} votes yes.")
        out = s.send(c.admin(org), "governance.vote", {"approve": True, "proposal": proposal})
        status = out["receipt"]["result"]["status"]
        if status == "executed":
            break
    s.console.print("    [green]6 of 8 organisations approved: the proposal executed.[/]")
    s.step("Northside's admin enrols its first physician.")
    s.send(new_admin, "identity.enrol_member",
           {"member": s.person("dr_northside").public_hex, "org": "northside-general", "roles": ["physician"]})


def chapter_revocation(s: Story) -> None:
    c = s.consortium
    s.chapter("Revocation")
    s.step("The nurse leaves St Mary's; the admin revokes the key.")
    s.send(c.admin("st-marys"), "identity.revoke_member",
           {"member": s.person("nurse").public_hex, "org": "st-marys", "reason": "left the organisation"})
    s.step("From the next block on, anything the revoked key signs is refused.")
    chain_id = s.client.status()["chain_id"]
    raw = sign_tx(s.person("nurse"), chain_id, "identity.register_patient", 1, 1, {})
    s.refused(raw, "SIGNER_REVOKED")


def chapter_proofs(s: Story) -> None:
    s.chapter("Proofs anyone can check offline")
    from careledger.core.proofs import verify_proof

    genesis = s.consortium.home.genesis()
    tx = s.client.tx(s.facts["patient_tx"])
    s.step(f"The patient's registration sits in block {tx['height']}; its inclusion proof is checked against "
           "the genesis validators alone.")
    receipt = verify_proof(tx["proof"], genesis.chain_id, [v.pub_key for v in genesis.validators])
    proof = tx["proof"]
    s.console.print(f"    [green]proof valid[/]: receipt code {receipt.code}, {len(proof['tx_path'])}-step audit "
                    f"path to txs_root {proof['header']['txs_root'][:16]}…")


CHAPTERS: list[Callable[[Story], None]] = [
    chapter_consortium, chapter_people, chapter_refusals, chapter_governance, chapter_revocation, chapter_proofs,
]

from careledger.demo import records_story  # noqa: E402  (its chapters need Story defined above)

CHAPTERS.extend(records_story.CHAPTERS)

from careledger.demo import supply_story  # noqa: E402

CHAPTERS.extend(supply_story.CHAPTERS)

from careledger.demo import claims_story  # noqa: E402

CHAPTERS.extend(claims_story.CHAPTERS)

from careledger.demo import research_story  # noqa: E402

CHAPTERS.extend(research_story.CHAPTERS)

from careledger.demo import trials_story  # noqa: E402

CHAPTERS.extend(trials_story.CHAPTERS)


def run_story(client: Client, consortium: Consortium, console: Console) -> Story:
    story = Story(client, consortium, console)
    for chapter in CHAPTERS:
        chapter(story)
    return story


def banner(console: Console, home: Path) -> None:
    console.print(Panel.fit("[bold]CareLedger[/] — a permissioned ledger for healthcare\n"
                            f"demo home: {home}", border_style="cyan"))


