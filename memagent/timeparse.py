"""Reading time: timestamps given by callers, and time expressions inside questions.

``to_datetime`` turns what a caller passes (datetime, date, Unix time, ISO or
human-readable string such as LoCoMo's "1:56 pm on 8 May, 2023") into a
timezone-aware datetime, or raises ``TimestampError``.

``find_time_ranges`` finds expressions such as "last May", "two weeks ago",
"yesterday", "in 2022" or "8 May 2023" in a question and resolves them against
a reference time into event-time ranges.

>>> from datetime import datetime, timezone
>>> now = datetime(2023, 7, 10, tzinfo=timezone.utc)
>>> [r.start.date().isoformat() for r in find_time_ranges("What did I do last May?", now)]
['2023-05-01']
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from dateutil import parser as dateparser
from dateutil.relativedelta import relativedelta

from memagent.errors import TimestampError
from memagent.types import TimeRange

UTC = timezone.utc
_MIN_UNIX, _MAX_UNIX = -62_135_596_800, 253_402_300_799  # years 1..9999
MAX_TIMESTAMP_CHARS = 100  # "1:56 pm on Wednesday, 8 September, 2023 (UTC+05:30)" is about half that
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")  # control characters and lone surrogates

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "couple of": 2, "a few": 3, "few": 3, "several": 3,
}


def to_datetime(value: object, default_tz: timezone = UTC) -> datetime:
    """Read a caller's timestamp as an aware datetime; naive values get ``default_tz``.

    >>> to_datetime("1:56 pm on 8 May, 2023").isoformat()
    '2023-05-08T13:56:00+00:00'
    """
    return _in_range(_read(value, default_tz), value)


def _read(value: object, default_tz: timezone) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=default_tz)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=default_tz)
    if isinstance(value, bool):
        raise TimestampError(value, "a boolean is not a time")
    if isinstance(value, (int, float)):
        if not _MIN_UNIX <= value <= _MAX_UNIX:  # NaN fails this too
            raise TimestampError(value, "Unix time out of range")
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        if len(value) > MAX_TIMESTAMP_CHARS:
            raise TimestampError(value[:40] + "...", f"longer than {MAX_TIMESTAMP_CHARS} characters")
        if _CONTROL.search(value):
            raise TimestampError(value, "contains control characters")
        return _parse_string(value.strip(), default_tz)
    raise TimestampError(value, f"unsupported type {type(value).__name__}")


def _in_range(parsed: datetime, value: object) -> datetime:
    """A time that stays within years 1..9999 in UTC (where every store and every export can hold it)."""
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise TimestampError(value, "outside years 1 to 9999 in UTC") from None
    if not datetime.min.replace(tzinfo=UTC) < utc < datetime.max.replace(tzinfo=UTC):
        raise TimestampError(value, "outside years 1 to 9999 in UTC")
    return parsed


def _parse_string(text: str, default_tz: timezone) -> datetime:
    if not text:
        raise TimestampError(text, "empty string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_free_text(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=default_tz)


def _parse_free_text(text: str) -> datetime:
    # Parse twice with different defaults: a field that follows the default was
    # missing from the text. A timestamp must name at least year, month and day.
    first_default, second_default = datetime(2000, 1, 1), datetime(2001, 2, 2)
    try:
        first = dateparser.parse(text, fuzzy=True, default=first_default)
        second = dateparser.parse(text, fuzzy=True, default=second_default)
    except (ValueError, OverflowError) as exc:
        raise TimestampError(text, str(exc)) from None
    if (first.year, first.month, first.day) != (second.year, second.month, second.day):
        raise TimestampError(text, "it must name a year, a month and a day")
    return first


# --- time expressions inside questions -------------------------------------

_MONTH_NAMES = "|".join(sorted((m for m in MONTHS), key=len, reverse=True))
_NUM = (r"(?P<num>\d+|a couple of|couple of|a few|few|several|an|a|one|two|three|four|five|six|seven|eight|nine|ten|"
        r"eleven|twelve)")
_UNIT = r"(?P<unit>day|week|month|year)s?"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")),
    ("dmy", re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH_NAMES})\.?,?\s+(?P<y>\d{{4}})\b", re.I)),
    ("mdy", re.compile(
        rf"\b(?P<month>{_MONTH_NAMES})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b", re.I)),
    ("month_year", re.compile(rf"\b(?P<month>{_MONTH_NAMES})\.?,?\s+(?P<y>\d{{4}})\b", re.I)),
    ("ago", re.compile(rf"\b{_NUM}\s+{_UNIT}\s+ago\b", re.I)),
    ("relative_unit", re.compile(r"\b(?P<which>last|this|next|past)\s+(?P<unit>week|month|year|weekend)\b", re.I)),
    ("relative_day", re.compile(r"\b(?P<word>yesterday|today|tonight|tomorrow|last night)\b", re.I)),
    ("relative_weekday", re.compile(
        r"\b(?P<which>last|this|next|on)\s+"
        r"(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)),
    ("relative_month", re.compile(
        rf"\b(?P<which>last|this|next|in|during|since|of)\s+(?P<month>{_MONTH_NAMES})\b(?!\s+\d)", re.I)),
    ("year", re.compile(r"\b(?P<which>in|during|since|of|last|from)?\s*(?P<y>(?:19|20)\d{2})\b", re.I)),
]


def find_time_ranges(text: str, now: datetime, future: bool = False) -> list[TimeRange]:
    """Resolve the time expressions of ``text`` against ``now`` into event-time ranges.

    A bare month or weekday ("in January", "on Saturday") is read as the last one
    before ``now``, as questions about memories mean; ``future=True`` reads it as
    the next one, as in a plan ("In January I start a new job").
    """
    now = to_datetime(now)
    taken: list[tuple[int, int]] = []
    ranges: list[TimeRange] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            span = match.span()
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            resolved = _resolve(kind, match, now)
            if future and resolved is not None and kind in _AHEAD:
                resolved = _AHEAD[kind](match, now, resolved)
            if resolved is not None:
                taken.append(span)
                start, end = resolved
                ranges.append(TimeRange(start, end, match.group(0).strip()))
    return ranges


def _day(d: date, tz: tzinfo | None) -> datetime:
    return datetime.combine(d, time(), tzinfo=tz or UTC)


def _month_range(year: int, month: int, tz: tzinfo | None) -> tuple[datetime, datetime]:
    start = _day(date(year, month, 1), tz)
    return start, start + relativedelta(months=1)


def _resolve(kind: str, m: re.Match[str], now: datetime) -> tuple[datetime, datetime] | None:
    try:
        return _RESOLVERS[kind](m, now)
    except (ValueError, OverflowError, KeyError):
        return None


def _resolve_full_date(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    month = int(m.group("m")) if "m" in m.groupdict() else MONTHS[m.group("month").lower()]
    start = _day(date(int(m.group("y")), month, int(m.group("d"))), now.tzinfo)
    return start, start + timedelta(days=1)


def _resolve_month_year(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    return _month_range(int(m.group("y")), MONTHS[m.group("month").lower()], now.tzinfo)


def _resolve_ago(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    raw = m.group("num").lower()
    n = int(raw) if raw.isdigit() else NUMBER_WORDS[raw]
    unit = m.group("unit").lower()
    point = now - {"day": relativedelta(days=n), "week": relativedelta(weeks=n),
                   "month": relativedelta(months=n), "year": relativedelta(years=n)}[unit]
    # The further back, the vaguer people are: widen the window with the unit.
    slack = {"day": timedelta(days=1), "week": timedelta(days=4),
             "month": timedelta(days=16), "year": timedelta(days=183)}[unit]
    day = _day(point.date(), now.tzinfo)
    return day - slack, day + timedelta(days=1) + slack


def _resolve_relative_unit(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    which, unit = m.group("which").lower(), m.group("unit").lower()
    today = _day(now.date(), now.tzinfo)
    if which == "past":
        spans: dict[str, timedelta | relativedelta] = {"week": timedelta(days=7), "month": relativedelta(months=1),
                                                       "year": relativedelta(years=1), "weekend": timedelta(days=7)}
        delta = spans[unit]
        return today - delta, today + timedelta(days=1)
    shift = {"last": -1, "this": 0, "next": 1}[which]
    if unit in ("week", "weekend"):
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        if unit == "weekend":
            return monday + timedelta(days=5), monday + timedelta(days=7)
        return monday, monday + timedelta(days=7)
    if unit == "month":
        first = today.replace(day=1) + relativedelta(months=shift)
        return first, first + relativedelta(months=1)
    first = today.replace(month=1, day=1) + relativedelta(years=shift)
    return first, first + relativedelta(years=1)


def _resolve_relative_day(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    offset = {"yesterday": -1, "last night": -1, "today": 0, "tonight": 0, "tomorrow": 1}
    start = _day(now.date(), now.tzinfo) + timedelta(days=offset[m.group("word").lower()])
    return start, start + timedelta(days=1)


def _resolve_relative_weekday(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    which, target = m.group("which").lower(), WEEKDAYS[m.group("weekday").lower()]
    today = _day(now.date(), now.tzinfo)
    if which == "next":
        days = (target - today.weekday()) % 7 or 7
        start = today + timedelta(days=days)
    elif which == "this":
        start = today - timedelta(days=today.weekday()) + timedelta(days=target)
    else:  # last / on: the most recent such day before today
        days = (today.weekday() - target) % 7 or 7
        start = today - timedelta(days=days)
    return start, start + timedelta(days=1)


def _resolve_relative_month(m: re.Match[str], now: datetime) -> tuple[datetime, datetime] | None:
    which, name = m.group("which").lower(), m.group("month")
    if name.lower() == "may" and name != "May":
        return None  # "in may" is too often the verb
    month = MONTHS[name.lower()]
    year = now.year
    if which == "next":
        year += 1 if month <= now.month else 0
    elif which == "last":
        year -= 1 if month >= now.month else 0
    elif which != "this":
        year -= 1 if month > now.month else 0
    start, end = _month_range(year, month, now.tzinfo)
    if which == "since":
        return start, max(end, _day(now.date(), now.tzinfo) + timedelta(days=1))
    return start, end


def _resolve_year(m: re.Match[str], now: datetime) -> tuple[datetime, datetime]:
    year = int(m.group("y"))
    start = _day(date(year, 1, 1), now.tzinfo)
    if (m.group("which") or "").lower() == "since":
        return start, max(start + relativedelta(years=1), _day(now.date(), now.tzinfo) + timedelta(days=1))
    return start, start + relativedelta(years=1)


def _ahead_month(m: re.Match[str], now: datetime, past: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    if m.group("which").lower() in ("in", "during", "of") and past[1] <= now:
        return past[0] + relativedelta(years=1), past[1] + relativedelta(years=1)
    return past


def _ahead_weekday(m: re.Match[str], now: datetime, past: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    if m.group("which").lower() == "on" and past[1] <= now:
        return past[0] + timedelta(days=7), past[1] + timedelta(days=7)
    return past


_AHEAD = {"relative_month": _ahead_month, "relative_weekday": _ahead_weekday}

_RESOLVERS = {
    "iso": _resolve_full_date,
    "dmy": _resolve_full_date,
    "mdy": _resolve_full_date,
    "month_year": _resolve_month_year,
    "ago": _resolve_ago,
    "relative_unit": _resolve_relative_unit,
    "relative_day": _resolve_relative_day,
    "relative_weekday": _resolve_relative_weekday,
    "relative_month": _resolve_relative_month,
    "year": _resolve_year,
}
