from datetime import date, datetime, timedelta, timezone

import pytest

from memagent.errors import InvalidInputError, TimestampError
from memagent.timeparse import find_time_ranges, to_datetime

UTC = timezone.utc
NOW = datetime(2023, 7, 12, 15, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize("value, expected", [
    ("2023-05-08T10:00:00+02:00", datetime(2023, 5, 8, 8, 0, tzinfo=UTC)),
    ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56, tzinfo=UTC)),
    ("2023/05/20 (Sat) 02:21", datetime(2023, 5, 20, 2, 21, tzinfo=UTC)),
    (datetime(2023, 1, 1), datetime(2023, 1, 1, tzinfo=UTC)),
    (date(2023, 1, 2), datetime(2023, 1, 2, tzinfo=UTC)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_to_datetime_reads_common_forms(value, expected):
    parsed = to_datetime(value)
    assert parsed.tzinfo is not None
    assert parsed == expected


@pytest.mark.parametrize("value", ["", "hello", "next tuesday-ish", "10", True, 1e20, object(), "May 8"])
def test_to_datetime_rejects_what_names_no_day(value):
    with pytest.raises(TimestampError) as info:
        to_datetime(value)
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)


def _days(text):
    return [(r.start.date(), (r.end - r.start).days) for r in find_time_ranges(text, NOW)]


def test_last_month_name_is_most_recent_past_occurrence():
    assert _days("What did I do last May?") == [(date(2023, 5, 1), 31)]
    assert _days("What did I do last August?") == [(date(2022, 8, 1), 31)]


def test_month_with_year_and_full_dates():
    assert _days("in May 2022") == [(date(2022, 5, 1), 31)]
    assert _days("on 8 May 2023") == [(date(2023, 5, 8), 1)]
    assert _days("on May 8, 2023") == [(date(2023, 5, 8), 1)]
    assert _days("on 2023-05-08") == [(date(2023, 5, 8), 1)]


def test_relative_days_and_weeks():
    assert _days("yesterday") == [(date(2023, 7, 11), 1)]
    assert _days("last week") == [(date(2023, 7, 3), 7)]
    assert _days("last Friday") == [(date(2023, 7, 7), 1)]
    (start, end), = [(r.start, r.end) for r in find_time_ranges("two weeks ago", NOW)]
    assert start <= datetime(2023, 6, 28, tzinfo=UTC) < end
    assert end - start < timedelta(days=10)


def test_modal_may_is_not_a_month():
    assert find_time_ranges("in may be useful", NOW) == []
    assert find_time_ranges("What is my dog's name?", NOW) == []


def test_year_alone():
    assert _days("What happened in 2022?") == [(date(2022, 1, 1), 365)]
