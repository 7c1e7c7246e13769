"""``fleet dashboard``: the fleet in a browser (scheduler/dashboard/), read-only, on loopback."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..dashboard.app import Dashboard
from ..dashboard.server import make_server, url_of
from ..errors import UsageError
from ..table import write_line
from .common import client_from


def run(args: argparse.Namespace, out: TextIO) -> int:
    client = client_from(args)
    try:
        server = make_server(Dashboard(client), args.host, args.port)
    except OSError as err:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err}); pick another --port "
                         f"or --host") from None
    write_line(out, f"fleet dashboard on {url_of(server)} (Ctrl-C stops it)")
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
