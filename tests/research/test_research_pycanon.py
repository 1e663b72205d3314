"""Cross-check of k and l against pycanon (IFCA's k-anonymity checker), where it is installed.

pycanon 1.3.6 pins exact versions of typer, numpy, pandas and more (typer 0.23.2 against this
project's 0.29), so it cannot join the locked environment; install it beside it without its pins
(``pip install --target DIR --no-deps pycanon==1.3.6`` plus ``pandas``, ``scipy``, ``tabulate``,
``beartype``, with DIR on ``PYTHONPATH``) to run this check. Elsewhere it is skipped.
"""

from __future__ import annotations

import io
import random

import pytest

from careledger.contracts.research.layout import Anonymity, RequestedData
from careledger.research.config import vendored_config
from careledger.research.dataset import CSV_NAME
from careledger.research.kanon import k_of, l_of
from careledger.research.release import PatientData, ReleaseSpec, build_release
from careledger.research.synthetic import AS_OF_DAY, generate_patients

pd = pytest.importorskip("pandas")
anonymity = pytest.importorskip("pycanon.anonymity")


@pytest.mark.parametrize(("n", "l"), [(60, None), (150, 2), (300, 3)])
def test_release_k_and_l_agree_with_pycanon(n: int, l: int | None) -> None:  # noqa: E741
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


def test_random_tables_agree_with_pycanon() -> None:
    r = random.Random(3)
    for _ in range(30):
        rows = [(str(r.randint(1940, 2000)), r.choice("FM"), r.choice(["980", "981", "021", "000"]))
                for _ in range(r.randint(10, 200))]
        sensitive = [r.choice("abcd") for _ in rows]
        df = pd.DataFrame(rows, columns=["b", "s", "z"])
        df["d"] = sensitive
        assert anonymity.k_anonymity(df, ["b", "s", "z"]) == k_of(rows)
        assert anonymity.l_diversity(df, ["b", "s", "z"], ["d"]) == l_of(rows, sensitive)
