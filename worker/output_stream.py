"""Copy a running attempt's log files into capped Redis streams, line by line.

The files in the output dir are the whole record; the streams are for watching from
anywhere (`fleet logs -f`, `fleet metrics`) and keep only the last lines (``maxlen``),
so a chatty job cannot fill Redis. One thread in the work horse serves all of an
attempt's files, and losing Redis only pauses it; if Redis is still away when the
attempt ends, the horse hands :meth:`LogStreamer.position` to the worker, which sends
the rest once Redis is back.

A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (a progress bar redrawing itself, as
tqdm does, so `fleet logs -f` shows it move) and is cut to MAX_LINE bytes; so the
streamer holds at most one line's worth of any line however long it grows. A backlog
of more lines than the stream keeps (a job printing faster than it is sent) is skipped
to its last ``maxlen`` lines, with one line saying so: the stream keeps the *last* lines.
"""

from __future__ import annotations

import logging
import os
import re
import threading

from scheduler.store.errors import UNREACHABLE
from scheduler.store.streams import queue_append

log = logging.getLogger("fleet.worker")
DEFAULT_MAXLEN = 10_000
MAX_LINE = 4096
STOP_WAIT_S = 30.0  # above fleet's 10 s socket timeout
READ_BYTES = 1 << 20  # read per file per pump; a bigger backlog is first cut to what the stream keeps
TAIL_BLOCK = 1 << 16  # looking back for where the last maxlen lines start, this much at a time
BOUNDARY = re.compile(rb"\r\n|\r|\n")


class LogStreamer:
    """One file's place in its stream: the bytes already sent and the unterminated line held back."""

    def __init__(self, client, stream_key: str, path: str, maxlen: int = DEFAULT_MAXLEN):
        self.client = client
        self.key = stream_key
        self.path = path
        self.maxlen = maxlen
        self._offset = 0
        self._partial = b""  # the start of a line still being written: at most MAX_LINE bytes (and a "\r")
        self._looked_back_to = 0  # file bytes before this were looked at by _tail_start: no need again
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
        return [self.key, self.path, self._offset, self._partial.decode("latin-1")]

    def flush(self) -> bool:
        """Send everything up to the end of the file now; False if Redis is unreachable."""
        return pump([self], final=True)

    def _read(self, final: bool) -> tuple[int, list[bytes], bytes, int] | None:
        """(new offset, whole lines to send, line to hold back, new _looked_back_to), or None when
        there is nothing new. Blank lines are sent like any other, so `fleet logs` prints what
        log.txt holds."""
        skipped, offset, partial, looked = 0, self._offset, self._partial, self._looked_back_to
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size - offset > READ_BYTES:
                    # Only bytes not looked at before: what came before them held fewer lines than
                    # the stream keeps, so a line-less flood costs one look, not one per pump.
                    tail = _tail_start(fh, max(offset, looked), size, self.maxlen)
                    looked = size
                    if tail is not None:
                        skipped, offset, partial = tail - offset, tail, b""
                fh.seek(offset)
                chunk = fh.read(READ_BYTES)
        except OSError:
            return None
        if not chunk and not (final and partial):
            return None
        final = final and offset + len(chunk) >= size  # the end of the file, not of this read
        data, hold = partial + chunk, b""
        if data.endswith(b"\r") and not final:  # maybe the first half of a "\r\n"
            data, hold = data[:-1], b"\r"
        lines = BOUNDARY.split(data)
        rest = lines.pop()  # after the last line end: a line still being written
        if final and rest:
            lines.append(rest)
            rest = b""
        if skipped:
            lines.insert(0, f"[fleet: {skipped} bytes of {os.path.basename(self.path)} skipped here, more lines "
                            f"than this stream keeps ({self.maxlen}); the file has them all]".encode())
        return offset + len(chunk), [line[:MAX_LINE] for line in lines], rest[:MAX_LINE] + hold, looked


def pump(streams: list[LogStreamer], final: bool = False) -> bool:
    """Send what each file has gained since the last call, up to READ_BYTES a file in one round
    trip (the streams share one client); ``final`` sends everything to the end of each file,
    its last unterminated line included. False if Redis is unreachable: nothing is marked
    sent, so the next call (or the worker) re-reads from there."""
    while True:
        sent = []
        pipe = None
        for streamer in streams:
            new = streamer._read(final)
            if new is None:
                continue
            offset, lines, rest, looked = new
            pipe = pipe if pipe is not None else streamer.client.pipeline(transaction=False)
            queue_append(pipe, streamer.key, lines, streamer.maxlen)
            sent.append((streamer, offset, rest, looked))
        if pipe is None:
            return True
        try:
            pipe.execute()
        except UNREACHABLE:
            for streamer, *_ in sent:
                streamer.behind = True
            log.debug("log stream paused: Redis unreachable")
            return False
        for streamer, offset, rest, looked in sent:
            streamer._offset, streamer._partial, streamer._looked_back_to = offset, rest, looked
            streamer.behind = False
        if not final:
            return True


def _tail_start(fh, start: int, end: int, lines: int) -> int | None:
    """Where, in the file's bytes [start, end), its last ``lines`` lines begin (just after the
    line end before them), read backwards a block at a time; None if there are no more."""
    position, seen = end, 0
    while position > start:
        block_start = max(start, position - TAIL_BLOCK)
        fh.seek(block_start)
        ends = [m.end() for m in BOUNDARY.finditer(fh.read(position - block_start))]
        if seen + len(ends) > lines:
            return block_start + ends[len(ends) - (lines + 1 - seen)]
        seen += len(ends)
        position = block_start
    return None


class StreamThread(threading.Thread):
    """Streams an attempt's files while it runs, from one thread for all of them.

    :meth:`launch` is meant to be called once the attempt has outlived one poll interval:
    a short job then never pays for a thread (~1 ms each, two per job before), and its
    lines all go in :meth:`stop`'s final send, as they would have at the first pump.
    """

    def __init__(self, streams: list[LogStreamer], poll_s: float = 0.2):
        super().__init__(daemon=True, name="fleet-output-stream")
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
