"""The shared page-cursor codecs (backends/page_cursor.py): what one makes, it reads back typed;
anything else is BadCursor (exit 2), never a server error."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from backends.errors import BadCursor, BadRequest
from backends.page_cursor import (ListCursor, ZsetCursor, decode_position, encode_position, pack_keys,
                                  unpack_keys)

KINDS = ("int", "time", "uuid", "str")
times = st.datetimes(timezones=st.just(dt.timezone.utc))


@given(st.integers(), times, st.uuids(), st.text())
def test_keys_round_trip_typed(n, t, u, s):
    assert unpack_keys(pack_keys("failed", [n, t, u, s]), "failed", KINDS) == [n, t, u, s]


@pytest.mark.parametrize("values,kinds", [
    ([1], ("int", "int")),  # wrong width
    (["x"], ("int",)),
    ([True], ("int",)),
    ([1], ("time",)),
    (["not-a-uuid"], ("uuid",)),
    ([1], ("str",)),
])
def test_keys_of_the_wrong_shape_are_bad_cursors(values, kinds):
    with pytest.raises(BadCursor):
        unpack_keys(pack_keys("waiting", values), "waiting", kinds)


def test_keys_of_another_state_or_garbage_are_bad_cursors():
    cursor = pack_keys("waiting", [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)])
    for bad, state in ((cursor, "failed"), ("!!!", "waiting"), ("e30", "waiting"), ("", "waiting")):
        with pytest.raises(BadRequest):
            unpack_keys(bad, state, ("time",))
    naive = pack_keys("waiting", [{"t": "2024-01-01T00:00:00"}])
    with pytest.raises(BadCursor):
        unpack_keys(naive, "waiting", ("time",))


def test_nullable_kinds_keep_null_and_others_refuse_it():
    assert unpack_keys(pack_keys("failed", [None, 3]), "failed", ("int?", "int?")) == [None, 3]
    with pytest.raises(BadCursor):
        unpack_keys(pack_keys("failed", [None]), "failed", ("int",))


@given(st.integers(0, 50), st.one_of(st.none(), st.builds(ListCursor, st.integers(0)),
                                     st.builds(ZsetCursor, st.floats(allow_nan=False), st.integers(0))))
def test_positions_round_trip(segment, pos):
    assert decode_position(encode_position(segment, pos)) == (segment, pos)


@pytest.mark.parametrize("bad", ["x", "0:l:-1", "0:z:nan:0", "0:q:1", "-1:l:0", "0:z:1.0", "0:l:1:2"])
def test_positions_of_the_wrong_shape_are_bad_cursors(bad):
    with pytest.raises(BadCursor):
        decode_position(bad)
