"""A load client that counts every request it sent (`make bench`'s sustained-load tail).

wrk drops the requests still in flight when a run ends, so a request that waited the whole
run is never seen. Here each of `connections` keep-alive HTTP/1.1 connections sends a
request, waits for its answer, and sends the next, until `seconds` are up; then it sends no
new one but waits for the one in flight, up to `drain_s` more, and counts it as unanswered
if nothing came. Standard library only (asyncio streams), one process, one thread.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.redis_tools import percentile

SLOW_S = 2.0  # the target: no request waits longer


@dataclass
class TailResult:
    connections: int
    seconds: float  # the sending window
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # answered requests
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # the connection failed or closed before an answer
    unanswered: int = 0  # still in flight when the drain ended
    unanswered_waits_ms: list[float] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies_ms)

    def figures(self, slow_s: float = SLOW_S) -> dict[str, Any]:
        slow_ms = 1000 * slow_s
        waits = self.latencies_ms + self.unanswered_waits_ms
        return {
            "connections": self.connections,
            "seconds": self.seconds,
            "sent": self.sent,
            "answered": self.answered,
            "rate": self.answered / self.seconds if self.seconds else 0.0,
            "statuses": dict(sorted(self.statuses.items())),
            "status_503": self.statuses.get(503, 0),
            "non_2xx": sum(n for status, n in self.statuses.items() if not 200 <= status < 300),
            "errors": self.errors,
            "unanswered": self.unanswered,
            # Unanswered requests waited at least as long as they are counted here.
            "waits_over_slow": sum(1 for wait in waits if wait > slow_ms),
            "slow_s": slow_s,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "max_wait_ms": max(waits, default=float("nan")),
        }


def encode_request(method: str, path: str, host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Length: 0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One HTTP/1.1 response, body read and dropped: (status, the server keeps the
    connection open)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed before an answer")
    status = int(status_line.split(None, 2)[1])
    length, chunked, keep_alive = 0, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionError("closed in the headers")
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, keep_alive


async def _connection(
    host: str,
    port: int,
    requests: Sequence[bytes],
    result: TailResult,
    end: float,
    deadline: float,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while time.perf_counter() < end:
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, port), max(0.001, end - time.perf_counter())
                    )
                except (OSError, TimeoutError):
                    result.errors += 1
                    await asyncio.sleep(0.05)
                    continue
            assert reader is not None
            result.sent += 1
            sent = time.perf_counter()
            try:
                writer.write(random.choice(requests))  # noqa: S311  # load, not secrets
                await writer.drain()
                status, keep_alive = await asyncio.wait_for(
                    read_response(reader), max(0.001, deadline - sent)
                )
            except TimeoutError:
                result.unanswered += 1
                result.unanswered_waits_ms.append(1000 * (time.perf_counter() - sent))
                return
            except (OSError, ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError):
                result.errors += 1
                writer.close()
                writer = None
                continue
            result.latencies_ms.append(1000 * (time.perf_counter() - sent))
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if not keep_alive:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def run_async(
    base_url: str,
    paths: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
    connections: int,
    seconds: float,
    drain_s: float = 30.0,
) -> TailResult:
    """`connections` connections sending GET `paths` (picked at random) for `seconds`."""
    hostport = base_url.removeprefix("http://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    requests = [encode_request("GET", path, hostport, headers or {}) for path in paths]
    result = TailResult(connections, seconds)
    started = time.perf_counter()
    end, deadline = started + seconds, started + seconds + drain_s
    await asyncio.gather(
        *(_connection(host, int(port), requests, result, end, deadline) for _ in range(connections))
    )
    return result


def run(
    base_url: str,
    paths: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
    connections: int,
    seconds: float,
    drain_s: float = 30.0,
) -> TailResult:
    return asyncio.run(
        run_async(
            base_url,
            paths,
            headers=headers,
            connections=connections,
            seconds=seconds,
            drain_s=drain_s,
        )
    )
