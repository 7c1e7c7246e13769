"""Lua scripts: read from ``store/lua/*.lua`` once, registered with redis-py, called by SHA."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

LUA_PACKAGE = "scheduler.store"


INCLUDE = re.compile(r"^[ \t]*-- #include (\w+)$", re.M)


@lru_cache(maxsize=None)
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua`` shipped inside the package, with ``-- #include x`` lines
    replaced by ``lua/x.lua``: helpers two scripts share live in one file, not in two copies."""
    text = resources.files(LUA_PACKAGE).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return INCLUDE.sub(lambda m: lua_source(m.group(1)), text)


class Scripts:
    """The registered scripts for one client; redis-py reloads them after a SCRIPT FLUSH or restart."""

    NAMES = ("load_lock", "load_read", "load_step", "claim", "finish", "renew", "actions", "archive", "preference", "compact")

    def __init__(self, redis, names: tuple[str, ...] = NAMES):
        """Register ``names`` (default all): a caller that runs one script registers only that one."""
        for name in names:
            setattr(self, name, redis.register_script(lua_source(name)))
