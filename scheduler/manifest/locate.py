"""Where fleet looks for the manifest when no path is given, and how a path is written into the store."""

from __future__ import annotations

import os

from ..errors import ManifestError, Problem

ENV_MANIFEST = "FLEET_MANIFEST"
SYSTEM_PATH = "/etc/fleet/training_manifest.toml"
LOCAL_NAME = "training_manifest.toml"


def path_text(path: str) -> str:
    """``path`` as UTF-8 text for the store: bytes of the file name that are not UTF-8 (a
    Latin-1 name, decoded by Python as surrogates) become ``\\xNN``; they made the load fail."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def candidates(explicit: str | None, environ: dict[str, str] | None = None, cwd: str | None = None) -> list[str]:
    """The places looked, in order: --manifest, $FLEET_MANIFEST, /etc/fleet, ./."""
    environ = dict(os.environ) if environ is None else environ
    if explicit:
        return [explicit]
    places = []
    if environ.get(ENV_MANIFEST):
        places.append(environ[ENV_MANIFEST])
    places.append(SYSTEM_PATH)
    places.append(os.path.join(cwd or os.getcwd(), LOCAL_NAME))
    return places


def locate_manifest(explicit: str | None = None, environ: dict[str, str] | None = None,
                    cwd: str | None = None) -> str:
    """The first existing manifest path; an explicit path is returned as is (its loader reports absence)."""
    places = candidates(explicit, environ, cwd)
    if explicit:
        return explicit
    for place in places:
        if os.path.isfile(place):
            return place
    raise ManifestError([Problem(
        "training_manifest.toml",
        f"no manifest found; looked in {', '.join(places)}; give its path (`fleet load PATH`, "
        f"`fleet receiver --manifest PATH`) or set {ENV_MANIFEST}",
    )])
