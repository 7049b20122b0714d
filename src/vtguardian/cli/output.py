"""What the commands print: the two consoles, data as text, and JSON.

Everything printed may hold values from traffic (a URL path, a device name): no Rich
markup or emoji codes are read from it, and control characters are made visible
(``shown``) before they reach the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import orjson
from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=True, highlight=False, markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False, emoji=False)


def shown(value: object) -> str:
    """A value from data as terminal text: control and format characters (escape
    sequences, bidi overrides) are printed as their ``\\x1b`` / ``\\u202e`` escapes."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )


def styled(verdict: str | None) -> Text:
    """A verdict coloured by its level (as text, never markup)."""
    colour = {"malicious": "bold red", "suspicious": "yellow", "harmless": "green"}.get(
        verdict or ""
    )
    return Text(shown(verdict or "-"), style=colour or "")


def json_text(value: object, indent: bool = False) -> str:
    """``value`` as one line of JSON (or indented by two), ending in a newline."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else None).decode() + "\n"


def print_json(value: object, indent: bool = False) -> None:
    """Write ``value`` as JSON to stdout, as is: JSON escapes what it holds, Rich never sees it."""
    sys.stdout.write(json_text(value, indent))


def print_json_lines(values: Iterable[object]) -> None:
    """One JSON object per line (NDJSON), written as each value comes."""
    for value in values:
        print_json(value)
