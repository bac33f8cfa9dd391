"""Standard-library helpers for `make bench`'s Redis figures (throttle, jobs).

- `RedisConnection`: a minimal RESP2 client (no redis-py in the template's environment), enough
  for `XINFO GROUPS`, `SCAN`, `DEL` and `INFO`;
- `group_progress` / `jobs_finished`: when a queue of jobs is done, read from the stream's
  consumer group (entries read, pending, lag), not from the worker's log;
- `timed_requests`: a paced HTTP client that times every request (the enqueue latency);
- `latency_summary`: p50/p99/max of those times.
"""

from __future__ import annotations

import http.client
import math
import socket
import statistics
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

# --------------------------------------------------------------------------- RESP


class RedisReplyError(RuntimeError):
    """Redis answered a command with an error reply (`-ERR ...`)."""


def encode_command(*args: str | bytes | int) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(stream: IO[bytes]) -> Any:
    """One RESP2 reply: bytes, int, None (nil), a list, or RedisReplyError for `-`."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data = stream.read(length + 2)
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [read_reply(stream) for _ in range(count)]
    raise ValueError(f"not a RESP reply: {line!r}")


class RedisConnection:
    """One connection to `redis://host:port/db`; `command` raises on an error reply."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout
        )
        self.stream = self.sock.makefile("rb")
        database = parsed.path.strip("/") or "0"
        self.command("SELECT", database)

    def command(self, *args: str | bytes | int) -> Any:
        self.sock.sendall(encode_command(*args))
        reply = read_reply(self.stream)
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    def scan(self, pattern: str) -> Iterator[bytes]:
        cursor = b"0"
        while True:
            cursor, keys = self.command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            yield from keys
            if cursor == b"0":
                return

    def delete_matching(self, pattern: str) -> int:
        keys = list(self.scan(pattern))
        for start in range(0, len(keys), 500):
            self.command("DEL", *keys[start : start + 500])
        return len(keys)

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


# --------------------------------------------------------------------------- job progress


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """`[b"name", b"workers", b"pending", 0, ...]` as `{"name": b"workers", "pending": 0}`."""
    return {key.decode(): value for key, value in zip(flat[::2], flat[1::2], strict=True)}


@dataclass(frozen=True)
class GroupProgress:
    """One consumer group of a stream, from XINFO GROUPS (Redis 7)."""

    entries_read: int  # entries delivered to the group's consumers so far
    pending: int  # delivered and not acknowledged yet (running, or their worker died)
    lag: int | None  # entries not delivered yet (None: Redis cannot tell, after a trim)


def group_progress(reply: Sequence[Any], group: str) -> GroupProgress | None:
    """The named group in an XINFO GROUPS reply, None while it does not exist."""
    for flat in reply:
        found = pairs(flat)
        if found["name"].decode() == group:
            return GroupProgress(
                entries_read=int(found.get("entries-read") or 0),
                pending=int(found["pending"]),
                lag=None if found.get("lag") is None else int(found["lag"]),
            )
    return None


def jobs_finished(progress: GroupProgress | None, queued: int) -> bool:
    """Every queued job was delivered and acknowledged: the worker acknowledges a job
    once it has run, so nothing is left to do."""
    return (
        progress is not None
        and progress.entries_read >= queued
        and progress.pending == 0
        and progress.lag == 0
    )


def jobs_started(progress: GroupProgress | None) -> bool:
    return progress is not None and (progress.entries_read > 0 or progress.pending > 0)


# --------------------------------------------------------------------------- latency


@dataclass
class TimedRun:
    """Every request's latency (ms) and status, from `timed_requests`."""

    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def failures(self, expected: int) -> int:
        return sum(count for status, count in self.statuses.items() if status != expected)


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies_ms, 50),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms, default=math.nan),
    }


def median_of(rows: Sequence[Mapping[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def timed_requests(
    base_url: str,
    method: str,
    path_for: Callable[[int], str],
    headers: Mapping[str, str],
    seconds: float,
    rate: float,
) -> TimedRun:
    """Send `rate` requests a second for `seconds` on one keep-alive connection, timing
    each from sending to the last byte of the answer. Paced on a schedule: a slow answer
    delays the next request, which is then sent at once (the achieved rate is reported)."""
    parsed = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    found = TimedRun()
    started = time.perf_counter()
    next_at = started
    index = 0
    try:
        while (now := time.perf_counter()) - started < seconds:
            if next_at > now:
                time.sleep(next_at - now)
            sent = time.perf_counter()
            try:
                connection.request(method, path_for(index), headers=dict(headers))
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnects on the next request
                status = 0
            found.latencies_ms.append(1000 * (time.perf_counter() - sent))
            found.statuses[status] = found.statuses.get(status, 0) + 1
            index += 1
            next_at += 1 / rate
    finally:
        connection.close()
    found.seconds = time.perf_counter() - started
    return found
