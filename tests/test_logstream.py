"""An attempt's log and metrics files reach their Redis streams whole, once, in order.

One thread serves all of an attempt's files and is started only once the attempt has
outlived a poll interval; a job that ends sooner has every line sent by the final flush.
If Redis is away at the end, the position handed to the worker lets it send the rest.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import fakeredis
import redis

from worker.logstream import LogStreamer, StreamThread


def _lines(client, key: str) -> list[bytes]:
    return [fields[b"line"] for _, fields in client.xrange(key)]


def _streamed_while_running(client, key: str, expected: list[bytes]) -> list[bytes]:
    """The stream's lines once they equal ``expected`` (or after 5 s): what the thread sent by itself."""
    deadline = time.monotonic() + 5
    while _lines(client, key) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return _lines(client, key)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_short_jobs_files_are_sent_whole_without_a_thread(tmp_path):
    client = fakeredis.FakeRedis()
    (tmp_path / "log.txt").write_bytes(b"one\ntwo\nno newline")
    (tmp_path / "metrics.jsonl").write_bytes(b'{"loss": 1}\n')
    streams = StreamThread([LogStreamer(client, "log", str(tmp_path / "log.txt")),
                            LogStreamer(client, "metrics", str(tmp_path / "metrics.jsonl")),
                            LogStreamer(client, "absent", str(tmp_path / "never-written"))])
    streams.stop()
    assert not streams.is_alive() and not any(s.behind for s in streams.streams)
    assert _lines(client, "log") == [b"one", b"two", b"no newline"]
    assert _lines(client, "metrics") == [b'{"loss": 1}']
    assert not client.exists("absent")


def _streaming(tmp_path: Path, written: bytes) -> tuple[fakeredis.FakeRedis, Path, StreamThread]:
    """(client, log file, its launched stream thread), the file holding ``written``."""
    client = fakeredis.FakeRedis()
    path = tmp_path / "log.txt"
    path.write_bytes(written)
    streams = StreamThread([LogStreamer(client, "log", str(path))], poll_s=0.05)
    streams.launch()
    return client, path, streams


def test_blank_lines_are_kept_and_a_trailing_newline_adds_no_line(tmp_path):
    """`fleet logs` prints what log.txt holds: its blank lines, and nothing after its last newline."""
    client, path, streams = _streaming(tmp_path, b"epoch 1\n\nepoch 2\n")
    assert _streamed_while_running(client, "log", [b"epoch 1", b"", b"epoch 2"]) == [b"epoch 1", b"", b"epoch 2"]
    with open(path, "ab") as fh:
        fh.write(b"\ndone\n")
    streams.stop()
    assert _lines(client, "log") == [b"epoch 1", b"", b"epoch 2", b"", b"done"]


def test_a_running_jobs_lines_stream_as_they_are_written(tmp_path):
    client, path, streams = _streaming(tmp_path, b"")
    streams.launch()  # idempotent: the runner calls it at every poll
    with open(path, "ab") as fh:
        fh.write(b"epoch 1\nepoch 2 (partial")
    assert _streamed_while_running(client, "log", [b"epoch 1"]) == [b"epoch 1"]  # the unterminated line is held back while running
    with open(path, "ab") as fh:
        fh.write(b")\nepoch 3")
    streams.stop()
    assert not streams.is_alive()
    assert _lines(client, "log") == [b"epoch 1", b"epoch 2 (partial)", b"epoch 3"]


def test_lines_redis_missed_at_the_end_are_sent_from_the_handed_over_position(tmp_path):
    gone = redis.Redis(port=_closed_port(), socket_connect_timeout=1, socket_timeout=1)
    (tmp_path / "log.txt").write_bytes(b"a\nb\nc")
    (tmp_path / "metrics.jsonl").write_bytes(b"m1\n")
    streams = StreamThread([LogStreamer(gone, "log", str(tmp_path / "log.txt")),
                            LogStreamer(gone, "metrics", str(tmp_path / "metrics.jsonl"))])
    streams.stop()
    positions = [s.position() for s in streams.streams if s.behind]
    assert len(positions) == 2
    back = fakeredis.FakeRedis()
    for position in positions:
        assert LogStreamer.resume(back, position).flush()
    assert _lines(back, "log") == [b"a", b"b", b"c"]
    assert _lines(back, "metrics") == [b"m1"]
