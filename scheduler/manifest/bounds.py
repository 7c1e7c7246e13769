"""Size limits on a manifest's values, checked without recursion before anything recurses over them.

The loader, the identity hash, ``json`` and Redis's cjson all walk values recursively, and
tomllib parses inline tables recursively and keeps every prefix of a dotted key: a value
nested ~330 levels deep crashed ``fleet load`` (and the receiver) with RecursionError, and a
dotted key of 10,000 parts took 400 MB to parse. Python's int-to-text conversion refuses
more than 4300 digits, which a hex literal reaches in a few kilobytes. So: a dotted key is
refused before parsing (:func:`long_dotted_key`), and every parsed value is cut to
:data:`MAX_NESTING` levels and its integers to TOML's 64 bits (:func:`bound_value`) before
the rest of validation sees it.
"""

from __future__ import annotations

import re
from typing import Any

# How deep tables and lists may nest in one value (``hyper = {a = 1}`` is one level): far beyond
# any real hyperparameter table, far below where recursion fails.
MAX_NESTING = 32
# TOML's integers are 64-bit (the spec says an implementation must refuse the rest; tomllib does not).
INT_RANGE = (-2**63, 2**63 - 1)
# A dotted key or table header with more parts than this cannot name a value within MAX_NESTING
# (a header of 2 parts and a key of 33 reach the deepest one), and tomllib's memory grows with
# the square of the parts: refused before parsing.
MAX_KEY_PARTS = 2 * MAX_NESTING

# Strings (the four TOML kinds) and comments, whose dots are not key separators. Written as
# unrolled loops (a run of ordinary characters, then one escape or lone quote, repeated), not
# lazy per-character alternations: ten times faster on a 100 KB string.
_STRING_OR_COMMENT = re.compile(r'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
                                r"|'''[^']*(?:'(?!'')[^']*)*'''"
                                r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
                                r"|'[^'\n]*'|#[^\n]*", re.S)
# A key of two or more parts (bare, or a string already replaced by \0). Possessive and anchored
# at a part's start, so the scan stays linear on any text.
_PART = r"(?:[A-Za-z0-9_-]++|\x00)"
_DOTTED = re.compile(rf"(?<![A-Za-z0-9_\x00-]){_PART}(?:[ \t]*+\.[ \t]*+{_PART})++")


def long_dotted_key(text: str) -> int | None:
    """The line of the first dotted key (or table header) of more than MAX_KEY_PARTS parts, or None.

    Other dots (in floats, dates) come one to a run, so only a key can reach the limit."""
    def blank(match: re.Match) -> str:
        found = match.group()
        return "" if found.startswith("#") else "\x00" + "\n" * found.count("\n")  # keep line numbers

    keys_only = _STRING_OR_COMMENT.sub(blank, text)
    for match in _DOTTED.finditer(keys_only):
        if match.group().count(".") >= MAX_KEY_PARTS:
            return keys_only.count("\n", 0, match.start()) + 1
    return None


def bound_value(value: Any) -> tuple[Any, bool, bool]:
    """``value`` with every table or list nested deeper than MAX_NESTING emptied and every integer
    outside INT_RANGE clamped to it (containers are changed in place); and whether anything was
    cut, and whether anything was clamped. Iterative: it never recurses however deep the value.

    The cut and clamped value keeps its type and stays out of range, so the loader's other checks
    still report what else is wrong without tripping over it; the loader refuses it in any case."""
    cut = clamped = False
    if _out_of_range(value):
        return _clamp(value), False, True
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, level = stack.pop()
        for key, child in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(child, (dict, list)):
                if level >= MAX_NESTING:
                    node[key] = type(child)()
                    cut = True
                else:
                    stack.append((child, level + 1))
            elif _out_of_range(child):
                node[key] = _clamp(child)
                clamped = True
    return value, cut, clamped


def _out_of_range(value: Any) -> bool:
    return type(value) is int and not INT_RANGE[0] <= value <= INT_RANGE[1]


def _clamp(value: int) -> int:
    return min(max(value, INT_RANGE[0]), INT_RANGE[1])
