"""kcat-style output format strings (``consume -F``).

    %t topic     %p partition    %o offset      %T timestamp (ms, -1 if none)
    %k key       %s value        %h headers (k=v,k=v)
    %K key length (-1 for null)  %S value length (-1 for null)     %% a percent sign
    \\n newline   \\t tab   \\r carriage return   \\\\ backslash

A null key or value prints as nothing and a null header value as NULL, as kcat does.
:func:`parse` turns the text into tokens (literal bytes or a field letter);
:func:`compile_format` turns tokens into a function from a confluent-kafka Message to the
bytes to write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kcli.errors import BadInput

FIELDS = "tpokshTKS"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}

Token = bytes | str
"""Literal bytes, or a one-letter field name from FIELDS."""


def parse(fmt: str) -> list[Token]:
    """Tokens of a format string; adjacent literals are merged. Raises BadInput."""
    tokens: list[Token] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            tokens.append("".join(literal).encode("utf-8", "surrogateescape"))
            literal.clear()

    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt):
                raise BadInput("format string ends with a lone '%' (write %% for a percent)")
            nxt = fmt[i + 1]
            if nxt == "%":
                literal.append("%")
            elif nxt in FIELDS:
                flush()
                tokens.append(nxt)
            else:
                raise BadInput(f"unknown format token %{nxt} (known: "
                               f"{' '.join('%' + f for f in FIELDS)} %%)")
            i += 2
        elif ch == "\\" and i + 1 < len(fmt) and fmt[i + 1] in _ESCAPES:
            literal.append(_ESCAPES[fmt[i + 1]])
            i += 2
        else:
            literal.append(ch)
            i += 1
    flush()
    return tokens


def unparse(tokens: Sequence[Token]) -> str:
    """A format string that parses back to ``tokens`` (inverse of :func:`parse`)."""
    out: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            out.append("%" + token)
        else:
            text = token.decode("utf-8", "surrogateescape")
            out.append(text.replace("\\", "\\\\").replace("%", "%%")
                       .replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r"))
    return "".join(out)


def _headers(message: Any) -> bytes:
    headers = message.headers()
    if not headers:
        return b""
    return b",".join(k.encode("utf-8") + b"=" + (b"NULL" if v is None else v)
                     for k, v in headers)


def _timestamp(message: Any) -> bytes:
    ts_type, ts = message.timestamp()
    return str(ts if ts_type else -1).encode()


def _length(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


_GETTERS: dict[str, Callable[[Any], bytes]] = {
    "t": lambda m: m.topic().encode("utf-8"),
    "p": lambda m: str(m.partition()).encode(),
    "o": lambda m: str(m.offset()).encode(),
    "k": lambda m: m.key() or b"",
    "s": lambda m: m.value() or b"",
    "h": _headers,
    "T": _timestamp,
    "K": lambda m: _length(m.key()),
    "S": lambda m: _length(m.value()),
}


def _literal(text: bytes) -> Callable[[Any], bytes]:
    def literal(_message: Any) -> bytes:
        return text

    return literal


def compile_format(fmt: str | Sequence[Token]) -> Callable[[Any], bytes]:
    """A function rendering one Message with the format."""
    tokens = parse(fmt) if isinstance(fmt, str) else list(fmt)
    if len(tokens) == 2 and tokens[0] == "s" and isinstance(tokens[1], bytes):
        suffix = tokens[1]
        return lambda m: (m.value() or b"") + suffix
    parts: list[Callable[[Any], bytes]] = []
    for token in tokens:
        if isinstance(token, str):
            parts.append(_GETTERS[token])
        else:
            parts.append(_literal(token))

    def render(message: Any) -> bytes:
        return b"".join([part(message) for part in parts])

    return render
