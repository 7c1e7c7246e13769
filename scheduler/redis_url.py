"""A Redis URL: what of it fleet may show, and whether redis-py will take it as meant.

A URL can carry a secret in its userinfo (``redis://:PW@host``, ``redis://user:PW@host``,
or a lone ``redis://PW@host``, which redis-py sends as a username) and in its query
(``?password=PW``, ``?ssl_password=PW``). :func:`redact_url` is the one place a URL is
made printable: status headers, errors and log lines all show its result, never the raw
text. It works on the text itself rather than on ``urllib``'s reading of it, so a URL
that does not parse still prints without its secret.

:func:`url_problem` checks a URL once, where the settings are built, so a bad one is one
clear line instead of a traceback from deep inside the first connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit

HIDDEN = "***"
SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)

# redis-py URL options whose values are settings, not secrets: shown as written. Every
# other option's value is hidden, known (password, username, ssl_password) or not.
PUBLIC_OPTIONS = frozenset({
    "db", "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "retry_on_timeout", "max_connections", "health_check_interval", "protocol", "client_name",
    "ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile",
    "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags", "ssl_exclude_verify_flags",
})
SECRET_OPTIONS = frozenset({"password", "username", "ssl_password"})

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


@lru_cache(maxsize=32)
def url_problem(url: str) -> str | None:
    """What is wrong with ``url``, phrased to follow it (``'redis://...' has ...``), or None.

    The final word is redis-py's own: the URL is parsed by ``ConnectionPool.from_url``, as
    :meth:`Settings.connect` will, and a connection is built (not opened) from it. What
    redis-py quietly reads another way is refused first: a db path that is not a number
    (``/abc`` meant db 0), port 0 (meant 6379), an ``@`` after the host (a password with
    an unescaped ``/`` or ``?``, whose tail redis-py would take for the host or path)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        return "must start with redis://, rediss://, unix:// or redis+sentinel://"
    if scheme == SENTINEL_SCHEME:
        try:
            sentinel_target(url)
        except ValueError as err:
            return str(err)
        return None
    host_end = re.search(r"[/?#]|$", rest).start()
    if "@" in rest[host_end:]:
        return ("has an '@' after its host: in a password, write '@' as %40, '/' as %2F, '?' as %3F "
                "and '#' as %23")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        if "IPv6" in str(err):
            return "has a malformed IPv6 address: write it in brackets, as redis://[::1]:6379/0"
        port = 0
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    if scheme == "unix" and not parts.path:
        return "names no socket: write unix:///path/to/redis.sock"
    if scheme != "unix" and not re.fullmatch(r"/?|/[0-9]+", parts.path):
        return "has a path that is not a database number: end it with /N (N >= 0), or / or nothing for db 0"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in PUBLIC_OPTIONS | SECRET_OPTIONS:
            shown = repr(name) if _NAME_RE.fullmatch(name) else "an option"
            return f"has {shown}, which is no Redis connection option fleet passes on (known: " \
                   f"{', '.join(sorted(PUBLIC_OPTIONS | SECRET_OPTIONS))})"
    return _redis_py_problem(url, scheme)


def _redis_py_problem(url: str, scheme: str) -> str | None:
    import redis
    from redis.connection import ConnectionPool

    try:
        pool = ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as err:  # an option the connection class for this scheme does not take
        name = re.search(r"argument '(\w+)'", str(err))
        return f"has {repr(name.group(1)) if name else 'an option'}, which does not apply to {scheme}:// URLs"
    except (ValueError, redis.RedisError) as err:
        text = str(err)
        if any(secret in text for secret in _secrets(url)):
            text = "redis-py refused it"
        return f"has a bad option value ({text})"
    if pool.connection_kwargs.get("db", 0) < 0:
        return "has a negative database number"
    return None


def _secrets(url: str) -> list[str]:
    """Every part of ``url`` that :func:`redact_url` hides, as written and decoded."""
    parts = urlsplit(url)
    found = [parts.username or "", parts.password or ""]
    found += [value for name, value in parse_qsl(parts.query) if name not in PUBLIC_OPTIONS]
    return [text for value in found if value for text in (value, unquote(value))]


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`` URL
    names: the sentinels to ask, the monitored service, and how to talk to its master (the
    credentials are the master's and its replicas'; sentinels are asked without them)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None

    def __repr__(self) -> str:
        return f"SentinelTarget(sentinels={self.sentinels!r}, service={self.service!r}, db={self.db})"


_SERVICE_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def sentinel_target(url: str) -> SentinelTarget:
    """Parse a Sentinel URL; ValueError (phrased to follow the URL, as :func:`url_problem`'s
    answers are) for one that does not say what it must."""
    rest = url.partition("://")[2]
    userinfo, at, rest = rest.rpartition("@")
    rest, _, query = rest.partition("?")
    if query:
        raise ValueError("has options; a redis+sentinel:// URL takes none (write the password before the '@')")
    hosts, slash, path = rest.partition("/")
    sentinels = []
    for item in hosts.split(","):
        host, colon, port = item.rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("has a sentinel that is not host:port (list them as host:port,host:port)")
        sentinels.append((host, int(port)))
    service, _, db = path.partition("/")
    if not slash or not _SERVICE_RE.fullmatch(service):
        raise ValueError("names no service: end it with /SERVICE_NAME (the name sentinels monitor) or "
                         "/SERVICE_NAME/DB")
    if db and not db.isdigit():
        raise ValueError("has a database that is not a number: end it with /SERVICE_NAME/N")
    user, colon, password = userinfo.partition(":") if at else ("", "", "")
    if at and not colon:  # a lone userinfo is the password, as for redis:// URLs
        user, password = "", userinfo
    return SentinelTarget(tuple(sentinels), service, int(db or 0), unquote(user) or None,
                          unquote(password) or None)
