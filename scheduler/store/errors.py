"""Turn redis-py's exceptions into fleet's StoreError with a message an operator can act on."""

from __future__ import annotations

import contextlib
from typing import Iterator

import redis

from ..errors import StoreError
from ..settings import Settings

# redis-py's ways of saying Redis did not answer (down, restarting, a network cut): worth waiting out.
UNREACHABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


@contextlib.contextmanager
def store_errors(settings: Settings) -> Iterator[None]:
    """Wrap Redis calls: connection failures name the (password-free) URL and the fix."""
    try:
        yield
    except redis.AuthenticationError:
        raise StoreError(f"Redis at {settings.safe_url()} rejected the credentials; check the password in "
                         f"FLEET_REDIS_URL") from None
    except UNREACHABLE as err:
        raise StoreError(f"cannot reach Redis at {settings.safe_url()} ({_first_line(err)}); start redis-server "
                         f"or pass --redis-url / set FLEET_REDIS_URL") from None
    except redis.ResponseError as err:
        raise StoreError(f"Redis at {settings.safe_url()} refused a command: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


REFUSAL_PREFIX = "fleet: "  # how a Lua script's refusal over a damaged key starts (lua/types.lua)


def damage_message(refusal_text: str) -> str:
    """A script's refusal ("fleet: key K holds a list, not fleet's hash") as the operator reads it:
    what is wrong and what to do."""
    text = refusal_text.removeprefix(REFUSAL_PREFIX)
    if " holds a " not in text:  # a refusal that says what to do itself
        return text
    return f"{text}; fleet did not write it: move it aside (redis-cli RENAME) or delete it, then reload the manifest"


@contextlib.contextmanager
def refusal() -> Iterator[None]:
    """Around a script call: its refusal to write over a damaged key becomes a StoreError naming
    the key; other Redis errors pass through as they are."""
    import redis

    try:
        yield
    except redis.ResponseError as err:
        if str(err).startswith(REFUSAL_PREFIX):
            raise StoreError(damage_message(str(err))) from None
        raise
