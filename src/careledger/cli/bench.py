"""``careledger bench``: throughput and latency benchmarks, reported as ratios measured in one run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from careledger.cli.common import console, err_console, fail, print_json


def bench(
    engine: Annotated[str, typer.Option(help="Engine to drive: solo (embedded).")] = "solo",
    txs: Annotated[int, typer.Option(help="Transactions in the peak-throughput phase.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Measure committed tx/s, p50/p99 submission-to-commit latency and the machine's Ed25519 limit."""
    if engine != "solo":
        fail(f"engine {engine!r} is not available in this release")
    from careledger.bench.solo import bench_solo

    def progress(msg: str) -> None:
        if not as_json:
            err_console.print(f"[dim]… {msg}[/]")

    result = bench_solo(txs=txs, seed=seed, progress=progress)
    if as_json:
        print_json(result)
        return
    table = Table("measure", "value", title="CareLedger solo engine")
    for key, value in result.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int | float) else str(value))
    console.print(table)
