"""The README's shell blocks as data: which commands to run, what they should print.

A fenced ```sh block whose previous non-blank line is ``<!-- run -->`` is runnable;
``<!-- pending: CMD.. -->`` marks a block that will be runnable once the top-level kcli
commands CMD.. exist (they are built on other branches). In a runnable or pending block,
lines starting with ``$ `` are commands and the lines after one are its expected
output; a block with no ``$`` lines is a script, one command per line (``#`` comments
and blank lines skipped). A line ending in a backslash continues on the next one.

Expected output matches loosely: each expected line must match a distinct line of the
output, in any order, with runs of spaces matching any spacing and ``...`` matching
anything.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

RUN_MARKER = "<!-- run -->"
_PENDING_MARKER = re.compile(r"^<!-- pending: ([a-z][a-z0-9 -]*) -->$")
_FENCE = re.compile(r"^```(\w*)\s*$")
_SUBSHELL = re.compile(r"\$\((kcli\b[^()]*)\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Command:
    """One command line of the README and the output shown under it."""

    line: int
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """A fenced shell block."""

    line: int
    runnable: bool
    commands: list[Command]
    pending: tuple[str, ...] = ()
    """The top-level commands a pending block waits for (empty for other blocks)."""


def blocks(markdown: str) -> list[Block]:
    """Every ```sh block, in order."""
    out: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    previous = ""
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if match.group(1) == "sh":
            pending = _PENDING_MARKER.match(previous)
            out.append(Block(start + 1, previous == RUN_MARKER, _commands(body, start + 2),
                             tuple(pending.group(1).split()) if pending else ()))
        previous = "```"
    return out


def _commands(body: list[str], first_line: int) -> list[Command]:
    prompted = any(line.startswith("$ ") for line in body)
    commands: list[Command] = []
    current: Command | None = None
    continuing = False
    for offset, raw in enumerate(body):
        if continuing and current is not None:
            current.text += "\n" + raw
            continuing = raw.endswith("\\")
            continue
        if prompted and raw.startswith("$ "):
            current = Command(first_line + offset, raw[2:])
            commands.append(current)
        elif prompted:
            if current is not None and raw.strip():
                current.expected.append(raw)
            continue
        elif raw.strip() and not raw.lstrip().startswith("#"):
            current = Command(first_line + offset, raw.strip())
            commands.append(current)
        else:
            continue
        continuing = current.text.endswith("\\")
    return commands


def kcli_invocations(command: str) -> list[list[str]]:
    """The argv of every kcli run by a shell command line: in pipelines, lists, after
    VAR=value assignments, and inside $(...)."""
    found: list[list[str]] = []
    command = command.replace("\\\n", " ")
    for inner in _SUBSHELL.findall(command):
        found += kcli_invocations(inner)
    lexer = shlex.shlex(_SUBSHELL.sub("x", command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set("|&;<>()"):
            while words and _ASSIGNMENT.match(words[0]):
                words.pop(0)
            if words and words[0] == "kcli":
                found.append(words)
            words = []
            if token in (">", "<", ">>", "2>", "&>"):
                words = ["<redirect>"]  # the next word is a file, not a command
        elif words == ["<redirect>"]:
            words = []
        else:
            words.append(token)
    return found


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.strip().split("...")]
    body = ".*".join(parts)
    body = re.sub(r"(\\ )+", r"\\s+", body)
    return re.compile(body)


def unmatched(expected: list[str], output: str) -> list[str]:
    """The expected lines no distinct output line matches."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    used: set[int] = set()
    missing = []
    for want in expected:
        pattern = _pattern(want)
        for number, line in enumerate(lines):
            if number not in used and pattern.fullmatch(line):
                used.add(number)
                break
        else:
            missing.append(want)
    return missing
