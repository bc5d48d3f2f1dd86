"""Times as the people who read them expect: local, with their offset."""

from __future__ import annotations

import datetime as dt


def local_text(t: dt.datetime) -> str:
    """`t` in this machine's local time with its UTC offset, e.g. "2026-11-30 20:15（UTC+08:00）".
    A naive time is taken as local already."""
    t = t.astimezone()
    offset = t.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{t:%Y-%m-%d %H:%M}（UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}）"


def local_date(t: dt.datetime) -> str:
    """The local calendar date of `t`, e.g. "2026-11-30"."""
    return f"{t.astimezone():%Y-%m-%d}"
