"""``careledger demo --engine cometbft``: the demo story on a local network of CometBFT validators.

The demo consortium's eight organisations are in the genesis; the first N (St Mary's, Riverside,
the pharmacy, the manufacturer for N = 4) each run a validator node. The story's client talks to
node0's HTTP API; every transaction is ordered by CometBFT and executed by every node. At the end
every node's ledger is verified from genesis and the nodes are compared block for block.

The proofs chapter checks the inclusion proof as a CometBFT block (``engine="cometbft"`` in
:func:`careledger.core.proofs.verify_proof`): no CareLedger block signature, a proposer that is the
CometBFT address of a validator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from careledger.client import Client
from careledger.core.crypto import SigningKey
from careledger.demo.consortium import GS1_PREFIXES, ORGANISATIONS, Consortium
from careledger.net.cluster import LocalNetwork
from careledger.net.layout import Tuning
from careledger.node.home import Home


def chapter_proofs_cometbft(s: object) -> None:
    from careledger.core.proofs import verify_proof
    from careledger.demo.story import Story

    assert isinstance(s, Story)
    s.chapter("Proofs anyone can check offline (CometBFT blocks)")
    genesis = s.consortium.home.genesis()
    tx = s.client.tx(s.facts["patient_tx"])
    keys = sorted({v.pub_key for v in genesis.validators} | {v["pub_key"] for v in s.client.validators()})
    s.step(f"The patient's registration sits in block {tx['height']}; CometBFT's commit certifies that block, "
           "and the proof ties the receipt to its header.")
    receipt = verify_proof(tx["proof"], genesis.chain_id, keys, engine="cometbft")
    proposer = tx["proof"]["header"]["proposer"]
    s.console.print(f"    [green]proof valid[/]: receipt code {receipt.code}; proposer {proposer[:16]}… is the "
                    f"CometBFT address of a validator")


def run_demo(path: Path, console: Console, validators: int = 4, keep_running: bool = False) -> LocalNetwork:
    """Create the network under ``path``, run every story chapter through node0's API, verify every node."""
    from careledger.demo.story import CHAPTERS, Story, banner, chapter_proofs
    from careledger.node.verify import verify_file

    admins = {oid: SigningKey.generate() for oid, _, _, _ in ORGANISATIONS}
    orgs = [({"api": None, "gs1_company_prefixes": GS1_PREFIXES.get(oid, []), "id": oid, "name": name,
              "roles": roles}, admins[oid]) for oid, name, _, roles in ORGANISATIONS]
    net = LocalNetwork.create(path, validators, chain_id="careledger-demo", organisations=orgs,
                              tuning=Tuning(timeout_commit="200ms"))
    banner(console, path)
    net.start()
    net.wait_api()
    net.wait_height(1)
    console.print(f"network running: {validators} CometBFT validators "
                  f"({', '.join(n.org for n in net.spec.nodes)}); the story talks to {net.spec.nodes[0].api_url}")
    consortium = Consortium(Home(net.spec.careledger_home(0)), admins)
    story = Story(Client(net.spec.nodes[0].api_url), consortium, console)
    chapters: list[Callable[[Story], None]] = [chapter_proofs_cometbft if c is chapter_proofs else c
                                               for c in CHAPTERS]
    try:
        for chapter in chapters:
            chapter(story)
        last = story.client.status()
        net.wait("every node to reach the story's last block",
                 lambda: all(len(net.ledger_blocks(i)) >= last["height"] for i in range(validators)), timeout=60)
        console.print()
        console.rule("[bold cyan]careledger verify, on every node")
        blocks = [net.ledger_blocks(i)[:last["height"]] for i in range(validators)]
        if any(b != blocks[0] for b in blocks):
            raise RuntimeError("the nodes' ledgers differ")
        for i in range(validators):
            report = verify_file(net.spec.db_path(i), engine="cometbft")
            if not report.ok:
                raise RuntimeError(f"node{i}: verify found damage at height {report.bad_height}: {report.problem}")
        console.print(f"[green]{validators} ledgers intact and identical[/]: {last['height']} blocks, replayed "
                      "from genesis on every node; receipts, Merkle roots and app hashes all match.")
    finally:
        if not keep_running:
            net.stop()
    return net
