"""Cross-check CareLedger's k-anonymity and l-diversity counts against pycanon (IFCA's checker).

Not part of `make test`: pycanon 1.3.6 pins exact versions of typer, numpy, pandas and more (typer
0.23.2 against this project's 0.29), so it cannot join the locked environment. Install it beside it
without its pins and run this script:

    pip install --target /tmp/pycanon --no-deps pycanon==1.3.6 pandas scipy tabulate beartype
    PYTHONPATH=/tmp/pycanon .venv/bin/python scripts/crosscheck_pycanon.py

It exits 0 when every release and 30 random tables agree (docs/research.md, "k-anonymity").
"""

from __future__ import annotations

import io
import random

import pandas as pd  # type: ignore[import-untyped]
from pycanon import anonymity  # type: ignore[import-untyped]

from careledger.contracts.research.layout import Anonymity, RequestedData
from careledger.research.config import vendored_config
from careledger.research.dataset import CSV_NAME
from careledger.research.kanon import k_of, l_of
from careledger.research.release import PatientData, ReleaseSpec, build_release
from careledger.research.synthetic import AS_OF_DAY, generate_patients


def release_k_and_l_agree_with_pycanon(n: int, l: int | None) -> None:  # noqa: E741
    patients = generate_patients(f"pycanon{n}", n, encounters=3)
    data = [PatientData(f"sp-{i:032x}", f"rcn-{i:024x}", tuple(p)) for i, p in enumerate(patients)]
    spec = ReleaseSpec("study-x", 1, "hospital", "ab" * 32, RequestedData(("Condition", "Observation", "Patient")),
                       Anonymity(l=l, sensitive_type="Condition" if l else None), AS_OF_DAY)
    built = build_release(data, spec, vendored_config(), b"k" * 32)
    df = pd.read_csv(io.StringIO(built.files[CSV_NAME].decode()), dtype=str, keep_default_na=False)
    qi = ["birth_year", "sex", "zip3"]
    assert anonymity.k_anonymity(df, qi) == built.report.k_achieved
    if l:
        assert anonymity.l_diversity(df, qi, ["sensitive"]) == built.report.l_achieved


def random_tables_agree_with_pycanon() -> None:
    r = random.Random(3)
    for _ in range(30):
        rows = [(str(r.randint(1940, 2000)), r.choice("FM"), r.choice(["980", "981", "021", "000"]))
                for _ in range(r.randint(10, 200))]
        sensitive = [r.choice("abcd") for _ in rows]
        df = pd.DataFrame(rows, columns=["b", "s", "z"])
        df["d"] = sensitive
        assert anonymity.k_anonymity(df, ["b", "s", "z"]) == k_of(rows)
        assert anonymity.l_diversity(df, ["b", "s", "z"], ["d"]) == l_of(rows, sensitive)


if __name__ == "__main__":
    for n, l in ((60, None), (150, 2), (300, 3)):  # noqa: E741
        release_k_and_l_agree_with_pycanon(n, l)
    random_tables_agree_with_pycanon()
    print("k and l agree with pycanon on 3 releases and 30 random tables")
