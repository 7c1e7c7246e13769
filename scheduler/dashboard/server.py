"""The dashboard on the wire: the standard library's ThreadingHTTPServer.

Why no web framework: the dashboard is a handful of GET routes answered from Client, each page
polling its JSON once a second, for the few browsers a lab points at it. http.server does that
with a thread per connection, and bench/dashboard.py measures it (the fleet page's API answers in
tens of milliseconds at 100,000 jobs); Starlette and uvicorn would add two packages and an event
loop to run the same synchronous Redis reads in a thread pool.

Binds to loopback unless told otherwise: an operator exposes it on purpose (a reverse proxy with
its own authentication; the dashboard has none). Read-only, and it never shows the Redis URL.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import Dashboard, Reply

log = logging.getLogger("fleet.dashboard")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8470
# Served to every reply: the pages load nothing from elsewhere, and may not be framed or sniffed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def make_server(dashboard: Dashboard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A server for ``dashboard`` bound to ``host``:``port`` (0: any free port), not yet serving."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-dashboard"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path, _, query = self.path.partition("?")
            try:
                reply = dashboard.handle(path, query)
            except Exception as err:  # a bug, not a fleet error: said in the log, one line to the browser
                log.exception("GET %s failed", path)
                reply = Reply.json({"error": f"internal error ({type(err).__name__}); the dashboard's log has it"},
                                   500)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
            log.debug("%s %s", self.address_string(), format % args)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    return Server((host, port), Handler)


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{f'[{host}]' if ':' in str(host) else host}:{port}/"


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve ``server`` from a daemon thread (`fleet demo`, tests); ``server.shutdown()`` stops it."""
    thread = threading.Thread(target=server.serve_forever, name="fleet-dashboard", daemon=True)
    thread.start()
    return thread
