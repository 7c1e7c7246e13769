"""Filling a job's ``command`` placeholders: one rule for the loader and the worker.

The worker fills each argument when an attempt starts; the loader fills it the same way
(the job's real fields, stand-ins for the runtime values) so an argument the worker could
not fill is a manifest error, not a failure of every attempt. Format strings can walk
attributes: ``{after.__init__.__globals__[os].environ}`` reached the worker's environment,
Redis password included. So the only attribute read allowed is
``{after.<job>.output_dir}``; ``{field[key]}`` indexing stays.
"""

from __future__ import annotations

import _string  # the field-name parser string.Formatter itself uses
import re
import string
from typing import Any, Mapping

# Placeholders a command may use besides the job's own fields.
RUNTIME_PLACEHOLDERS = frozenset({"job_id", "output_dir", "attempt", "after"})
AFTER_FORM = "{after.<job>.output_dir} with <job> listed in this job's after"
# The largest width or precision a format spec may ask for: {model:>400000000} made every load
# (and the receiver's every reload) allocate 400 MB to fill one argument.
MAX_FORMAT_NUMBER = 1024
_DIGITS = re.compile(r"[0-9]+")


class CommandError(ValueError):
    """An argument the worker could not pass; ``unknown`` is the placeholder no field has, when that is why."""

    def __init__(self, message: str, unknown: str | None = None):
        super().__init__(message)
        self.unknown = unknown


def runtime_fields(spec: Mapping[str, Any], job_id: str, out_dir: str, attempt: int) -> dict[str, Any]:
    """What placeholders may name: the job's fields, with the runtime values set over them."""
    fields = dict(spec)
    fields.update(job_id=job_id, output_dir=out_dir, attempt=attempt)
    return fields


def fill_arg(arg: str, fields: Mapping[str, Any], parent_dirs: Mapping[str, str]) -> str:
    """``arg`` with its placeholders filled from ``fields`` (see :func:`runtime_fields`) and
    ``parent_dirs`` (each finished ``after`` job's output dir); raises CommandError.

    A NUL byte is refused here too: exec cannot pass one, and the work horse died on it."""
    try:  # most arguments hold no braces: skip the pure-Python formatter (a 10,000-job load fills them all)
        filled = _Formatter(arg, parent_dirs).vformat(arg, (), fields) if "{" in arg or "}" in arg else arg
    except CommandError:
        raise
    except (ValueError, TypeError) as err:  # unbalanced braces, a format spec the value rejects
        raise CommandError(f"cannot fill {_short(arg)}: {err}; fix the format spec after ':', or write '{{{{' "
                           f"and '}}}}' for literal braces") from None
    if "\0" in filled:
        raise CommandError(f"argument {_short(filled)} contains a NUL byte, which no program can receive; remove it")
    return filled


def _short(text: str) -> str:
    """``text`` quoted for a one-line error, cut short: an argument can be a megabyte."""
    return repr(text) if len(text) <= 60 else repr(text[:57]) + "..."


class _Formatter(string.Formatter):
    """str.format's rules, except that only {after.<job>.output_dir} reads attributes; other fields are only indexed."""

    def __init__(self, arg: str, parent_dirs: Mapping[str, str]):
        self.arg = arg
        self.parent_dirs = parent_dirs

    def format_field(self, value: Any, format_spec: str) -> str:
        """Check the spec (nested ``{...}`` in it already filled) before formatting allocates what
        it asks for."""
        for digits in _DIGITS.findall(format_spec):
            number = digits.lstrip("0")
            if len(number) > len(str(MAX_FORMAT_NUMBER)) or int(digits) > MAX_FORMAT_NUMBER:
                shown = number if len(number) <= 12 else number[:9] + "..."
                raise CommandError(f"cannot fill {_short(self.arg)}: format spec {_short(format_spec)} asks for "
                                   f"a width or precision of {shown}; at most {MAX_FORMAT_NUMBER} is allowed")
        return super().format_field(value, format_spec)

    def get_field(self, field_name: str, args: Any, kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        rest = list(rest)
        if first == "after":
            if (len(rest) == 2 and rest[0][0] and rest[1] == (True, "output_dir")
                    and rest[0][1] in self.parent_dirs):
                return self.parent_dirs[rest[0][1]], first
            raise CommandError(f"placeholder {{{field_name}}} must be {AFTER_FORM}")
        if not isinstance(first, str) or not first:
            raise CommandError(f"positional placeholder in {_short(self.arg)}; name a field, as in {{model}}")
        if first not in kwargs:
            raise CommandError(f"unknown placeholder {{{field_name}}}", unknown=first)
        value, path = kwargs[first], first
        for is_attr, key in rest:
            if is_attr:
                raise CommandError(f"placeholder {{{field_name}}} reads an attribute; only "
                                   f"{{after.<job>.output_dir}} may; write {{field[key]}} to read a table's key")
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise CommandError(f"placeholder {{{field_name}}}: this job's {path} has no key {key!r}; add it "
                                   f"to the job or fix the placeholder") from None
            path += f"[{key}]"
        return value, first
