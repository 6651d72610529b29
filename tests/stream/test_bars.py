"""The bar every source yields and the stream carries: exact round trip through stream fields, clear refusals."""

import pytest

from stream.bars import BadBar, Bar

SPY = Bar("SPY", 1381152600000, 1, 168.1234, 168.2, 168.0, 168.15, 1200.0)


def test_a_bar_round_trips_through_stream_fields_exactly():
    fields = SPY.to_fields()
    assert fields["ts"] == "1381152600000" and fields["open"] == "168.1234"
    assert Bar.from_fields({k.encode(): v.encode() for k, v in fields.items()}) == SPY
    assert SPY.end_ms == 1381152601000


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"high": "168.0"}, "inconsistent prices"),
        ({"low": "168.2"}, "inconsistent prices"),
        ({"close": "nan"}, "not finite"),
        ({"open": "-1"}, "prices must be > 0"),
        ({"volume": "-5"}, "volume must be >= 0"),
        ({"ticker": "spy; DROP"}, "bad ticker"),
        ({"ts": "yesterday"}, "not a number"),
        ({"interval_s": "0"}, "interval_s must be > 0"),
    ],
)
def test_a_bad_bar_is_refused_with_its_reason(change, reason):
    with pytest.raises(BadBar, match=reason):
        Bar.from_fields({**SPY.to_fields(), **change})


def test_a_missing_field_is_named():
    fields = SPY.to_fields()
    del fields["volume"], fields["close"]
    with pytest.raises(BadBar, match=r"missing field.*close, volume"):
        Bar.from_fields(fields)
