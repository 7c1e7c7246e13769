"""The manifest's ``[hosts]`` and constraint classes as the store holds them, parsed in one place.

The claim loop, ``fleet status``, ``fleet explain`` and ``fleet probe`` all read these two
hashes; each used to parse them its own way, and only the claim loop survived a record
fleet did not write. Here a damaged record is left out and said once, except the one
record a caller cannot do without (its own host's rules).
"""

from __future__ import annotations

import json
import logging

from ..errors import StoreError
from ..keys import Keys
from ..manifest.model import HostSpec
from ..matching import ConstraintClass

log = logging.getLogger("fleet.store")

_NOT_FLEETS = (ValueError, TypeError, KeyError, AttributeError)  # what parsing a foreign value raises


class Catalog:
    """Parses the ``hosts`` and ``classes`` hashes as HGETALL returns them.

    It remembers which damaged records it has said, so a loop reading them before every
    claim says each once (again only once the value changes), and the classes it has
    parsed: a class id is a digest of its needs, so a parsed class never goes stale."""

    def __init__(self, keys: Keys):
        self.keys = keys
        self._classes_seen: dict[str, ConstraintClass] = {}
        self._damaged: dict = {}  # damaged record -> its value, said once

    def hosts(self, raw: dict, own: str | None = None) -> dict[str, HostSpec]:
        """The ``hosts`` hash as specs. A damaged entry is left out (said once); ``own``'s cannot
        be: its allow/deny rules decide what that host may run, so it is a StoreError (which
        pauses a worker's claiming) until a reload rewrites it."""
        specs = {}
        for name, record in raw.items():
            try:
                specs[name.decode()] = HostSpec.from_dict(json.loads(record))
            except _NOT_FLEETS as err:
                where = f"{self.keys.hosts}[{name.decode(errors='replace')}]"
                if own is not None and name.decode(errors="replace") == own:
                    raise StoreError(f"host record {where} is not fleet's JSON ({err!r}); reload the manifest "
                                     f"to rewrite it") from None
                if self._damaged.get((self.keys.hosts, name)) != record:
                    self._damaged[(self.keys.hosts, name)] = record
                    log.error("host record %s is not fleet's JSON (%r); ignored: reload the manifest to rewrite it",
                              where, err)
        return specs

    def classes(self, raw: dict) -> dict[str, ConstraintClass]:
        """The ``classes`` hash as classes, by id, in the hash's order. A damaged record is left
        out (said once): its jobs wait, every other class keeps running."""
        out = {}
        for raw_id, record in raw.items():
            class_id = raw_id.decode()
            cls = self._classes_seen.get(class_id)
            if cls is None:
                try:
                    cls = ConstraintClass.from_dict(json.loads(record))
                except _NOT_FLEETS as err:
                    if self._damaged.get(raw_id) != record:
                        self._damaged[raw_id] = record
                        log.error("class record %s[%s] is not fleet's JSON (%r); its jobs stay pending: "
                                  "delete that field and reload the manifest", self.keys.classes, class_id, err)
                    continue
                self._classes_seen[class_id] = cls
            out[class_id] = cls
        return out
