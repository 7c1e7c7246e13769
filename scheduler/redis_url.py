"""A Redis URL as fleet shows it: every credential it can carry hidden.

A URL can carry a secret in its userinfo (``redis://:PW@host``, ``redis://user:PW@host``,
or a lone ``redis://PW@host``, which redis-py sends as a username) and in its query
(``?password=PW``, ``?ssl_password=PW``). :func:`redact_url` is the one place a URL is
made printable: status headers, errors and log lines all show its result, never the raw
text. It works on the text itself rather than on ``urllib``'s reading of it, so a URL
that does not parse still prints without its secret.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

HIDDEN = "***"

# redis-py URL options whose values are settings, not secrets: shown as written. Every
# other option's value is hidden, known (password, username, ssl_password) or not.
PUBLIC_OPTIONS = frozenset({
    "db", "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "retry_on_timeout", "max_connections", "health_check_interval", "protocol", "client_name",
    "ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
    "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags", "ssl_exclude_verify_flags",
})

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def redact_url(url: str) -> str:
    """``url`` with every credential replaced by ``***``, safe for logs and errors.

    Userinfo ends at the last ``@`` of the whole URL (an unescaped ``/``, ``?`` or ``#``
    in a password must not push its tail into the shown part). A text without a scheme
    is not shown at all: nothing in it says which part is a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME_RE.fullmatch(scheme):
        return HIDDEN
    userinfo, at, rest = rest.rpartition("@")
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    shown = f"{scheme}://{_redact_userinfo(userinfo) if at else ''}{rest}"
    if question:
        shown += "?" + "&".join(_redact_option(item) for item in query.split("&"))
    if hash_mark:
        shown += "#" + (HIDDEN if fragment else "")
    return shown


def _redact_userinfo(userinfo: str) -> str:
    """A username is shown only beside a separate password (``alice:***@``); a lone
    userinfo may itself be the password (``redis://PW@host``), so it is hidden whole."""
    if not userinfo:
        return "@"
    user, colon, _ = userinfo.partition(":")
    if colon and not set(user) & set("/?#"):
        return f"{user}:{HIDDEN}@"
    return f"{HIDDEN}@"


def _redact_option(item: str) -> str:
    name, equals, _ = item.partition("=")
    if not item or unquote(name) in PUBLIC_OPTIONS:
        return item
    if not _NAME_RE.fullmatch(name):
        return HIDDEN  # not an option name redis-py knows: it could be anything, a password included
    return f"{name}={HIDDEN}" if equals else name
