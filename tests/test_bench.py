"""The generated `make bench`: present, checked by the project's own tools, and working;
and the pure parts of this repository's own `make bench` (bench/run.py, bench/redis_tools.py)."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import BIN, VARIANTS, Variant, choices, suite_variants, uv_env
from tests.servers import DatabaseServer
from tests.test_docs import make_targets
from tests.test_variants import parametrize_variants

BENCH_MODULES = ("__init__", "__main__", "credentials", "load", "server")
# One variant per auth style: each renders its own bench/credentials.py.
ONE_PER_AUTH = list({variant.auth: variant for variant in VARIANTS}.values())


def test_every_auth_style_is_covered() -> None:
    assert sorted(variant.auth for variant in ONE_PER_AUTH) == sorted(choices("auth"))


@parametrize_variants(ONE_PER_AUTH)
def test_bench_is_rendered_and_checked(render: Callable[[Variant], Path], variant: Variant) -> None:
    """Every module compiles, and mypy --strict and ruff (the slow checks) cover them."""
    project = render(variant)
    # With users, every style's sign_in starts from the account bench/accounts.py creates.
    modules = BENCH_MODULES + (() if variant.auth == "none" else ("accounts",))
    for module in modules:
        path = project / "bench" / f"{module}.py"
        assert path.is_file(), f"bench/{module}.py is missing for auth={variant.auth}"
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert "bench" in pyproject["tool"]["mypy"]["files"]
    assert "bench" in make_targets(project / "Makefile")


def test_load_module_needs_only_the_standard_library(
    render: Callable[[Variant], Path],
) -> None:
    """The template's own `make bench` imports the rendered load generators from outside
    the project's virtualenv."""
    load = render(ONE_PER_AUTH[0]) / "bench" / "load.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('load', {str(load)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['load'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.find_tool('python') == 'python'\n"
        "request = module.Request('GET', '/posts/{n}', vary=(3, 9))\n"
        "assert request.url('http://x', 3) == 'http://x/posts/3'\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# The matrix's SQLite applications, one per auth style (the shape variants add nothing here).
SQLITE_APPS = [v for v in suite_variants() if v.id.startswith("sqlite-") and not v.redis]


def test_every_auth_style_runs_make_bench() -> None:
    assert sorted(variant.auth for variant in SQLITE_APPS) == sorted(choices("auth"))


@pytest.mark.slow
@parametrize_variants(SQLITE_APPS)
def test_make_bench_runs(
    render_copy: Callable[[Variant], Path], variant: Variant, tmp_path: Path
) -> None:
    """`make bench` end to end with a tiny duration: every scenario answered, none failed."""
    project = render_copy(variant)
    env = {
        **os.environ,
        **uv_env(variant.python_version),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # make bench calls uv
        # Cheap hashing: this proves the plumbing, it measures nothing.
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST": "8",
        "AUTH_ARGON2_PARALLELISM": "1",
    }
    env.pop("DATABASE_URL", None)  # a throw-away SQLite file
    subprocess.run([str(BIN / "uv"), "sync", "--quiet"], cwd=project, env=env, check=True)
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            "make",
            "bench",
            "DURATION=1",
            "CONNECTIONS=4",
            f"BENCH_ARGS=--rows 20 --json {output}",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["scenario"]: row for row in json.loads(output.read_text())}
    expected = {"baseline", "get-by-id", "list", "create"}
    if variant.auth in {"jwt", "session"}:  # api_key: creating keys is capped, no flood
        expected.add("login")
    assert set(rows) == expected
    for name, row in rows.items():
        result_row = row["result"]
        assert result_row["requests"] > 0, name
        failures = result_row["non_2xx"] + result_row["errors"] + result_row["timeouts"]
        assert failures == 0, (name, result_row)
    assert "x baseline" in result.stdout


# --------------------------------------------------------------------------- the template's
# own `make bench` (bench/run.py): its pure parts, without running it.


def test_bench_sections_default_to_all_and_only_selects() -> None:
    from bench import run

    assert run.parse_args([]).sections == set(run.SECTIONS)
    args = run.parse_args(["--only", "throttle", "jobs", "--jobs", "50"])
    assert args.sections == {"throttle", "jobs"}
    assert args.jobs == 50
    assert args.jobs_concurrency == 10
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "nothing"])


def test_resp_encoding_and_replies() -> None:
    from bench.redis_tools import RedisReplyError, encode_command, read_reply

    assert encode_command("XLEN", "bench:jobs") == b"*2\r\n$4\r\nXLEN\r\n$10\r\nbench:jobs\r\n"
    assert encode_command("SELECT", 3) == b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"
    reply = io.BytesIO(b"*4\r\n+OK\r\n:-2\r\n$-1\r\n*2\r\n$4\r\na\r\nb\r\n$0\r\n\r\n")
    assert read_reply(reply) == [b"OK", -2, None, [b"a\r\nb", b""]]
    error = read_reply(io.BytesIO(b"-ERR no such key\r\n"))
    assert isinstance(error, RedisReplyError)
    assert str(error) == "ERR no such key"
    with pytest.raises(ConnectionError):
        read_reply(io.BytesIO(b""))


def xinfo_group(name: str, entries_read: int | None, pending: int, lag: int | None) -> list[Any]:
    """One group of an XINFO GROUPS reply, as Redis 7 sends it."""
    return [
        b"name",
        name.encode(),
        b"consumers",
        1,
        b"pending",
        pending,
        b"last-delivered-id",
        b"0-0",
        b"entries-read",
        entries_read,
        b"lag",
        lag,
    ]


def test_job_completion_reads_the_consumer_group() -> None:
    from bench.redis_tools import GroupProgress, group_progress, jobs_finished, jobs_started

    reply = [xinfo_group("other", 5, 0, 0), xinfo_group("workers", 1990, 10, 0)]
    assert group_progress(reply, "workers") == GroupProgress(1990, 10, 0)
    assert group_progress(reply, "missing") is None
    waiting = GroupProgress(entries_read=0, pending=0, lag=2000)
    assert not jobs_started(None)
    assert not jobs_started(waiting)
    assert jobs_started(GroupProgress(1, 1, 1999))
    assert not jobs_finished(None, 2000)
    assert not jobs_finished(waiting, 2000)
    assert not jobs_finished(GroupProgress(2000, 3, 0), 2000)  # three still running
    assert not jobs_finished(GroupProgress(2000, 0, None), 2000)  # Redis cannot tell
    assert jobs_finished(GroupProgress(2000, 0, 0), 2000)
    # A group created on an empty stream has read nothing: entries-read nil means 0.
    assert group_progress([xinfo_group("workers", None, 0, 0)], "workers") == GroupProgress(0, 0, 0)


@pytest.mark.slow  # a real redis-server, which `make test-fast` does not start
def test_job_completion_on_a_real_redis(database_servers: dict[str, DatabaseServer]) -> None:
    """The worker's stream dance (read one, acknowledge it) as the bench then sees it."""
    from bench.redis_tools import RedisConnection, group_progress, jobs_finished, jobs_started

    if "redis" not in database_servers:
        database_servers["redis"] = DatabaseServer("redis").start()
    redis = RedisConnection(database_servers["redis"].create_database("bench-test"))
    try:
        for index in range(3):
            redis.command("XADD", "q", "*", "data", str(index))
        redis.command("XGROUP", "CREATE", "q", "workers", "0")

        def progress() -> Any:
            return group_progress(redis.command("XINFO", "GROUPS", "q"), "workers")

        assert not jobs_started(progress())
        for _ in range(3):
            [[_stream, [(entry_id, _fields)]]] = redis.command(
                "XREADGROUP", "GROUP", "workers", "w", "COUNT", 1, "STREAMS", "q", ">"
            )
            assert jobs_started(progress())
            assert not jobs_finished(progress(), 3)
            redis.command("XACK", "q", "workers", entry_id)
        assert jobs_finished(progress(), 3)
        assert redis.delete_matching("q*") == 1
    finally:
        redis.close()


def test_latency_figures() -> None:
    from bench.redis_tools import TimedRun, latency_summary, percentile
    from bench.run import merge_timed, timed_figures

    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7
    assert math.isnan(percentile([], 50))
    assert latency_summary([3.0, 1.0, 2.0]) == {"p50_ms": 2, "p99_ms": 3, "max_ms": 3}
    total = TimedRun()
    merge_timed(total, TimedRun(2.0, [1.0, 2.0], {202: 2}))
    merge_timed(total, TimedRun(2.0, [3.0, 40.0], {202: 1, 503: 1}))
    found = timed_figures(total)
    assert found["requests"] == 4
    assert found["rate"] == 1
    assert found["failures"] == 1
    assert found["statuses"] == {202: 3, 503: 1}
    assert found["max_ms"] == 40


def test_redis_sections_are_skipped_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import run
    from tests.servers import ServerUnavailableError

    def unavailable(self: DatabaseServer) -> DatabaseServer:
        raise ServerUnavailableError("redis server not installed; install it with: ...")

    monkeypatch.setattr(run.DatabaseServer, "start", unavailable)
    figures: dict[str, Any] = {}
    args = run.parse_args(["--only", "jobs", "throttle"])
    memory = run.Generated("working tree", tmp_path, {})
    # Nothing is rendered nor served before redis-server is there: no load module, no server.
    run.scale_out(tmp_path, None, memory, None, figures, args)  # type: ignore[arg-type]
    reason = "redis-server cannot be had: redis server not installed; install it with: ..."
    assert figures["skipped"] == {"jobs": reason, "throttle": reason}
    assert f"skipped: jobs, throttle: {reason}" in capsys.readouterr().out
