import pandas as pd
import pytest

from stockpred_core.data import calendar


def test_sessions_match_the_recorded_nyse_open_dates(shared_data):
    # The recording's history ends with its price data on 2023-12-28; later lines are a projection that, for
    # example, opens on 2026-01-01 and on the 2025-01-09 day of mourning, so only the recorded years are compared.
    recorded = pd.to_datetime((shared_data / "market" / "nyse_all_open_dates.txt").read_text().split())
    recorded = recorded[(recorded >= "2013-01-02") & (recorded <= "2023-12-28")]
    ours = calendar.sessions("2013-01-02", "2023-12-28")
    assert list(ours) == list(recorded)


def test_holidays_and_helpers():
    assert not calendar.is_session("2024-07-04")  # Independence Day, a Thursday
    assert not calendar.is_session("2024-07-06")  # Saturday
    assert calendar.is_session("2024-07-05")
    assert list(calendar.previous_sessions("2024-07-08", 3)) == list(
        pd.to_datetime(["2024-07-02", "2024-07-03", "2024-07-05"])
    )
    assert calendar.add_sessions("2024-07-03", 1) == pd.Timestamp("2024-07-05")


def test_past_the_calendar_is_a_clear_error():
    with pytest.raises(ValueError, match="past the exchange calendar"):
        calendar.sessions("2024-01-01", "2099-01-01")
