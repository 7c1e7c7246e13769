"""Size limits on a manifest's values, checked without recursion before anything recurses over them.

The loader, the identity hash, ``json`` and Redis's cjson all walk values recursively, and
tomllib parses inline tables recursively and keeps every prefix of a dotted key: a value
nested ~330 levels deep crashed ``fleet load`` (and the receiver) with RecursionError, and a
dotted key of 10,000 parts took 400 MB to parse. So: a long dotted key is refused before
parsing (:func:`long_dotted_key`), and every parsed value is cut to :data:`MAX_NESTING`
levels (:func:`bound_value`) before the rest of validation sees it.
"""

from __future__ import annotations

import re
from typing import Any

# How deep tables and lists may nest in one value (``hyper = {a = 1}`` is one level): far beyond
# any real hyperparameter table, far below where recursion fails.
MAX_NESTING = 32
# A dotted key or table header with more parts than this cannot name a value within MAX_NESTING
# (a header of 2 parts and a key of 33 reach the deepest one), and tomllib's memory grows with
# the square of the parts: refused before parsing.
MAX_KEY_PARTS = 2 * MAX_NESTING

# Strings (the four TOML kinds) and comments, whose dots are not key separators.
_STRING_OR_COMMENT = re.compile(r'"""(?:\\.|[^\\])*?"""|\'\'\'.*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*',
                                re.S)
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


def bound_value(value: Any) -> tuple[Any, bool]:
    """``value`` with every table or list nested deeper than MAX_NESTING emptied (in place), and
    whether anything was cut. Iterative: it never recurses however deep the value.

    The cut value keeps its type, so the loader's other checks still report what else is wrong
    without tripping over it; the loader refuses it in any case."""
    cut = False
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
    return value, cut
