"""Turn redis-py's exceptions into fleet's StoreError with a message an operator can act on."""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..errors import StoreError
from ..settings import Settings


@contextlib.contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    """Wrap Redis calls: connection failures name the (password-free) URL and the fix."""
    import redis

    try:
        yield
    except redis.AuthenticationError:
        raise StoreError(f"Redis at {settings.safe_url()} rejected the credentials; check the password in "
                         f"FLEET_REDIS_URL") from None
    except (redis.ConnectionError, redis.TimeoutError) as err:
        raise StoreError(f"cannot reach Redis at {settings.safe_url()} ({_first_line(err)}); start redis-server "
                         f"or pass --redis-url / set FLEET_REDIS_URL") from None
    except redis.ResponseError as err:
        raise StoreError(f"Redis at {settings.safe_url()} refused a command: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
