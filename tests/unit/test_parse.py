"""A raw CSV block reads the same through Polars as through pyarrow, the reference: the same
values and types, or the same error naming the row and column; hostile blocks included."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from churn_transform.etl.silver.scatter import _arrow_parse, _polars_parse, parse_block

LOGS = "user_logs.csv"
GOOD = "a=,20170101,1,0,0,0,5,6,100.5\n"

#: Field values that parse, parse as null, need int64, or fail, in one or both readers.
INTEGERS = ["0", "7", "-3", "007", "3000000000", "99999999999999999999", "", "NA", "NULL", "nan"]
INTEGERS += [" 5", "5 ", "5\t", "5.0", "1e3", "x", "0x10", "true", "-0", "\u0663", '"5"', "5\r"]
FLOATS = ["100.5", ".5", "1.", "1e3", "1e400", "-0.0", "inf", "-inf", "NaN", "", "N/A", "1.0 "]
FLOATS += ["abc", "1e", "0x1p3", "1_0", '"1.5"', '"1,5"', "1.5\r"]
IDS = ["a=", "b/+=", "", "NA", "\u00fc=", "null", '"a="', 'a"b=', '"a,b="', "a\rb="]


def _same(block: bytes, first: bool) -> str:
    """Parse ``block`` both ways and say which: both failed, or both gave equal tables."""
    try:
        expected = _arrow_parse(block, LOGS, first)
    except pa.ArrowInvalid:
        expected = None
    try:
        got = parse_block(block, LOGS, first)
    except pa.ArrowInvalid:
        got = None
    assert (got is None) == (expected is None), block
    if expected is None:
        return "refused"
    assert got.schema == expected.schema, block
    assert got.to_pylist() == expected.to_pylist(), block
    return "read by polars" if _polars_parse(block, LOGS, first) is not None else "read by pyarrow"


def _field(draw: st.DrawFn, usual: str, others: list[str]) -> str:
    """Mostly a usual value, so that whole blocks often parse; else one of ``others``."""
    return draw(st.sampled_from([usual] * 6 * len(others) + others))


@st.composite
def blocks(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        shape = draw(st.sampled_from(["row"] * 6 + ["short", "long", "blank"]))
        if shape == "blank":
            lines.append("")
            continue
        fields = [_field(draw, "a=", IDS), _field(draw, "20170101", ["", "2017", "2017-01-01"])]
        fields += [_field(draw, "3", INTEGERS) for _ in range(6)]
        fields.append(_field(draw, "100.5", FLOATS))
        if shape == "short":
            fields = fields[: draw(st.integers(1, 8))]
        elif shape == "long":
            fields.append("9")
        lines.append(",".join(fields))
    newline = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    return text.encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks(), st.booleans())
def test_polars_reads_a_block_as_pyarrow_does(block: bytes, first: bool) -> None:
    if b",+" in block:  # the one difference kept: see test_a_leading_plus_is_read_by_polars
        return
    event(_same(block, first))  # every outcome occurs: pytest --hypothesis-show-statistics


@pytest.mark.parametrize(
    "block",
    [
        GOOD + "b=,20170101,1\n",  # a row with missing fields: pyarrow refuses it
        GOOD + "\nb=,20170101,1,0,0,0,5,6,\n",  # a blank line beside a null: pyarrow skips it
        GOOD.replace("\n", "\r") * 2,  # lone carriage returns end lines for pyarrow only
        GOOD + "b=,20170101,3000000000,0,0,0,5,6,1.0\n",  # int64: Polars refuses, pyarrow widens
        GOOD + 'b=,"20170102",2,0,0,0,5,6,"1,5"\n',  # quoted
        GOOD + "NA,20170101,1,0,0,0,5,6,1.0\n",  # null to pyarrow, a text to Polars
        GOOD + "b=,20170101,1,0,0,0,5,6,NaN\n",  # null to pyarrow, NaN to Polars
        b"\xff\xfe=,20170101,1,0,0,0,5,6,1.0\n".decode("latin-1"),  # not UTF-8 (as text)
    ],
)
def test_blocks_polars_cannot_vouch_for_go_to_pyarrow(block: str) -> None:
    raw = block.encode("latin-1") if block.startswith("\xff") else block.encode()
    assert _polars_parse(raw, LOGS, False) is None
    _same(raw, False)


def test_a_header_only_or_empty_block_reads_as_pyarrow_reads_it() -> None:
    header = b"msno,date,num_25,num_50,num_75,num_985,num_100,num_unq,total_secs\n"
    assert _same(header, True) == "read by pyarrow"  # no row: pyarrow may refuse it
    assert parse_block(header, LOGS, True).num_rows == 0
    with pytest.raises(pa.ArrowInvalid, match="Empty CSV"):
        parse_block(b"", LOGS, False)


def test_a_plain_block_is_read_by_polars_with_the_narrow_types() -> None:
    block = (GOOD + "b=,20170102,2,0,0,0,5,6,\n,20170103,,0,0,0,5,6,1.0\n").encode()
    assert _same(block, False) == "read by polars"  # nulls in the last column, rows whole
    rows = parse_block(block, LOGS, False)
    assert rows.schema.field("msno").type == pa.dictionary(pa.int32(), pa.string())
    assert rows.schema.field("num_25").type == pa.int32()
    assert rows["msno"].to_pylist() == ["a=", "b=", None]
    assert rows["total_secs"].to_pylist() == [100.5, None, 1.0]


def test_a_leading_plus_is_read_by_polars() -> None:
    """The one difference kept: "+5" is 5 to Polars; pyarrow refuses it."""
    block = (GOOD + "b=,20170101,+5,0,0,0,5,6,1.0\n").encode()
    assert parse_block(block, LOGS, False)["num_25"].to_pylist() == [1, 5]
    with pytest.raises(pa.ArrowInvalid, match="'\\+5'"):
        _arrow_parse(block, LOGS, False)
