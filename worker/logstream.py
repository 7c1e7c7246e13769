"""Copy a running attempt's log files into capped Redis streams, line by line.

The files in the output dir are the whole record; the streams are for watching from
anywhere (`fleet logs -f`, `fleet metrics`) and keep only the last lines (``maxlen``),
so a chatty job cannot fill Redis. One thread in the work horse serves all of an
attempt's files, and losing Redis only pauses it; if Redis is still away when the
attempt ends, the horse hands :meth:`LogStreamer.position` to the worker, which sends
the rest once Redis is back.
"""

from __future__ import annotations

import logging
import os
import threading

import redis

log = logging.getLogger("fleet.worker")
DEFAULT_MAXLEN = 10_000
MAX_LINE = 4096
STREAM_TTL_S = 30 * 86400
STOP_WAIT_S = 30.0  # above fleet's 10 s socket timeout


class LogStreamer:
    """One file's place in its stream: the bytes already sent and the unterminated line held back."""

    def __init__(self, client, stream_key: str, path: str, maxlen: int = DEFAULT_MAXLEN):
        self.client = client
        self.key = stream_key
        self.path = path
        self.maxlen = maxlen
        self._offset = 0
        self._partial = b""
        self.behind = False  # the last send of new lines could not reach Redis

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
        return pump([self], final=True)

    def _read(self, final: bool) -> tuple[int, list[bytes], bytes] | None:
        """(bytes read, whole lines to send, line to hold back), or None when there is nothing new.
        Blank lines are sent like any other, so `fleet logs` prints what log.txt holds."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read(1 << 20)
        except OSError:
            return None
        if not chunk and not (final and self._partial):
            return None
        lines = (self._partial + chunk).split(b"\n")
        rest = lines.pop()  # after the last newline: a line still being written
        if final and rest:
            lines.append(rest)
            rest = b""
        return len(chunk), lines, rest


def pump(streams: list[LogStreamer], final: bool = False) -> bool:
    """Send what each file has gained since the last call, all in one round trip (the streams
    share one client); ``final`` also sends a last unterminated line. False if Redis is
    unreachable: nothing is marked sent, so the next call (or the worker) re-reads from there."""
    sent = []
    pipe = None
    for streamer in streams:
        new = streamer._read(final)
        if new is None:
            continue
        size, lines, rest = new
        pipe = pipe if pipe is not None else streamer.client.pipeline(transaction=False)
        for line in lines:
            pipe.xadd(streamer.key, {"line": line[:MAX_LINE]}, maxlen=streamer.maxlen, approximate=True)
        pipe.expire(streamer.key, STREAM_TTL_S)
        sent.append((streamer, size, rest))
    if pipe is None:
        return True
    try:
        pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError):
        for streamer, _, _ in sent:
            streamer.behind = True
        log.debug("log stream paused: Redis unreachable")
        return False
    for streamer, size, rest in sent:
        streamer._offset, streamer._partial, streamer.behind = streamer._offset + size, rest, False
    return True


class StreamThread(threading.Thread):
    """Streams an attempt's files while it runs, from one thread for all of them.

    :meth:`launch` is meant to be called once the attempt has outlived one poll interval:
    a short job then never pays for a thread (~1 ms each, two per job before), and its
    lines all go in :meth:`stop`'s final send, as they would have at the first pump.
    """

    def __init__(self, streams: list[LogStreamer], poll_s: float = 0.2):
        super().__init__(daemon=True, name="fleet-logstream")
        self.streams = streams
        self.poll_s = poll_s
        self._stopping = threading.Event()
        self._launched = False

    def launch(self) -> None:
        """Start streaming (idempotent)."""
        if not self._launched:
            self._launched = True
            self.start()

    def stop(self) -> None:
        """Send what is left and end the thread. Waits out a call in flight (bounded by the
        client's socket timeout), so every stream's ``behind`` and position are settled after."""
        if not self._launched:
            pump(self.streams, final=True)
            return
        self._stopping.set()
        self.join(timeout=STOP_WAIT_S)
        if self.is_alive():
            for streamer in self.streams:
                streamer.behind = True

    def run(self) -> None:
        while True:
            pump(self.streams)
            if self._stopping.wait(self.poll_s):
                break
        pump(self.streams, final=True)


def log_path(out_dir: str) -> str:
    return os.path.join(out_dir, "log.txt")
