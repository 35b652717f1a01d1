"""What a question says about time: which version of a story it asks for.

"How many people work on it now?" asks for the newest report (so does a question that says
nothing: the newest leads by default); "How many were there in March?" or "on Jan. 14" asks for
the report of that period; "first", "originally", "at first" for the earliest; "before the
update" for the one before the newest. A period works like ``--since/--until`` on the story's
versions: it chooses which one leads, and the others are still shown, dated.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
MONTHS["sept"] = 9
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|"
    r"nov(?:ember)?|dec(?:ember)?)"
)
_DAY = re.compile(r"\b(?:on|as of|by)\s+" + _MONTH + r"\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b", re.I)
_IN_MONTH = re.compile(
    r"\b(?:in|during|as of|by)\s+(?:early\s+|late\s+|mid-?)?" + _MONTH + r"\.?(?:\s+(\d{4}))?\b", re.I
)
_IN_YEAR = re.compile(r"\b(?:in|during)\s+(\d{4})\b", re.I)
_RELATIVE = re.compile(r"\b(last|this)\s+(year|month)\b", re.I)
_LATEST = re.compile(r"\b(now|latest|currently|current|still|so far|today|most recent|newest|as things stand)\b", re.I)
# "first" as "when first said", not "the first redundancies".
_EARLIEST = re.compile(
    r"\b(originally|initially|at first|at the start|in the first report|first (?:said|say|says|reported|report|"
    r"announced|due|expected|planned|proposed|put|given|estimated|told|set))\b",
    re.I,
)
_BEFORE = re.compile(r"\b(before the (?:latest |last )?update|previously|earlier report|before it was updated)\b", re.I)
_UNTIL = re.compile(r"\b(?:as of|by)\b", re.I)


@dataclass(frozen=True)
class Period:
    """A span of publication dates: a day, a month (of a given year or of any year) or a year."""

    year: int | None = None
    month: int | None = None
    day: int | None = None
    until: bool = False  # "as of June 5", "by June 2": that day or before it

    def holds(self, iso: str | None) -> bool:
        if not iso:
            return False
        when = date.fromisoformat(iso)
        if self.until:
            year, month = self.year or when.year, self.month or 12
            return (when.year, when.month, when.day) <= (year, month, self.day or _last_day(year, month))
        return (
            (self.year is None or when.year == self.year)
            and (self.month is None or when.month == self.month)
            and (self.day is None or when.day == self.day)
        )

    def describe(self) -> str:
        month = calendar.month_name[self.month] if self.month else ""
        if self.day:
            text = f"{month} {self.day}" + (f", {self.year}" if self.year else "")
        elif self.month:
            text = f"{month} {self.year}" if self.year else month
        else:
            text = str(self.year)
        return f"up to {text}" if self.until else text


@dataclass(frozen=True)
class TimeAsked:
    """Which version of a story a question asks for: "latest" (the default), "earliest",
    "before" (the one before the newest) or "period"."""

    want: str = "latest"
    period: Period | None = None
    said: str = ""  # the words that asked, for the answer's note

    @property
    def explicit(self) -> bool:
        return bool(self.said)


def time_asked(question: str, today: date | None = None) -> TimeAsked:
    today = today or date.today()
    if found := _DAY.search(question):
        year = int(found.group(3)) if found.group(3) else None
        period = Period(year, MONTHS[found.group(1).lower()], int(found.group(2)), until=_is_until(found.group(0)))
        return TimeAsked("period", period, found.group(0))
    if found := _IN_MONTH.search(question):
        year = int(found.group(2)) if found.group(2) else None
        period = Period(year, MONTHS[found.group(1).lower()], until=_is_until(found.group(0)))
        return TimeAsked("period", period, found.group(0))
    if found := _IN_YEAR.search(question):
        return TimeAsked("period", Period(int(found.group(1))), found.group(0))
    if found := _RELATIVE.search(question):
        which, unit = found.group(1).lower(), found.group(2).lower()
        if unit == "year":
            period = Period(today.year - (which == "last"))
        else:
            month = today.month - (which == "last")
            period = Period(today.year - (month == 0), month or 12)
        return TimeAsked("period", period, found.group(0))
    if found := _BEFORE.search(question):
        return TimeAsked("before", None, found.group(0))
    if found := _EARLIEST.search(question):
        return TimeAsked("earliest", None, found.group(0))
    if found := _LATEST.search(question):
        return TimeAsked("latest", None, found.group(0))
    return TimeAsked()


def _is_until(words: str) -> bool:
    return bool(_UNTIL.match(words))


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


_AP_MONTHS = ("Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec.")


def news_date(iso: str | None) -> str:
    """A date as news writes it: "Sept. 18, 2026"; "no date" when there is none."""
    if not iso:
        return "no date"
    when = date.fromisoformat(iso)
    return f"{_AP_MONTHS[when.month - 1]} {when.day}, {when.year}"
