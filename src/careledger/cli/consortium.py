"""``careledger consortium``: the ceremony by which organisations on separate machines found a network
(:mod:`careledger.net.ceremony`, docs/consortium.md section 3).

    careledger consortium join     --home ORGDIR --org ID --p2p HOST:PORT      (each organisation)
    careledger consortium genesis  --file consortium.toml --out GENESISDIR     (the coordinator)
    careledger consortium verify   --dir GENESISDIR --expect HASH [--home ORGDIR]   (each organisation)
    careledger consortium setup    --home ORGDIR --dir GENESISDIR --expect HASH (each organisation)
    careledger consortium embedded --file consortium.toml --home HOME          (tests and demos)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from careledger.cli.common import EXIT_NEGATIVE, emit, expand, fail, note, print_table, say
from careledger.core.errors import Code

consortium_app = typer.Typer(help="Found a consortium: join files, one genesis, its hash checked by everyone.",
                             no_args_is_help=True)

OrgHome = Annotated[Path, typer.Option("--home", help="This organisation's directory (its keys and node).")]
GenesisDir = Annotated[Path, typer.Option("--dir", help="The directory `consortium genesis` wrote.")]
Expect = Annotated[str, typer.Option("--expect", help="The genesis hash the coordinator announced "
                                                      "(SHA-256 of cometbft-genesis.json).")]


def _ceremony_failure(exc: Exception) -> NoReturn:
    """A wrong genesis hash is a negative answer (exit 4, INVALID_GENESIS); anything else as it is."""
    from careledger.net.ceremony import CeremonyError

    if isinstance(exc, CeremonyError) and "genesis hash is" in str(exc):
        fail(str(exc), EXIT_NEGATIVE, name=Code.INVALID_GENESIS.name, code=int(Code.INVALID_GENESIS))
    raise exc


def _show(doc: dict[str, Any]) -> None:
    say(f"chain {doc['chain_id']}")
    say(f"  genesis hash             {doc['genesis_hash']}   (SHA-256 of cometbft-genesis.json)")
    say(f"  CareLedger genesis hash  {doc['careledger_genesis_hash']}   (/v1/status genesis_hash)")
    print_table(["validator of", "power", "key"], ([v["org"], v["power"], v["pub_key"]] for v in doc["validators"]))


@consortium_app.command("join")
def join(
    home: OrgHome,
    org: Annotated[str, typer.Option(help="This organisation's id, as the consortium file will name it.")],
    p2p: Annotated[str, typer.Option(help="HOST:PORT other organisations dial for this node's p2p.")],
) -> None:
    """Create this organisation's validator, p2p and admin keys and write its join file (public halves only)."""
    from careledger.net.ceremony import join as make_join

    path, joined = make_join(expand(home), org, p2p)
    emit({"join_file": str(path), **joined.to_json()},
         lambda: say(f"[green]join file[/] {path}: validator {joined.validator}, node {joined.node_id}@{joined.p2p}"))
    note(f"next: send {path.name} to the coordinator; keep {expand(home)} private")


@consortium_app.command("genesis")
def genesis(
    file: Annotated[Path, typer.Option("--file", help="The consortium file (TOML).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write genesis.json, cometbft-genesis.json, "
                                                    "peers.json.")],
) -> None:
    """Assemble the genesis from the consortium file and the join files it names; print the hash to announce."""
    from careledger.net.ceremony import write_genesis_files

    doc = write_genesis_files(expand(file), expand(out))
    emit(doc, lambda: _show(doc))
    note("next: send the three files to every organisation and read them the genesis hash")


@consortium_app.command("verify")
def verify(
    directory: GenesisDir,
    expect: Expect,
    home: Annotated[Path | None, typer.Option("--home", help="This organisation's directory: check that its "
                                                             "keys are in the genesis.")] = None,
) -> None:
    """Check the genesis files against the announced hash (exit 4 when they differ) and this organisation's keys."""
    from careledger.net.ceremony import verify_genesis

    try:
        doc = verify_genesis(expand(directory), expect, expand(home) if home else None)
    except Exception as exc:
        _ceremony_failure(exc)

    def human() -> None:
        _show(doc)
        say("[green]verified[/]: the genesis is the one announced")

    emit({"verified": True, **doc}, human)


@consortium_app.command("setup")
def setup(
    home: OrgHome,
    directory: GenesisDir,
    expect: Expect,
    rpc: Annotated[str, typer.Option(help="HOST:PORT of CometBFT's RPC (keep it on loopback).")] = "127.0.0.1:26657",
    api: Annotated[str, typer.Option(help="HOST:PORT of the CareLedger HTTP API.")] = "127.0.0.1:8700",
    metrics: Annotated[str, typer.Option(help="HOST:PORT of CometBFT's Prometheus metrics.")] = "127.0.0.1:26660",
    p2p_listen: Annotated[str, typer.Option(help="Address the p2p port listens on.")] = "0.0.0.0",
    local: Annotated[bool, typer.Option(help="Peers on one machine (loopback addresses allowed).")] = False,
) -> None:
    """Verify the genesis, then configure this organisation's node from it (CometBFT and CareLedger homes)."""
    from careledger.net.ceremony import setup_node

    root = expand(home)
    try:
        node = setup_node(root, expand(directory), expect, rpc=rpc, api=api, metrics=metrics, p2p_listen=p2p_listen,
                          local=local)
    except Exception as exc:
        _ceremony_failure(exc)
    emit({"home": str(root), "org": node.org, "abci": node.abci, "p2p": node.p2p, "rpc": node.rpc, "api": node.api,
          "metrics": node.metrics},
         lambda: say(f"[green]node ready[/] for {node.org} in {root}"))
    note(f"start:  careledger abci node --node-dir {root}")
    note(f"        cometbft start --home {root / 'cometbft'}")


@consortium_app.command("embedded")
def embedded(
    file: Annotated[Path, typer.Option("--file", help="The consortium file (TOML).")],
    home: Annotated[Path, typer.Option("--home", help="The embedded node's home to create.")],
    api: Annotated[str, typer.Option(help="HOST:PORT the HTTP API listens on.")] = "127.0.0.1:8700",
) -> None:
    """Make a solo (embedded) node with the consortium's organisations, each with a new admin key in HOME/keys."""
    from careledger.net.ceremony import embedded_home

    doc = embedded_home(expand(file), expand(home), api=api)

    def human() -> None:
        say(f"[green]initialised[/] {doc['home']} (genesis {doc['genesis_hash']})")
        print_table(["organisation", "admin key file"], sorted(doc["keys"].items()))

    emit(doc, human)
    note(f"next: careledger node start --home {doc['home']}")
