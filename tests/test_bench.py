"""The generated `make bench`: present, checked by the project's own tools, and working;
and the pure parts of this repository's own `make bench` (bench/run.py, bench/redis_tools.py)."""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
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


# --------------------------------------------------------------------------- the reference
# template (bench/full_stack.py), the counting client (bench/tail.py) and the closing table.


def fake_reference_tree(root: Path) -> Path:
    """The reference template's files, reduced to the lines the patches target."""
    from bench import full_stack

    for patch in full_stack.PATCHES:
        path = root / patch.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"before\n{patch.old}\nafter\n", encoding="utf-8")
    (root / "backend/app/main.py").write_text(f"app = make()\n{full_stack.FRONTEND_LINE}\n")
    return root


def test_reference_patches_apply(tmp_path: Path) -> None:
    from bench import full_stack

    tree = fake_reference_tree(tmp_path)
    done = full_stack.apply_patches(tree)
    assert len(done) == len(full_stack.PATCHES) + 1
    deps = (tree / "backend/app/api/deps.py").read_text()
    assert "except (InvalidTokenError, ValidationError):" in deps
    assert 'items: list["Item"] = Relationship(' in (tree / "backend/app/models.py").read_text()
    assert 'requires-python = ">=3.11,<4.0"' in (tree / "backend/pyproject.toml").read_text()
    assert (tree / full_stack.FRONTEND_INDEX).is_file()
    for patch in full_stack.PATCHES:
        text = (tree / patch.path).read_text()
        assert patch.old not in text
        assert text.startswith("before\n")
        assert text.endswith("after\n")


@pytest.mark.parametrize("index", [0, 1, 2])
def test_reference_patch_fails_when_its_target_is_gone(tmp_path: Path, index: int) -> None:
    from bench import full_stack

    tree = fake_reference_tree(tmp_path)
    patch = full_stack.PATCHES[index]
    (tree / patch.path).write_text("moved on\n")
    with pytest.raises(full_stack.PatchError, match=re.escape(patch.path)):
        full_stack.apply_patches(tree)


def test_reference_frontend_line_is_required(tmp_path: Path) -> None:
    from bench import full_stack

    tree = fake_reference_tree(tmp_path)
    (tree / "backend/app/main.py").write_text("app = make()\n")
    with pytest.raises(full_stack.PatchError, match=re.escape("backend/app/main.py")):
        full_stack.apply_patches(tree)


def test_reference_repo_without_the_commit(tmp_path: Path) -> None:
    from bench import full_stack

    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    with pytest.raises(full_stack.ReferenceUnavailableError, match="does not hold commit"):
        full_stack.obtain(tmp_path / "cache", str(tmp_path / "empty"))


def test_no_reference_copy_says_why_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No local copy, no cache, and the clone fails (no network): one line, then None."""
    from bench import full_stack, run

    monkeypatch.delenv("BENCH_REFERENCE_REPO", raising=False)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "cache")
    monkeypatch.setattr(full_stack, "UPSTREAM", str(tmp_path / "no-such-repository"))
    figures: dict[str, Any] = {}
    args = run.parse_args(["--only", "side-by-side"])
    assert run.prepare_reference(tmp_path, None, figures, args) is None  # type: ignore[arg-type]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith("reference template: not measured (git clone ")
    assert out[0].endswith(")")
    assert figures["reference_template"]["measured"] is False
    table = "\n".join(run.summary_table(figures))
    assert "reference template: not measured (git clone" in table


async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /sleep/<s> answers 200 after s seconds, /busy 503, /chunked a chunked 200."""
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode()
            if path.startswith("/sleep/"):
                await asyncio.sleep(float(path.removeprefix("/sleep/")))
            if path == "/chunked":
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                )
            else:
                status = b"503 Service Unavailable" if path == "/busy" else b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def tail_against_slow_server(paths: list[str], **options: Any) -> Any:
    from bench import tail

    async def main() -> Any:
        server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await tail.run_async(f"http://127.0.0.1:{port}", paths, **options)

    return asyncio.run(main())


def test_tail_counts_requests_in_flight_at_the_end() -> None:
    # Every connection's first request is still waiting when sending stops and the drain ends.
    result = tail_against_slow_server(["/sleep/5"], connections=3, seconds=0.2, drain_s=0.3)
    found = result.figures(slow_s=0.4)
    assert found["sent"] == 3
    assert found["answered"] == 0
    assert found["unanswered"] == 3
    assert found["waits_over_slow"] == 3
    assert found["max_wait_ms"] >= 400
    # With a longer drain the same requests are answered, and counted as slow ones.
    result = tail_against_slow_server(["/sleep/0.6"], connections=3, seconds=0.2, drain_s=5)
    found = result.figures(slow_s=0.5)
    assert (found["sent"], found["answered"], found["unanswered"]) == (3, 3, 0)
    assert found["waits_over_slow"] == 3
    assert found["statuses"] == {200: 3}


def test_tail_counts_statuses() -> None:
    result = tail_against_slow_server(["/busy", "/chunked"], connections=2, seconds=0.3)
    found = result.figures()
    assert found["sent"] == found["answered"] > 10
    assert found["unanswered"] == found["errors"] == 0
    assert set(found["statuses"]) == {200, 503}
    assert found["status_503"] == found["non_2xx"] == found["statuses"][503]
    assert found["waits_over_slow"] == 0


def made_up_figures() -> dict[str, Any]:
    def row(rps: float, p99: float, cpu: float) -> dict[str, Any]:
        return {"rps": rps, "p50_ms": 1.0, "p99_ms": p99, "cpu_ms_per_request": cpu, "errors": 0}

    def tail_row(slow: int, max_s: float, busy: int) -> dict[str, Any]:
        return {
            "seconds": 15,
            "sent": 9000,
            "waits_over_slow": slow,
            "slow_s": 2.0,
            "max_wait_ms": 1000 * max_s,
            "p99_ms": 90.0,
            "status_503": busy,
            "non_2xx": busy + (7 if busy else 0),
            "errors": 0,
            "unanswered": 1,
        }

    return {
        "side_by_side": {
            "working tree: /health": row(6900, 10, 0.1),
            "working tree: get-by-id": row(1000, 91, 1.87),
            "working tree: list": row(800, 104, 2.48),
            "reference template: /health": row(6700, 10, 0.1),
            "reference template: get-by-id": row(500, 186, 2.04),
            "reference template: list": row(400, 244, 2.5),
            "raw asyncpg: get-by-id": row(4000, 17, 0.21),
            "raw asyncpg: list": row(3200, 20, 0.3),
        },
        "cold_start": {
            "generated_s": 0.6,
            "reference_template_s": 0.8,
            "raw_asyncpg_s": 0.4,
        },
        "tail": {
            "this template": {"50": tail_row(0, 0.5, 0), "200": tail_row(0, 1.2, 0)},
            "reference template": {"50": tail_row(40, 10.5, 21), "200": tail_row(190, 12, 170)},
            "raw asyncpg": {"50": tail_row(0, 0.3, 0), "200": tail_row(0, 0.7, 0)},
        },
        "reference_template": {"measured": True},
    }


def test_summary_table_on_made_up_figures() -> None:
    from bench import run

    figures = made_up_figures()
    ratios = run.summary(figures)["ratios"]
    assert ratios["get-by-id / reference template"] == 2
    assert ratios["get-by-id / raw asyncpg"] == 0.25
    assert ratios["list / reference template"] == 2
    assert ratios["list / raw asyncpg"] == 0.25
    assert ratios["cold start / reference template"] == pytest.approx(0.75)
    assert ratios["cold start / raw asyncpg"] == pytest.approx(1.5)
    lines = run.summary_table(figures)
    assert lines[0] == "| scenario | this template | reference template | raw asyncpg |"
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[2:8]}
    assert rows["`/health`"] == ["6900 req/s", "6700 req/s", " |"]
    assert rows["authenticated get-by-id"][0] == "1000 req/s, p99 91 ms, 1.87 ms CPU"
    assert rows["authenticated list of 10 with total"][2] == "3200 req/s, p99 20 ms, 0.30 ms CPU |"
    assert rows["cold start to first authenticated 200"] == ["0.60 s", "0.80 s", "0.40 s |"]
    assert rows["15 s at 200 connections, fresh server"][1] == (
        "190 over 2 s, max 12.00 s, p99 90 ms, 170 x 503, 7 other non-2xx, 1 unanswered of 9000"
    )
    assert rows["15 s at 50 connections, fresh server"][0] == (
        "0 over 2 s, max 0.50 s, p99 90 ms, 0 x 503, 1 unanswered of 9000"
    )
    assert lines[-1].startswith("ratios: get-by-id / reference template 2.00; ")
    assert "cold start / raw asyncpg 1.50" in lines[-1]


def test_summary_without_the_reference() -> None:
    from bench import run

    figures = made_up_figures()
    figures["side_by_side"] = {
        name: row
        for name, row in figures["side_by_side"].items()
        if not name.startswith("reference")
    }
    figures["cold_start"]["reference_template_s"] = None
    ratios = run.summary(figures)["ratios"]
    assert ratios["get-by-id / reference template"] is None
    assert ratios["cold start / reference template"] is None
    assert ratios["get-by-id / raw asyncpg"] == 0.25
    assert "reference template 2.00" not in run.summary_table(figures)[-1]


def test_a_round_without_an_answer_is_infinitely_slow() -> None:
    """A stalled server answers nothing in a wrk run: no division by zero, and it shows."""
    from types import SimpleNamespace

    from bench import run

    def wrk(requests: int, p99_ms: float) -> Any:
        return SimpleNamespace(
            rps=requests / 5, requests=requests, p50_ms=p99_ms / 2, p99_ms=p99_ms,
            non_2xx=0, errors=0, timeouts=0 if requests else 50,
        )  # fmt: skip

    row = run.median_result([(wrk(1000, 90), 2.0), (wrk(0, 0), 0.1), (wrk(0, 0), 0.0)])
    assert row["rps"] == 0
    assert row["p99_ms"] == math.inf
    assert row["cpu_ms_per_request"] == math.inf
    assert row["errors"] == 100
    assert row["rounds_without_an_answer"] == 2
    figures = made_up_figures()
    figures["side_by_side"]["reference template: get-by-id"] = row
    assert run.summary(figures)["ratios"]["get-by-id / reference template"] is None
    cells = next(line for line in run.summary_table(figures) if "get-by-id |" in line)
    assert "0 req/s, p99 inf ms, inf ms CPU, 100 errors, 2 rounds without an answer" in cells


def test_rounds_with_fewer_answers_than_connections_stalled() -> None:
    """A server that answers a handful of 50 clients in a round is stalled too: its rate is
    no rate to divide by (it made a list ratio of 1670 in a real run)."""
    from types import SimpleNamespace

    from bench import run

    def wrk(requests: int) -> Any:
        return SimpleNamespace(
            rps=requests / 5, requests=requests, p50_ms=100.0, p99_ms=115.0,
            non_2xx=0, errors=0, timeouts=0,
        )  # fmt: skip

    row = run.median_result([(wrk(2), 0.2), (wrk(3), 0.3), (wrk(3000), 3.0)], connections=50)
    assert (row["stalled_rounds"], row["rounds"]) == (2, 3)
    assert run.stalled(row)
    figures = made_up_figures()
    figures["side_by_side"]["reference template: list"] = row
    assert run.summary(figures)["ratios"]["list / reference template"] is None
    cells = next(line for line in run.summary_table(figures) if "list of 10" in line)
    assert "2 of 3 rounds stalled (fewer answers than connections)" in cells
    healthy = run.median_result([(wrk(3000), 3.0)] * 3, connections=50)
    assert not run.stalled(healthy)


def test_where_the_reference_stalled_the_ratio_comes_from_fewer_connections() -> None:
    """The list stalled at 50 connections: the ratio is the one measured again at 20, and
    the table shows both."""
    from types import SimpleNamespace

    from bench import run

    def wrk(requests: int) -> Any:
        return SimpleNamespace(
            rps=requests / 5, requests=requests, p50_ms=10.0, p99_ms=40.0,
            non_2xx=0, errors=0, timeouts=0,
        )  # fmt: skip

    figures = made_up_figures()
    figures["side_by_side"]["reference template: list"] = run.median_result(
        [(wrk(2), 0.1)] * 3, connections=50
    )
    figures["side_by_side_below_stall"] = {
        "connections": 20,
        "rows": {
            "working tree: list": run.median_result([(wrk(3000), 3.0)] * 3, connections=20),
            "reference template: list": run.median_result([(wrk(1000), 3.0)] * 3, connections=20),
        },
    }
    ratios = run.summary(figures)["ratios"]
    assert ratios["list / reference template"] is None
    assert ratios["list / reference template at 20 connections"] == 3
    assert "get-by-id / reference template at 20 connections" not in ratios
    cells = next(line for line in run.summary_table(figures) if "list of 10" in line)
    assert "3 of 3 rounds stalled (fewer answers than connections); at 20 connections 200" in cells
    assert "list / reference template at 20 connections 3.00" in run.summary_table(figures)[-1]
