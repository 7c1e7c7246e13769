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
import os
import re
import string
from typing import Any, Mapping

# Placeholders a command may use besides the job's own fields.
RUNTIME_PLACEHOLDERS = frozenset({"job_id", "output_dir", "attempt", "after", "resume_dir"})
AFTER_FORM = "{after.<job>.output_dir} with <job> listed in this job's after"
# The largest width or precision a format spec may ask for: {model:>400000000} made every load
# (and the receiver's every reload) allocate 400 MB to fill one argument.
MAX_FORMAT_NUMBER = 1024
# Linux refuses (E2BIG) an argument longer than MAX_ARG_STRLEN, 131072 bytes with its NUL.
MAX_ARG_BYTES = 131072 - 1
# The kernel's limit (ARG_MAX) covers argv and the environment together; the worker passes its
# own environment plus the FLEET_* variables, so a command may use half of it (1 MiB under
# Linux's default 8 MiB stack), counted as exec does: each argument's bytes, its NUL, its pointer.
ARGV_BUDGET = os.sysconf("SC_ARG_MAX") // 2
_POINTER_BYTES = 8
_DIGITS = re.compile(r"[0-9]+")


class CommandError(ValueError):
    """An argument the worker could not pass; ``unknown`` is the placeholder no field has, when that is why."""

    def __init__(self, message: str, unknown: str | None = None):
        super().__init__(message)
        self.unknown = unknown


def runtime_fields(spec: Mapping[str, Any], job_id: str, out_dir: str, attempt: int,
                   resume_dir: str = "") -> dict[str, Any]:
    """What placeholders may name: the job's fields, with the runtime values set over them
    (``resume_dir``: the previous attempt's output dir, "" when there is none to resume)."""
    fields = dict(spec)
    fields.update(job_id=job_id, output_dir=out_dir, attempt=attempt, resume_dir=resume_dir)
    return fields


def fill_arg(arg: str, fields: Mapping[str, Any], parent_dirs: Mapping[str, str]) -> str:
    """``arg`` with its placeholders filled from ``fields`` (see :func:`runtime_fields`) and
    ``parent_dirs`` (each finished ``after`` job's output dir); raises CommandError.

    What exec would refuse is refused here too, so it fails at load or fails one attempt
    cleanly: a NUL byte (the work horse died on it) and an argument over MAX_ARG_BYTES."""
    try:  # most arguments hold no braces: skip the pure-Python formatter (a 10,000-job load fills them all)
        filled = _Formatter(arg, parent_dirs).vformat(arg, (), fields) if "{" in arg or "}" in arg else arg
    except CommandError:
        raise
    except (ValueError, TypeError) as err:  # unbalanced braces, a format spec the value rejects
        raise CommandError(f"cannot fill {_short(arg)}: {err}; fix the format spec after ':', or write '{{{{' "
                           f"and '}}}}' for literal braces") from None
    if "\0" in filled:
        raise CommandError(f"argument {_short(filled)} contains a NUL byte, which no program can receive; remove it")
    size = _utf8_len(filled)
    if size > MAX_ARG_BYTES:
        raise CommandError(f"argument {_short(arg)} is {size} bytes once filled; Linux passes at most "
                           f"{MAX_ARG_BYTES} bytes in one argument; pass long input in a file")
    return filled


def argv_bytes(argv: list[str]) -> int:
    """What ``argv`` takes of the kernel's ARG_MAX: each argument's UTF-8 bytes, its NUL and its pointer."""
    return sum(_utf8_len(arg) + 1 + _POINTER_BYTES for arg in argv)


def check_argv(argv: list[str]) -> None:
    """Refuse a filled argv exec would refuse as a whole (E2BIG), with room left for the environment."""
    size = argv_bytes(argv)
    if size > ARGV_BUDGET:
        raise CommandError(f"the whole command is {size} bytes once filled ({len(argv)} arguments, counting "
                           f"{1 + _POINTER_BYTES} bytes each besides their text); at most {ARGV_BUDGET} may be "
                           f"passed (half of this host's ARG_MAX); pass long input in a file")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _short(text: str) -> str:
    """``text`` quoted for a one-line error, cut short: an argument can be a megabyte."""
    return repr(text) if len(text) <= 60 else repr(text[:57]) + "..."


class _Formatter(string.Formatter):
    """str.format's rules, except that only {after.<job>.output_dir} reads attributes; other fields are only indexed."""

    def __init__(self, arg: str, parent_dirs: Mapping[str, str]):
        self.arg = arg
        self.parent_dirs = parent_dirs
        self.filled = 0  # characters the placeholders have filled in so far

    def format_field(self, value: Any, format_spec: str) -> str:
        """Check the spec (nested ``{...}`` in it already filled) before formatting allocates what
        it asks for, and stop as soon as the filled text outgrows an argument: ``{x}{x}{x}...`` of
        a long value multiplies it."""
        for digits in _DIGITS.findall(format_spec):
            number = digits.lstrip("0")
            if len(number) > len(str(MAX_FORMAT_NUMBER)) or int(digits) > MAX_FORMAT_NUMBER:
                shown = number if len(number) <= 12 else number[:9] + "..."
                raise CommandError(f"cannot fill {_short(self.arg)}: format spec {_short(format_spec)} asks for "
                                   f"a width or precision of {shown}; at most {MAX_FORMAT_NUMBER} is allowed")
        text = super().format_field(value, format_spec)
        self.filled += len(text)
        if self.filled > MAX_ARG_BYTES:
            raise CommandError(f"argument {_short(self.arg)} is over {MAX_ARG_BYTES} characters once filled; "
                               f"Linux passes at most {MAX_ARG_BYTES} bytes in one argument; pass long input "
                               f"in a file")
        return text

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
