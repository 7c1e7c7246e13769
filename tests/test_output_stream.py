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

from worker.output_stream import LogStreamer, StreamThread


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


def test_a_chatty_jobs_stream_keeps_its_last_lines_and_ends_with_its_last_line(tmp_path):
    """`seq 1 500000; echo LAST-LINE`: the stream used to stop a megabyte in, on a torn line."""
    client = fakeredis.FakeRedis()
    path = tmp_path / "log.txt"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(1, 500_001)) + b"LAST-LINE\n")
    streams = StreamThread([LogStreamer(client, "log", str(path), maxlen=1000)])
    streams.stop()
    lines = _lines(client, "log")
    assert lines[-1] == b"LAST-LINE"
    marker, *kept = lines
    assert marker.startswith(b"[fleet: ") and b"skipped" in marker
    assert kept == [b"%d" % i for i in range(500_000 - len(kept) + 2, 500_001)] + [b"LAST-LINE"]
    assert 1000 <= len(kept) <= 1100  # about maxlen: what the stream keeps, sent once


def test_a_progress_bar_streams_each_redraw_as_a_line(tmp_path):
    """tqdm redraws its line after a "\r", never a "\n": each redraw is a line of the stream,
    so `fleet logs -f` shows the bar move; "\r\n" is one line end, not two."""
    client = fakeredis.FakeRedis()
    path = tmp_path / "log.txt"
    path.write_bytes(b"start\r\n" + b"".join(b"\r%3d%%|" % i + b"#" * i for i in range(101)) + b"\nend\r\n")
    streamer = LogStreamer(client, "log", str(path))
    assert streamer.flush()
    assert _lines(client, "log") == [b"start", b""] + [b"%3d%%|" % i + b"#" * i for i in range(101)] + [b"end"]


def test_a_line_that_never_ends_keeps_the_streamer_small(tmp_path):
    """40 MB without a line end (a progress bar written with "\b", a binary dump) used to pile
    up in the work horse (41 -> 213 MB in 45 s) while only its first 4 KiB could be sent."""
    import tracemalloc

    from worker.output_stream import pump

    client = fakeredis.FakeRedis()
    path = tmp_path / "log.txt"
    with open(path, "wb") as fh:
        for _ in range(40):
            fh.write(b"=\b" * (512 * 1024))
    streamer = LogStreamer(client, "log", str(path))
    tracemalloc.start()
    for _ in range(40):  # live pumps, each reading its megabyte of the same line
        pump([streamer])
        assert len(streamer._partial) <= 4096
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"{peak} bytes held while streaming a 40 MB line"
    assert _lines(client, "log") == []  # still one line being written
    assert streamer.flush() and _lines(client, "log") == [(b"=\b" * 2048)]


def test_an_endless_line_is_cut_to_the_line_limit_and_the_next_line_is_whole(tmp_path):
    client = fakeredis.FakeRedis()
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * (3 * 1024 * 1024) + b"\nnext\n")
    streamer = LogStreamer(client, "log", str(path))
    assert streamer.flush()
    assert _lines(client, "log") == [b"x" * 4096, b"next"]


def test_an_ended_attempts_streams_are_frozen_with_their_lines_and_expiry(real_redis):
    """Issue 18: Redis 7.0 lays out a new stream node at 4 KB, and even rewritten at its size a
    few-line stream keeps ~0.8 KB of structure; frozen into a string it keeps what it holds,
    every reader still sees the same lines, and a line that comes late reads after them."""
    from scheduler.keys import Keys
    from scheduler.store.streams import STREAM_TTL_S, Streams, compact_attempt, queue_append

    keys = Keys("fleet")
    pipe = real_redis.pipeline(transaction=False)
    queue_append(pipe, keys.log("j1", 1), [f"epoch {i}: loss 0.{i}\twith a tab" for i in range(5)], maxlen=10_000)
    queue_append(pipe, keys.metrics("j1", 1), ['{"step": 5, "loss": 0.2}'], maxlen=10_000)
    pipe.execute()
    streams = Streams(real_redis, keys)
    before = streams.log("j1", 1)
    assert real_redis.memory_usage(keys.log("j1", 1), samples=0) > 4000
    assert compact_attempt(real_redis, keys, "j1", 1) == 2  # rq's result stream is absent here
    assert not real_redis.exists(keys.log("j1", 1), keys.metrics("j1", 1))
    assert real_redis.memory_usage(keys.log_text("j1", 1), samples=0) < 400
    assert real_redis.memory_usage(keys.metrics_text("j1", 1), samples=0) < 200
    assert streams.log("j1", 1) == before and streams.has_log("j1", 1)
    assert streams.metrics("j1", 1) == [{"step": 5, "loss": 0.2}]
    assert streams.metrics_of_many([("j1", 1), ("j2", 1)]) == [[{"step": 5, "loss": 0.2}], []]
    assert STREAM_TTL_S - 5 < real_redis.ttl(keys.log_text("j1", 1)) <= STREAM_TTL_S
    # A follower that had read up to the third line reads the rest from the text.
    assert [line for _, line in streams.follow_log("j1", 1, before[2][0], block_ms=10, count=10)] == [
        line for _, line in before[3:]]
    assert streams.follow_log("j1", 1, before[-1][0], block_ms=10, count=10) == []
    real_redis.xadd(keys.log("j1", 1), {"line": "a late line"})  # a catch-up after the freeze
    assert [line for _, line in streams.log("j1", 1)] == [line for _, line in before] + ["a late line"]
    assert compact_attempt(real_redis, keys, "j1", 1) == 1  # and the next compaction appends it
    assert [line for _, line in streams.log("j1", 1)] == [line for _, line in before] + ["a late line"]


def test_a_long_stream_is_only_rewritten_at_its_size(real_redis):
    """Freezing pays where a stream's structure outweighs its lines; a longer stream keeps its
    form (the rewrite stays short) and reads the same."""
    from scheduler.keys import Keys
    from scheduler.store.streams import FREEZE_MAX_ENTRIES, Streams, compact_attempt, queue_append

    keys = Keys("fleet")
    pipe = real_redis.pipeline(transaction=False)
    queue_append(pipe, keys.log("j1", 1), [f"step {i}" for i in range(FREEZE_MAX_ENTRIES + 1)], maxlen=10_000)
    pipe.execute()
    before = Streams(real_redis, keys).log("j1", 1)
    assert compact_attempt(real_redis, keys, "j1", 1) == 1
    assert real_redis.type(keys.log("j1", 1)) == b"stream" and not real_redis.exists(keys.log_text("j1", 1))
    assert Streams(real_redis, keys).log("j1", 1) == before and len(before) == FREEZE_MAX_ENTRIES + 1
