"""The raw-file checks of ingest's audit, on hand-made heads: headers, emptied files, shrinkage."""

from __future__ import annotations

import pytest

from churn_transform.etl.audit import (
    DataLossError,
    RawHead,
    RawHeaderError,
    check_files_kept,
    check_headers,
    check_tables_kept,
    parse_head,
)
from churn_transform.schema import RAW_FILES


@pytest.mark.parametrize(
    "head",
    [b"msno,is_churn\na=,1\n", b"\xef\xbb\xbfmsno,is_churn\na=,1\n", b"msno,is_churn\r\na=,1\r\n"],
    ids=["plain", "bom", "crlf"],
)
def test_a_header_is_read_with_or_without_bom_and_crlf(head: bytes) -> None:
    assert parse_head(head) == RawHead(("msno", "is_churn"), True)


@pytest.mark.parametrize(
    ("head", "has_rows"),
    [
        (b"", False),
        (b"msno,is_churn\n", False),
        (b"msno,is_churn\n\n", False),
        (b"msno,is_churn", False),
        (b"msno,is_churn\na=,0", True),
    ],
)
def test_a_header_only_or_empty_file_has_no_rows(head: bytes, has_rows: bool) -> None:
    assert parse_head(head).has_rows is has_rows


def _heads(**columns: tuple[str, ...]) -> dict[str, RawHead]:
    return {
        name: RawHead(columns.get(name.split(".")[0], RAW_FILES[name]), True) for name in RAW_FILES
    }


def test_expected_headers_pass() -> None:
    check_headers(_heads())


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            ("msno", "bd", "city", "gender", "registered_via", "registration_init_time"),
            r"members_v3\.csv: expected columns \['msno', 'city', 'bd'.*"
            r"found \['msno', 'bd', 'city'.*"
            r"same columns in another order",
        ),
        (
            ("msno", "city", "bd", "gender", "registered_via"),
            r"missing \['registration_init_time'\]",
        ),
        (
            ("msno", "city", "bd", "gender", "registered_via", "registration_init_time", "x"),
            r"unexpected \['x'\]",
        ),
    ],
)
def test_a_header_mismatch_names_the_file_and_the_columns(
    columns: tuple[str, ...], message: str
) -> None:
    with pytest.raises(RawHeaderError, match=message):
        check_headers(_heads(members_v3=columns))


def test_an_emptied_file_is_refused_unless_allowed() -> None:
    heads = {"train.csv": RawHead(("msno", "is_churn"), False)}
    with pytest.raises(DataLossError, match="train.csv has no rows"):
        check_files_kept(heads, {"train.csv": {"has_rows": True}})
    assert check_files_kept(heads, {"train.csv": {"has_rows": False}}) == []  # empty before too
    assert check_files_kept(heads, {}) == []  # first snapshot
    assert len(check_files_kept(heads, {"train.csv": {"has_rows": True}}, allow_shrink=True)) == 1


@pytest.mark.parametrize(("now", "refused"), [(1000, False), (501, False), (499, True), (60, True)])
def test_a_file_cut_short_is_refused_by_its_bytes_naming_it(now: int, refused: bool) -> None:
    """Issue 30: the v2 files cut to one row each passed, their tables hardly shrinking."""
    heads = {"transactions_v2.csv": RawHead(("msno",), True)}
    previous = {"transactions_v2.csv": {"has_rows": True, "size": 1000}}
    sizes = {"transactions_v2.csv": now}
    if refused:
        with pytest.raises(DataLossError, match=r"transactions_v2.csv has [\d,]+ bytes where"):
            check_files_kept(heads, previous, sizes=sizes, max_shrink=0.5)
        warned = check_files_kept(heads, previous, True, sizes, 0.5)
        assert len(warned) == 1 and "transactions_v2.csv" in warned[0]
    else:
        assert check_files_kept(heads, previous, sizes=sizes, max_shrink=0.5) == []
    assert check_files_kept(heads, {}, sizes=sizes, max_shrink=0.5) == []  # first snapshot


@pytest.mark.parametrize(("now", "refused"), [(100, False), (51, False), (49, True), (0, True)])
def test_a_table_may_shrink_by_the_set_share(now: int, refused: bool) -> None:
    if refused:
        with pytest.raises(DataLossError, match=r"members has .* where .* had 100 \(down"):
            check_tables_kept({"members": now}, {"members": 100}, max_shrink=0.5)
    else:
        assert check_tables_kept({"members": now}, {"members": 100}, max_shrink=0.5) == []
