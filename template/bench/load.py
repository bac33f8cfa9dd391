"""Load generators: wrk when installed, else hey, else a pure-Python asyncio + httpx client.

Every generator runs one request shape against a running server for a fixed time with a
fixed number of connections and returns the same `Result`. Request paths may hold one
`{n}` placeholder, replaced by an integer drawn from `Request.vary` (wrk: a random one
per request; hey: always the lowest, hey cannot vary a URL; Python: a random one).

This module needs only the standard library at import time (httpx is imported by the
Python fallback alone), so other scripts can reuse it.
"""

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("wrk", "hey", "python")


@dataclass(frozen=True)
class Request:
    """One request shape; `{n}` in `path` is replaced by an integer from `vary`."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = None
    vary: tuple[int, int] = (0, 0)

    def url(self, base_url: str, n: int) -> str:
        return base_url + self.path.replace("{n}", str(n))


@dataclass(frozen=True)
class Credentials:
    """What authenticated requests carry, and how to log in (None: nothing to log in to)."""

    headers: Mapping[str, str]
    login: Request | None = None


@dataclass
class Result:
    tool: str
    connections: int
    seconds: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int  # answered with a status outside 200-399
    errors: int  # connection, read and write errors (no answer at all)
    timeouts: int  # no answer within the timeout
    statuses: dict[str, int] = field(default_factory=dict)  # when counted

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def find_tool(preferred: str = "auto") -> str:
    """The load generator to use: `preferred` if given, else the best one installed."""
    if preferred != "auto":
        if preferred not in TOOLS:
            raise ValueError(f"unknown load generator {preferred!r} (choose from {TOOLS})")
        if preferred != "python" and shutil.which(preferred) is None:
            raise ValueError(f"{preferred} is not installed")
        return preferred
    return next((tool for tool in TOOLS[:-1] if shutil.which(tool)), "python")


def run(
    tool: str,
    base_url: str,
    request: Request,
    *,
    connections: int,
    seconds: float,
    timeout: float = 10.0,
    count_statuses: bool = False,
) -> Result:
    """Drive `request` at `base_url` for `seconds` with `connections` open connections."""
    if tool == "wrk":
        return _run_wrk(base_url, request, connections, seconds, timeout, count_statuses)
    if tool == "hey":
        return _run_hey(base_url, request, connections, seconds, timeout)
    return asyncio.run(_run_python(base_url, request, connections, seconds, per_request=timeout))


def _lua_string(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return '"' + "".join(chr(b) if chr(b).isalnum() else f"\\{b:03d}" for b in raw) + '"'


_WRK_DONE = """
function done(summary, latency, requests)
  local statuses = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts") or {}) do
      statuses[tostring(status)] = (statuses[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(statuses) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d,'
    .. ' "max_us": %d, "status": %d, "connect": %d, "read": %d, "write": %d,'
    .. ' "timeout": %d, "statuses": {%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, table.concat(parts, ", ")))
end
"""


def _wrk_script(request: Request, count_statuses: bool) -> str:
    prefix, _, suffix = request.path.partition("{n}")
    headers = dict(request.headers)
    if request.content_type:
        headers["Content-Type"] = request.content_type
    lines = [
        "threads = {}",
        "function setup(thread) table.insert(threads, thread) end",
        f"wrk.method = {_lua_string(request.method)}",
        f"wrk.body = {_lua_string(request.body)}",
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()),
    ]
    if "{n}" in request.path:
        low, high = request.vary
        lines += [
            f"local prefix, suffix = {_lua_string(prefix)}, {_lua_string(suffix)}",
            "function request()",
            f"  return wrk.format(nil, prefix .. math.random({low}, {high}) .. suffix)",
            "end",
        ]
    else:
        lines.append(f"wrk.path = {_lua_string(request.path)}")
    if count_statuses:  # costs the client a little: wrk hands every response to Lua
        lines += [
            "counts = {}",
            "function response(status) counts[status] = (counts[status] or 0) + 1 end",
        ]
    return "\n".join(lines) + _WRK_DONE


def _run_wrk(
    base_url: str,
    request: Request,
    connections: int,
    seconds: float,
    timeout: float,
    count_statuses: bool,
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(request, count_statuses))
    try:
        command = [
            "wrk",
            "--threads=1",  # one client core: on a small machine the server needs the other
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout))}s",
            f"--script={script.name}",
            base_url,
        ]
        output = _check_output(command)
    finally:
        Path(script.name).unlink()
    line = next(line for line in output.splitlines() if line.startswith("BENCH_RESULT "))
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return Result(
        tool="wrk",
        connections=connections,
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["status"],
        errors=data["connect"] + data["read"] + data["write"],
        timeouts=data["timeout"],
        statuses=data["statuses"],
    )


_HEY_PERCENTILE = re.compile(r"^\s*(\d+)% in ([\d.]+) secs", re.MULTILINE)
_HEY_STATUS = re.compile(r"^\s*\[(\d+)\]\s+(\d+) responses", re.MULTILINE)
_HEY_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.*)$", re.MULTILINE)


def _run_hey(
    base_url: str, request: Request, connections: int, seconds: float, timeout: float
) -> Result:
    command = [
        "hey",
        "-cpus",
        "1",
        "-z",
        f"{max(1, round(seconds))}s",
        "-c",
        str(connections),
        "-t",
        str(max(1, round(timeout))),
        "-m",
        request.method,
    ]
    for name, value in request.headers.items():
        command += ["-H", f"{name}: {value}"]
    if request.body:
        command += ["-d", request.body.decode()]
    if request.content_type:
        command += ["-T", request.content_type]
    started = time.perf_counter()
    output = _check_output([*command, request.url(base_url, request.vary[0])])
    elapsed = time.perf_counter() - started
    percentiles = {int(p): float(s) * 1000 for p, s in _HEY_PERCENTILE.findall(output)}
    statuses = {status: int(count) for status, count in _HEY_STATUS.findall(output)}
    _, _, error_part = output.partition("Error distribution:")
    error_lines = _HEY_ERROR.findall(error_part)
    timeouts = sum(int(n) for n, text in error_lines if "deadline exceeded" in text)
    errors = sum(int(n) for n, _ in error_lines) - timeouts
    answered = sum(statuses.values())
    slowest = re.search(r"Slowest:\s+([\d.]+) secs", output)
    return Result(
        tool="hey",
        connections=connections,
        seconds=elapsed,
        requests=answered,
        p50_ms=percentiles.get(50, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        max_ms=float(slowest.group(1)) * 1000 if slowest else float("nan"),
        non_2xx=sum(n for s, n in statuses.items() if not 200 <= int(s) < 400),
        errors=errors,
        timeouts=timeouts,
        statuses=statuses,
    )


async def _run_python(
    base_url: str, request: Request, connections: int, seconds: float, *, per_request: float
) -> Result:
    """The fallback: `connections` coroutines, each sending one request after another.

    It shares the event loop's single core with itself, so it saturates long before wrk
    does: fast endpoints measure the client, not the server. Use wrk or hey for figures.
    """
    import httpx  # only this fallback needs it

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    failures = {"errors": 0, "timeouts": 0}
    headers = dict(request.headers)
    if request.content_type:
        headers["Content-Type"] = request.content_type
    low, high = request.vary
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            n = random.randint(low, high)  # noqa: S311  # load spread, not security
            sent = time.perf_counter()
            try:
                response = await client.request(
                    request.method,
                    request.path.replace("{n}", str(n)),
                    content=request.body or None,
                    headers=headers,
                )
            except httpx.TimeoutException:
                failures["timeouts"] += 1
                continue
            except httpx.TransportError:
                failures["errors"] += 1
                continue
            latencies.append(time.perf_counter() - sent)
            key = str(response.status_code)
            statuses[key] = statuses.get(key, 0) + 1

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=per_request) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        tool="python",
        connections=connections,
        seconds=elapsed,
        requests=len(latencies),
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
        non_2xx=sum(n for s, n in statuses.items() if not 200 <= int(s) < 400),
        errors=failures["errors"],
        timeouts=failures["timeouts"],
        statuses=statuses,
    )


def _percentile(ordered: Sequence[float], percent: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index]


def _check_output(command: list[str]) -> str:
    result = subprocess.run(  # noqa: S603  # argv built here, no shell
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout
