"""Edit tables: the synthetic set shipped, the CMS file layouts (read from files written here, with
made-up codes: no CPT content), versions and digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from careledger.claims.content import day_of
from careledger.claims.edits import (
    CMS_SYSTEMS,
    EditTableInvalid,
    EditTables,
    MueEdit,
    PtpEdit,
    cms_edit_tables,
    load_cms_mue,
    load_cms_ptp,
    synthetic_tables,
)
from careledger.core.errors import Code

# The CMS PTP text layout: notice lines, a two-line header, then tab-separated rows.
PTP_TXT = (
    "Notice: this file is a test fixture written for CareLedger; codes are made up.\n"
    "\n"
    "Column 1\tColumn 2\t*=in existence prior to 1996\tEffective\tDeletion\tModifier\tPTP Edit Rationale\n"
    "\t\t\tDate\tDate\t0=not allowed\t\n"
    "\t\t\t\t*=no data\t1=allowed\t\n"
    "ZZ101\tZZ102\t*\t19960101\t*\t0\tMisuse of column two code with column one code\n"
    "ZZ101\tZZ103\t\t20200401\t20230101\t1\tStandards of medical / surgical services\n"
    "ZZ104\tZZ105\t\t20210101\t*\t9\tMutually exclusive procedures\n"
)
# The CMS MUE CSV layout: notice lines, a header, then rows with the MAI as text.
MUE_CSV = (
    '"Test fixture written for CareLedger; codes are made up."\n'
    '"HCPCS/CPT Code","Practitioner Services MUE Values","MUE Adjudication Indicator","MUE Rationale"\n'
    'ZZ101,1,"1 Line Edit","Anatomic consideration"\n'
    'ZZ102,4,"2 Date of Service Edit: Policy","Nature of Service/Procedure"\n'
    'ZZ103,2,"3 Date of Service Edit: Clinical","Clinical: Data"\n'
)


def test_the_synthetic_set_has_every_indicator_and_no_cpt() -> None:
    t = synthetic_tables()
    assert (t.name, t.version, t.effective_day) == ("synthetic-practitioner", "2000.1", day_of("2000-01-01"))
    assert {e.modifier_indicator for e in t.ptp} == {0, 1, 9}
    assert {m.mai for m in t.mue} == {1, 2, 3}
    assert "http://www.ama-assn.org/go/cpt" not in t.systems
    assert len(t.digest) == 64 and synthetic_tables().digest == t.digest
    assert EditTables.from_json(t.to_json()).digest == t.digest


def test_in_force_boundaries() -> None:
    e = PtpEdit("ZZ005", "ZZ006", day_of("2000-01-01"), day_of("2025-07-01"), 0)
    assert not e.in_force(day_of("1999-12-31"))
    assert e.in_force(day_of("2000-01-01")) and e.in_force(day_of("2025-06-30"))
    assert not e.in_force(day_of("2025-07-01"))
    assert not PtpEdit("A", "B", 0, None, 9).in_force(10)


def test_cms_layouts(tmp_path: Path) -> None:
    (tmp_path / "ccipra-test-f1.txt").write_bytes(PTP_TXT.encode("latin-1"))
    (tmp_path / "MUE_Practitioner_test.csv").write_text(MUE_CSV, encoding="latin-1")
    ptp = load_cms_ptp(tmp_path / "ccipra-test-f1.txt")
    assert ptp == [PtpEdit("ZZ101", "ZZ102", day_of("1996-01-01"), None, 0),
                   PtpEdit("ZZ101", "ZZ103", day_of("2020-04-01"), day_of("2023-01-01"), 1),
                   PtpEdit("ZZ104", "ZZ105", day_of("2021-01-01"), None, 9)]
    mue = load_cms_mue(tmp_path / "MUE_Practitioner_test.csv")
    assert mue == [MueEdit("ZZ101", 1, 1), MueEdit("ZZ102", 4, 2), MueEdit("ZZ103", 2, 3)]
    t = cms_edit_tables("cms-practitioner", "2025Q1", day_of("2025-01-01"), [tmp_path / "ccipra-test-f1.txt"],
                        [tmp_path / "MUE_Practitioner_test.csv"])
    assert t.systems == tuple(sorted(CMS_SYSTEMS)) and t.source == "cms"
    assert t.ptp_with_column2("ZZ103")[0].modifier_indicator == 1 and t.mue_for("ZZ102") == MueEdit("ZZ102", 4, 2)
    # the same edits in another order, another file split: the same table and digest
    again = EditTables.build("cms-practitioner", "2025Q1", day_of("2025-01-01"), "cms", CMS_SYSTEMS,
                             reversed(ptp), reversed(mue))
    assert again.digest == t.digest


@pytest.mark.parametrize(("text", "loader"), [
    (PTP_TXT + "ZZ106\tZZ107\t\t2021-01-01\t*\t0\tbad date\n", load_cms_ptp),
    (PTP_TXT + "ZZ106\tZZ107\t\t20210101\t*\t2\tbad indicator\n", load_cms_ptp),
    (MUE_CSV + 'ZZ104,two,"2 Date of Service Edit: Policy",x\n', load_cms_mue),
    (MUE_CSV + 'ZZ104,2,"4 Something",x\n', load_cms_mue),
])
def test_bad_cms_rows_name_their_line(tmp_path: Path, text: str, loader: object) -> None:
    path = tmp_path / "edits.txt"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(EditTableInvalid) as exc:
        loader(path)  # type: ignore[operator]
    assert exc.value.code == Code.EDIT_TABLE_INVALID
    assert f"line {text.count(chr(10))}" in exc.value.message


@pytest.mark.parametrize(("ptp", "mue"), [
    ([PtpEdit("A", "B", 5, None, 3)], []),
    ([PtpEdit("A", "B", 5, 4, 0)], []),
    ([PtpEdit("A", "B", 5, None, 0), PtpEdit("A", "B", 5, None, 1)], []),
    ([], [MueEdit("A", 1, 4)]),
    ([], [MueEdit("A", 1, 1), MueEdit("A", 2, 2)]),
])
def test_bad_tables(ptp: list[PtpEdit], mue: list[MueEdit]) -> None:
    with pytest.raises(EditTableInvalid):
        EditTables.build("test", "1", 0, "synthetic", (), ptp, mue)
    if len(ptp) + len(mue) > 1:  # a repeat: each row alone is fine
        assert EditTables.build("test", "1", 0, "synthetic", (), ptp[:1], mue[:1]).name == "test"


def test_names_and_versions() -> None:
    with pytest.raises(EditTableInvalid):
        EditTables.build("Bad Name", "1", 0, "synthetic", (), (), ())
    with pytest.raises(EditTableInvalid):
        EditTables.build("good", "", 0, "synthetic", (), (), ())
