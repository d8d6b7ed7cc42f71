"""Java .properties files, as Kafka's server.properties are written: ``key=value``,
``key: value`` or ``key value``; ``#`` and ``!`` comments; a backslash at the end of a
line continues it; ``\\t``, ``\\n``, ``\\uXXXX`` and escaped separators. Settings with
secrets (JAAS lines, key passwords) belong in such a file, not on a command line."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_PLAIN = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_LINE_END = re.compile(r"\r\n|\r|\n")


class PropertiesError(ValueError):
    """A line that is not a property; the message names it (by number, never its value)."""


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped.startswith("u") and len(escaped) == 5:
            return chr(int(escaped[1:], 16))
        return _PLAIN.get(escaped, escaped)

    return _ESCAPE.sub(one, text)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    # Java's line ends only (str.splitlines also splits at \x1c-\x1f, \v, \x85...);
    # leading space, tab and form feed are dropped, trailing ones kept
    for number, raw in enumerate(_LINE_END.split(text), 1):
        line = raw.lstrip(" \t\f")
        if pending is None and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        continued = trailing % 2 == 1  # an odd run of backslashes escapes the line end
        body = line[:-1] if continued else line
        start, joined = pending if pending is not None else (number, "")
        joined += body
        pending = (start, joined) if continued else None
        if not continued:
            lines.append((start, joined))
    if pending is not None:
        lines.append(pending)
    return lines


def parse_properties(text: str) -> dict[str, str]:
    """Every property of a file's text, later ones winning; PropertiesError says which
    line has no key."""
    found: dict[str, str] = {}
    for number, line in _logical_lines(text):
        index, key_end = 0, None
        while index < len(line):
            char = line[index]
            if char == "\\":
                index += 2
                continue
            if char in "=: \t":
                key_end = index
                break
            index += 1
        key_raw = line if key_end is None else line[:key_end]
        rest = "" if key_end is None else line[key_end:].lstrip(" \t")
        if key_end is not None and line[key_end] in " \t" and rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t")
        elif key_end is not None and line[key_end] in "=:":
            rest = line[key_end + 1:].lstrip(" \t")
        key = _unescape(key_raw)
        if not key:
            raise PropertiesError(f"line {number}: no key before the value")
        found[key] = _unescape(rest)
    return found


def _escape(text: str, key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char in "\t\n\r\f":
            out.append("\\" + {"\t": "t", "\n": "n", "\r": "r", "\f": "f"}[char])
        elif (key and char in "=: #!") or (index == 0 and char in " \f"):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def format_properties(settings: dict[str, str]) -> str:
    """A .properties text that :func:`parse_properties` (and Java) reads back as
    ``settings``."""
    return "".join(f"{_escape(key, True)}={_escape(value, False)}\n"
                   for key, value in settings.items())
