"""Points in time on the command line: ISO-8601 text to epoch milliseconds."""

from __future__ import annotations

from datetime import datetime


def parse_time_ms(text: str) -> int:
    """'2024-05-01T12:00:00Z' (or any ISO-8601 form Python reads; a time without a zone
    is local time) -> milliseconds since the epoch. Raises ValueError."""
    text = text.strip()
    if not text or text[0] in "+-" or text.isdigit():
        raise ValueError(f"not an ISO-8601 time: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # naive: the user's local time
    return int(moment.timestamp() * 1000)


def looks_like_time(text: str) -> bool:
    """Whether ``text`` parses as an ISO-8601 time."""
    try:
        parse_time_ms(text)
    except ValueError:
        return False
    return True
