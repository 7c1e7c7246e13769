"""Copy a running attempt's log file into a capped Redis stream, line by line.

The file in the output dir is the whole record; the stream is for watching from
anywhere (`fleet logs -f`) and keeps only the last lines (``maxlen``), so a
chatty job cannot fill Redis. It runs as a thread in the work horse, and losing
Redis only pauses it; if Redis is still away when the attempt ends, the horse hands
:meth:`LogStreamer.position` to the worker, which sends the rest once Redis is back.
"""

from __future__ import annotations

import logging
import os
import threading

import redis

log = logging.getLogger("fleet.worker")
DEFAULT_MAXLEN = 10_000
MAX_LINE = 4096
STOP_WAIT_S = 30.0  # above fleet's 10 s socket timeout


class LogStreamer(threading.Thread):
    def __init__(self, client, stream_key: str, path: str, maxlen: int = DEFAULT_MAXLEN, poll_s: float = 0.2):
        super().__init__(daemon=True, name="fleet-logstream")
        self.client = client
        self.key = stream_key
        self.path = path
        self.maxlen = maxlen
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self._offset = 0
        self._partial = b""
        self.behind = False  # the last pump could not reach Redis

    @classmethod
    def resume(cls, client, position: list) -> "LogStreamer":
        """A streamer picking up where another (in a horse that has exited) stopped."""
        key, path, offset, partial = position
        streamer = cls(client, key, path)
        streamer._offset, streamer._partial = int(offset), partial.encode("latin-1")
        return streamer

    def position(self) -> list:
        """[stream key, file, bytes sent, unterminated line held back], JSON-safe and small
        (the line is cut to what the stream keeps anyway), for :meth:`resume`."""
        return [self.key, self.path, self._offset, self._partial[:MAX_LINE].decode("latin-1")]

    def flush(self) -> bool:
        """Send everything up to the end of the file now; False if Redis is unreachable."""
        self._pump(final=True)
        return not self.behind

    def stop(self) -> None:
        """Flush what is left and end the thread. Waits out a call in flight (bounded by the
        client's socket timeout), so :attr:`behind` and :meth:`position` are settled after."""
        self._stopping.set()
        self.join(timeout=STOP_WAIT_S)
        if self.is_alive():
            self.behind = True

    def run(self) -> None:
        while not self._stopping.wait(self.poll_s):
            self._pump()
        self._pump(final=True)

    def _pump(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read(1 << 20)
        except OSError:
            return
        if not chunk and not (final and self._partial):
            return
        data = self._partial + chunk
        lines = data.split(b"\n")
        rest = b"" if final else lines.pop()
        try:
            pipe = self.client.pipeline(transaction=False)
            for line in lines:
                if line or final:
                    pipe.xadd(self.key, {"line": line[:MAX_LINE]}, maxlen=self.maxlen, approximate=True)
            pipe.expire(self.key, 30 * 86400)
            pipe.execute()
            self._offset, self._partial, self.behind = self._offset + len(chunk), rest, False
        except (redis.ConnectionError, redis.TimeoutError):
            self.behind = True  # offset and held-back line unchanged: re-read from there once Redis is back
            log.debug("log stream paused: Redis unreachable")


def log_path(out_dir: str) -> str:
    return os.path.join(out_dir, "log.txt")
