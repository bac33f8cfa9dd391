"""`make bench`: the template's performance figures, measured side by side in one run.

1. Render time of the default variant, beside a one-file template (copier's own floor).
2. Cold start: process spawn to the first authenticated database-backed answer.
3. The PostgreSQL variant (rendered, installed with uv, served on a throw-away PostgreSQL
   from tests/servers.py) against the reference template (fastapi/full-stack-fastapi-template's
   backend at a pinned commit, bench/full_stack.py) and `bench/reference_app.py` (FastAPI +
   raw asyncpg on the generated app's table): `/health`, get-by-id and a list of 10 with its
   total, alternated round by round.
4. The sustained-load tail: 15-second runs of get-by-id at 50 and 200 connections on a fresh
   server of each app, by a client that counts every request it sent (bench/tail.py).
5. Login flood: concurrent logins while measuring `/health` and an authenticated read.
6. With a throw-away redis-server: the same variant rendered with `redis=true`; logins with
   the in-memory throttle beside the Redis one, alternated round by round; the enqueue
   latency of a job under the get-by-id load; jobs per second through one worker.
7. The generated project's own `make bench` on the same server.

`--only SECTION...` measures a selection (the PostgreSQL variant is rendered for any).

At the end, one table: this template, the reference template and raw asyncpg, and the
ratios the hot-path targets use.

Every figure of one run comes from the same machine at the same time: compare ratios, not
absolute numbers across runs (the load generator shares the CPU with the server).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from find_python import find as find_python  # noqa: E402

from bench import full_stack, tail  # noqa: E402
from bench.redis_tools import (  # noqa: E402
    RedisConnection,
    RedisReplyError,
    TimedRun,
    group_progress,
    jobs_finished,
    jobs_started,
    latency_summary,
    timed_requests,
)
from tests.servers import DatabaseServer, ServerUnavailableError, free_port  # noqa: E402

PACKAGE = "my_api"  # the default project_name's package
RESULTS = ROOT / ".bench"
SECTIONS = (
    "render",
    "cold-start",
    "side-by-side",
    "tail",
    "login-flood",
    "throttle",
    "jobs",
    "make-bench",
)
# Sections that serve the seeded PostgreSQL variant (and sign its user in).
SEEDED = {"cold-start", "side-by-side", "tail", "login-flood"}
# Sections that measure the reference template too.
WITH_REFERENCE = {"cold-start", "side-by-side", "tail"}
REFERENCE_LABEL = "reference template"
RAW_LABEL = "raw asyncpg"


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- tools


def ensure_wrk() -> None:
    """wrk gives the figures; install it with apt-get when root and missing (as tests do)."""
    if shutil.which("wrk"):
        return
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"wrk is not installed; install it with: sudo {' '.join(command)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(command, check=True, capture_output=True)


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **options)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def timed(command: list[str], **options: Any) -> float:
    started = time.perf_counter()
    run(command, **options)
    return time.perf_counter() - started


def snapshot(dest: Path) -> Path:
    """The working tree's template (uncommitted changes included), like dev-render.sh."""
    dest.mkdir(parents=True)
    for name in ("copier.yml", "includes", "template"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    return dest


def snapshot_at(ref: str, dest: Path) -> Path:
    """The template as committed at a git ref, to measure a change against."""
    dest.mkdir(parents=True)
    archive = run_bytes(
        ["git", "-C", str(ROOT), "archive", ref, "copier.yml", "includes", "template"]
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_bytes(command: list[str]) -> bytes:
    return subprocess.run(command, capture_output=True, check=True).stdout


def trivial_template(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "copier.yml").write_text("name:\n  type: str\n  default: demo\n")
    (dest / "README.md.jinja").write_text("# {{ name }}\n")
    return dest


def copier_copy(source: Path, dest: Path, *answers: str) -> float:
    data = [arg for answer in answers for arg in ("-d", answer)]
    shutil.rmtree(dest, ignore_errors=True)
    env = {**os.environ, "COPIER_SETTINGS_PATH": str(dest.parent / "copier-settings.yml")}
    (dest.parent / "copier-settings.yml").write_text("{}\n")
    return timed(
        [str(BIN / "copier"), "copy", "--quiet", "--defaults", *data, str(source), str(dest)],
        env=env,
    )


def install(project: Path) -> float:
    """`uv sync`, with the dependencies compiled to bytecode like the Dockerfile's image.

    Without it, cold starts measure compiling every module whenever PYTHONDONTWRITEBYTECODE
    is set (as in the image): the interpreter then caches nothing it compiles.
    """
    python = find_python((project / ".python-version").read_text().strip())
    env = {
        **os.environ,
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
        "UV_NO_PROGRESS": "1",
        "UV_COMPILE_BYTECODE": "1",
    }
    return timed(
        [str(BIN / "uv"), "sync", "--quiet", "--python", str(python)], cwd=project, env=env
    )


def generated_module(project: Path, name: str) -> ModuleType:
    """A stdlib-only module of the generated project's bench package (its load generators)."""
    spec = importlib.util.spec_from_file_location(
        f"generated_{name}", project / "bench" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- servers


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    data, all_headers = None, dict(headers or {})
    if json_body is not None:
        data, all_headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  # loopback
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, OSError):
        return 0, None


def wait_for(url: str, headers: Mapping[str, str] | None = None, timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if http("GET", url, headers=headers, timeout=2)[0] == 200:
            return time.perf_counter() - started
        time.sleep(0.01)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 30 s to finish, then SIGKILL."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve(command: list[str], env: Mapping[str, str], cwd: Path, port: int) -> Iterator[Served]:
    log_file = tempfile.TemporaryFile()  # noqa: SIM115  # closed in the finally below
    process = subprocess.Popen(
        command, cwd=cwd, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT
    )
    served = Served(process, f"http://127.0.0.1:{port}")
    try:
        yield served
    except Exception:
        log_file.seek(0)
        lines = log_file.read().decode(errors="replace").splitlines()
        wanted = [line for line in lines if ".access" not in line]  # not the access lines
        print("\n".join(wanted[-40:]), file=sys.stderr)
        raise
    finally:
        stop(process)
        log_file.close()


def uvicorn_command(project: Path, app: str, port: int, *extra: str) -> list[str]:
    """The Dockerfile's command line, on loopback."""
    return [
        str(project / ".venv/bin/python"),
        "-m",
        "uvicorn",
        app,
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]


@dataclass
class Generated:
    """A generated PostgreSQL project, its server settings and a signed-in user."""

    label: str
    project: Path
    env: dict[str, str]
    token: str = ""
    form: dict[str, str] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def command(self, port: int) -> list[str]:
        return uvicorn_command(self.project, f"{PACKAGE}.main:create_app", port, "--factory")

    @contextmanager
    def serve(self, **env: str) -> Iterator[Served]:
        port = free_port()
        with serve(self.command(port), {**self.env, **env}, self.project, port) as served:
            wait_for(f"{served.base_url}/health")
            yield served


def sign_up(base_url: str) -> dict[str, str]:
    """A new account (hashed with this server's argon2 costs): its login form."""
    email = f"bench-{secrets.token_hex(4)}@example.com"
    form = {"username": email, "password": secrets.token_urlsafe(16)}
    status, _ = http(
        "POST",
        f"{base_url}/auth/register",
        json_body={"email": email, "password": form["password"]},
    )
    assert status == 201, status
    return form


def login_request(load: ModuleType, form: Mapping[str, str]) -> Any:
    return load.Request(
        "POST",
        "/auth/login",
        body=urllib.parse.urlencode(form).encode(),
        content_type="application/x-www-form-urlencoded",
    )


def sign_up_and_seed(generated: Generated, base_url: str, rows: int) -> None:
    generated.form = sign_up(base_url)
    status, body = http("POST", f"{base_url}/auth/login", form=generated.form)
    assert status == 200, status
    generated.token = body["access_token"]

    def create(index: int) -> int:
        status, body = http(
            "POST",
            f"{base_url}/posts",
            json_body={"name": f"post {index}"},
            headers=generated.headers,
        )
        assert status == 201, status
        return int(body["id"])

    with ThreadPoolExecutor(8) as pool:
        generated.ids = sorted(pool.map(create, range(rows)))


@dataclass
class Reference:
    """The reference template, installed, migrated, seeded, and its normal user's token."""

    tree: Path
    env: dict[str, str]
    rows: int
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def cwd(self) -> Path:
        return self.tree / "backend"

    def command(self, port: int) -> list[str]:
        return full_stack.uvicorn_command(self.tree, port)

    @contextmanager
    def serve(self) -> Iterator[Served]:
        port = free_port()
        with serve(self.command(port), self.env, self.cwd, port) as served:
            wait_for(served.base_url + REFERENCE_HEALTH)
            yield served


REFERENCE_HEALTH = "/api/v1/utils/health-check/"
REFERENCE_READ = f"/api/v1/items/{full_stack.ID_PREFIX}{{n}}"
REFERENCE_LIST = "/api/v1/items/?skip=0&limit=10"


def reference_repo(args: argparse.Namespace) -> str | None:
    return args.reference_repo or os.environ.get("BENCH_REFERENCE_REPO") or None


def prepare_reference(
    project: Path, server: DatabaseServer, figures: dict[str, Any], args: argparse.Namespace
) -> Reference | None:
    """The reference template ready to serve, on the generated project's Python, or None
    after one line saying why not."""
    try:
        tree = full_stack.obtain(RESULTS, reference_repo(args))
        version = (project / ".python-version").read_text().strip()
        python = find_python(version)
        if python is None:
            raise full_stack.ReferenceUnavailableError(f"no Python {version} interpreter found")
        started = time.perf_counter()
        full_stack.install(tree, BIN / "uv", python)
        installed = time.perf_counter() - started
        secret = secrets.token_hex(32)
        env = {
            **os.environ,
            **full_stack.settings_env(
                server.create_database("reference"), secret, secrets.token_urlsafe(16)
            ),
        }
        email = f"bench-{secrets.token_hex(4)}@example.com"
        password = secrets.token_urlsafe(16)
        full_stack.prepare(tree, env, email, password, args.rows)
    except (full_stack.ReferenceUnavailableError, RuntimeError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        log(f"reference template: not measured ({reason})")
        figures["reference_template"] = {"measured": False, "reason": reason}
        return None
    reference = Reference(tree, env, args.rows)
    with reference.serve() as served:
        status, body = http(
            "POST",
            served.base_url + "/api/v1/login/access-token",
            form={"username": email, "password": password},
        )
        assert status == 200, status
        reference.token = body["access_token"]
    figures["reference_template"] = {
        "measured": True,
        "commit": full_stack.PIN,
        "python": python,
        "rows": args.rows,
        "rows_owner": "a normal user (its item routes filter by owner)",
    }
    log(
        f"reference template (full-stack-fastapi-template {full_stack.PIN[:8]}, backend) "
        f"installed with uv in {installed:.1f} s, {args.rows} items of a normal user"
    )
    return reference


# --------------------------------------------------------------------------- measurements


def median_result(
    results: list[tuple[Any, float]], connections: int | None = None
) -> dict[str, float]:
    """Medians over rounds of (wrk result, the server's CPU seconds during the run).

    A round that answered nothing (a stalled server) counts as infinitely slow and costly:
    wrk then reports latencies of 0. With `connections`, a round that answered fewer
    requests than it had connections open also counts as stalled: most of its clients never
    got an answer (the reference template's sync sessions can deadlock its thread pool)."""
    inf = float("inf")
    return {
        "rps": statistics.median(r.rps for r, _ in results),
        "p50_ms": statistics.median(r.p50_ms if r.requests else inf for r, _ in results),
        "p99_ms": statistics.median(r.p99_ms if r.requests else inf for r, _ in results),
        "cpu_ms_per_request": statistics.median(
            1000 * cpu / r.requests if r.requests else inf for r, cpu in results
        ),
        "errors": sum(r.non_2xx + r.errors + r.timeouts for r, _ in results),
        "rounds_without_an_answer": sum(1 for r, _ in results if not r.requests),
        "rounds": len(results),
        "stalled_rounds": sum(1 for r, _ in results if r.requests < (connections or 1)),
    }


def stalled(row: Mapping[str, Any]) -> bool:
    """Whether most rounds of a side-by-side row stalled: its rate is no rate to compare."""
    return 2 * int(row.get("stalled_rounds", 0)) > int(row.get("rounds", 1))


def divide(numerator: float, denominator: float) -> float:
    """A ratio of rates; nan when nothing was answered in the denominator's run."""
    return numerator / denominator if denominator else float("nan")


COLD_START_ROUNDS = 7


@dataclass
class ColdStart:
    """How to spawn one app, its own modules, and the first authenticated request a cold
    start waits for."""

    start: Callable[[int], list[str]]
    env: Mapping[str, str]
    cwd: Path
    sources: Path
    path: str
    headers: Mapping[str, str] | None = None

    def compile_sources(self) -> None:
        """Byte-compile the app's own modules with its interpreter, as its image has them
        (this template's Dockerfile installs them compiled; the reference's writes them at
        its first start). With PYTHONDONTWRITEBYTECODE set, as in the image, nothing would
        cache them, and every cold start would also measure compiling them."""
        python = self.start(0)[0]
        run([python, "-m", "compileall", "-q", str(self.sources)], cwd=self.cwd)


def cold_start(app: ColdStart) -> float:
    """Seconds from spawning the server to its first 200 on `app.path`."""
    port = free_port()
    started = time.perf_counter()
    with serve(app.start(port), app.env, app.cwd, port) as served:
        wait_for(served.base_url + app.path, headers=app.headers)
        return time.perf_counter() - started


def concurrently(*jobs: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(jobs)

    def target(index: int, job: Callable[[], Any]) -> None:
        results[index] = job()

    threads = [threading.Thread(target=target, args=pair) for pair in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# --------------------------------------------------------------------------- sections


def bench_render(work: Path, figures: dict[str, Any], runs: int) -> None:
    template = work / "template-src"
    trivial = trivial_template(work / "trivial-src")
    default_times, trivial_times = [], []
    for index in range(runs):  # interleaved, so both see the same machine load
        default_times.append(copier_copy(template, work / f"render-{index}"))
        trivial_times.append(copier_copy(trivial, work / f"trivial-{index}"))
    files = sum(1 for path in (work / "render-0").rglob("*") if path.is_file())
    figures["render"] = {
        "default_s": statistics.median(default_times),
        "trivial_s": statistics.median(trivial_times),
        "files": files,
    }
    render = figures["render"]
    log(
        f"render (copier copy, median of {runs}): default variant {render['default_s']:.2f} s"
        f" ({files} files), one-file template {render['trivial_s']:.2f} s"
    )


def bench_postgres(work: Path, figures: dict[str, Any], args: argparse.Namespace) -> None:
    sources = {"working tree": work / "template-src"}
    if args.against:
        sources[args.against] = snapshot_at(args.against, work / "template-ref")
    server = DatabaseServer("postgresql").start()
    try:
        projects = []
        for index, (label, source) in enumerate(sources.items()):
            project = work / f"pg-project-{index}"
            copier_copy(source, project, "database=postgresql", "deployment=none")
            log(f"PostgreSQL variant ({label}) installed with uv in {install(project):.1f} s")
            env = {
                **os.environ,
                "ENVIRONMENT": "production",
                "SECRET_KEY": secrets.token_hex(32),
                "DATABASE_URL": server.create_database(f"bench{index}"),
                "POSTS_MAX_ITEMS": str(10**9),
            }
            run([str(project / ".venv/bin/alembic"), "upgrade", "heads"], cwd=project, env=env)
            projects.append(Generated(label, project, env))
        current = projects[0]
        load = generated_module(current.project, "load")
        reference = None
        if args.sections & WITH_REFERENCE:
            reference = prepare_reference(current.project, server, figures, args)
        if args.sections & SEEDED:
            served_sections(load, projects, reference, figures, args)
        if "login-flood" in args.sections:
            for generated in projects:
                login_flood(load, generated, figures, args)
        if args.sections & {"throttle", "jobs"}:
            scale_out(work, load, current, server, figures, args)
        if "make-bench" in args.sections:
            own_make_bench(current.project, server, figures, args)
    finally:
        server.stop()


def served_sections(
    load: ModuleType,
    projects: list[Generated],
    reference: Reference | None,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Cold start, side by side, and the tail: the seeded projects, the reference template
    and raw asyncpg."""
    current = projects[0]
    raw_url = current.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    raw_env = {**os.environ, "REFERENCE_DATABASE_URL": raw_url}

    def raw_command(port: int) -> list[str]:
        return uvicorn_command(
            current.project, "reference_app:app", port, "--app-dir", str(ROOT / "bench")
        )

    @contextmanager
    def serve_raw() -> Iterator[Served]:
        port = free_port()
        with serve(raw_command(port), raw_env, current.project, port) as raw:
            wait_for(raw.base_url + f"/posts/{current.ids[0]}")
            yield raw

    with ExitStack() as stack:
        apps = [stack.enter_context(generated.serve()) for generated in projects]
        for generated, app in zip(projects, apps, strict=True):
            sign_up_and_seed(generated, app.base_url, args.rows)
        if "cold-start" in args.sections:
            cold_starts(projects, reference, raw_command, raw_env, figures)
        if "side-by-side" in args.sections:
            with ExitStack() as others:
                raw = others.enter_context(serve_raw())
                served_reference = others.enter_context(reference.serve()) if reference else None
                side_by_side(
                    load,
                    list(zip(projects, apps, strict=True)),
                    (reference, served_reference) if reference and served_reference else None,
                    raw,
                    figures,
                    args,
                )
    if "tail" in args.sections:  # fresh servers, the seeded ones stopped
        tail_section(current, reference, serve_raw, figures, args)


def cold_starts(
    projects: list[Generated],
    reference: Reference | None,
    raw_command: Callable[[int], list[str]],
    raw_env: Mapping[str, str],
    figures: dict[str, Any],
    rounds: int = COLD_START_ROUNDS,
) -> None:
    """Spawn to the first authenticated 200 of a get-by-id (raw asyncpg: no auth), the
    median of `rounds`; each round starts every app once, so all see the same machine load."""
    current = projects[0]
    apps = {
        generated.label: ColdStart(
            generated.command,
            generated.env,
            generated.project,
            generated.project / "src",
            f"/posts/{generated.ids[0]}",
            generated.headers,
        )
        for generated in projects
    }
    if reference is not None:
        apps[REFERENCE_LABEL] = ColdStart(
            reference.command,
            reference.env,
            reference.cwd,
            reference.cwd / "app",
            REFERENCE_READ.replace("{n}", str(full_stack.ID_BASE)),
            reference.headers,
        )
    apps[RAW_LABEL] = ColdStart(
        raw_command,
        raw_env,
        current.project,
        ROOT / "bench" / "reference_app.py",
        f"/posts/{current.ids[0]}",
    )
    for app in apps.values():
        app.compile_sources()
    times: dict[str, list[float]] = {label: [] for label in apps}
    for _ in range(rounds):
        for label, app in apps.items():
            times[label].append(cold_start(app))
    medians = {label: statistics.median(found) for label, found in times.items()}
    cold: dict[str, Any] = {
        "generated_s": medians[current.label],
        "reference_template_s": medians.get(REFERENCE_LABEL),
        "raw_asyncpg_s": medians[RAW_LABEL],
        "rounds": rounds,
        "runs_s": times,
    }
    figures["cold_start"] = cold
    shown = f"{cold['reference_template_s']:.2f} s" if reference else "not measured"
    against = "".join(
        f", {generated.label} {medians[generated.label]:.2f} s" for generated in projects[1:]
    )
    log(
        "cold start, spawn to the first authenticated get-by-id 200 (median of "
        f"{rounds} rounds, the apps interleaved, their own modules byte-compiled): this "
        f"template {cold['generated_s']:.2f} s"
        f"{against}, reference template {shown}, raw asyncpg {cold['raw_asyncpg_s']:.2f} s"
    )


def side_by_side(
    load: ModuleType,
    apps: list[tuple[Generated, Served]],
    reference: tuple[Reference, Served] | None,
    raw: Served,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Round after round, each endpoint in turn: all of them see the same machine load."""
    cases: dict[str, tuple[Served, Any]] = {}
    for generated, app in apps:
        cases[f"{generated.label}: /health"] = (app, load.Request("GET", "/health"))
        for scenario, request in generated_reads(load, generated).items():
            cases[f"{generated.label}: {scenario}"] = (app, request)
    if reference is not None:
        ref, served = reference
        cases[f"{REFERENCE_LABEL}: /health"] = (served, load.Request("GET", REFERENCE_HEALTH))
        for scenario, request in reference_reads(load, ref).items():
            cases[f"{REFERENCE_LABEL}: {scenario}"] = (served, request)
    current = apps[0][0]
    raw_read = load.Request("GET", "/posts/{n}", vary=(current.ids[0], current.ids[-1]))
    cases[f"{RAW_LABEL}: get-by-id"] = (raw, raw_read)
    cases[f"{RAW_LABEL}: list"] = (raw, load.Request("GET", "/posts?limit=10"))
    summary = in_rounds(load, cases, args.connections, args)
    figures["side_by_side"] = summary
    log(
        f"\nside by side on PostgreSQL, {args.connections} connections, "
        f"median of {args.rounds} rounds of {args.duration:.0f} s "
        f"(list: 10 rows and the total; {REFERENCE_LABEL}: /api/v1/items/):"
    )
    log_rows(summary)
    raw_rps = summary[f"{RAW_LABEL}: get-by-id"]["rps"]
    figures["ratios"] = {}
    for generated, _ in apps:
        read_rps = summary[f"{generated.label}: get-by-id"]["rps"]
        base_rps = summary[f"{generated.label}: /health"]["rps"]
        ratios = {
            "get_by_id_vs_baseline": divide(read_rps, base_rps),
            "get_by_id_vs_raw_asyncpg": divide(read_rps, raw_rps),
            "raw_asyncpg_vs_baseline": divide(raw_rps, base_rps),
        }
        figures["ratios"][generated.label] = ratios
        log(
            f"  {generated.label}: get-by-id / baseline {ratios['get_by_id_vs_baseline']:.2f}; "
            f"get-by-id / raw asyncpg {ratios['get_by_id_vs_raw_asyncpg']:.2f}; "
            f"raw asyncpg / baseline {ratios['raw_asyncpg_vs_baseline']:.2f}"
        )
    if reference is not None:
        below_stall(load, apps[0], reference[0], summary, figures, args)


def generated_reads(load: ModuleType, generated: Generated) -> dict[str, Any]:
    """This template's authenticated reads: get-by-id (over every seeded id) and the list."""
    return {
        "get-by-id": load.Request(
            "GET", "/posts/{n}", generated.headers, vary=(generated.ids[0], generated.ids[-1])
        ),
        "list": load.Request("GET", "/posts?limit=10", generated.headers),
    }


def reference_reads(load: ModuleType, reference: Reference) -> dict[str, Any]:
    """The reference template's: item-by-id (over its seeded items) and its list."""
    ids = (full_stack.ID_BASE, full_stack.ID_BASE + reference.rows - 1)
    return {
        "get-by-id": load.Request("GET", REFERENCE_READ, reference.headers, vary=ids),
        "list": load.Request("GET", REFERENCE_LIST, reference.headers),
    }


def in_rounds(
    load: ModuleType,
    cases: Mapping[str, tuple[Served, Any]],
    connections: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Each case's median over `args.rounds` rounds, every case in turn within a round (all
    of them see the same machine load), after a one-second warm-up each."""
    results: dict[str, list[tuple[Any, float]]] = {name: [] for name in cases}
    options = {"connections": connections, "timeout": 30}
    for served, request in cases.values():  # warm-up
        load.run("wrk", served.base_url, request, seconds=1, **options)
    for _ in range(args.rounds):
        for name, (served, request) in cases.items():
            cpu = served.cpu_seconds()
            result = load.run("wrk", served.base_url, request, seconds=args.duration, **options)
            results[name].append((result, served.cpu_seconds() - cpu))
    return {name: median_result(found, connections) for name, found in results.items()}


def log_rows(rows: Mapping[str, Mapping[str, Any]]) -> None:
    log(f"  {'endpoint':<34}{'req/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms/req':>11}{'errors':>7}")
    for name, row in rows.items():
        cells = (
            f"{row['rps']:>7.0f}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}"
            f"{row['cpu_ms_per_request']:>11.2f}{row['errors']:>7}"
        )
        log(f"  {name:<34}{cells}")


def below_stall(
    load: ModuleType,
    current: tuple[Generated, Served],
    reference: Reference,
    summary: Mapping[str, Any],
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """The scenarios where the reference template stalled, measured again for it and this
    template at fewer connections, on a fresh reference server: a rate to compare with.

    The reference runs its sync routes and session dependency in Starlette's pool of 40
    threads, with 15 database connections: with more requests in flight than threads, the
    threads can all wait for a connection that only a thread can give back (until the pool's
    30-second timeout). Below 40 connections that cannot happen.
    """
    scenarios = [
        scenario
        for scenario in ("get-by-id", "list")
        if stalled(summary.get(f"{REFERENCE_LABEL}: {scenario}", {}))
    ]
    if not scenarios:
        return
    connections = args.below_stall_connections
    generated, app = current
    mine, theirs = generated_reads(load, generated), reference_reads(load, reference)
    with reference.serve() as served:
        cases: dict[str, tuple[Served, Any]] = {}
        for scenario in scenarios:
            cases[f"{generated.label}: {scenario}"] = (app, mine[scenario])
            cases[f"{REFERENCE_LABEL}: {scenario}"] = (served, theirs[scenario])
        found = in_rounds(load, cases, connections, args)
    figures["side_by_side_below_stall"] = {"connections": connections, "rows": found}
    log(
        f"\nthe reference template stalled at {args.connections} connections ("
        + ", ".join(scenarios)
        + f"): again at {connections} connections, a fresh reference server, "
        f"median of {args.rounds} rounds:"
    )
    log_rows(found)


def tail_section(
    current: Generated,
    reference: Reference | None,
    serve_raw: Callable[[], Any],
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Get-by-id for `--tail-seconds` at 50 and 200 connections, a fresh server each run,
    every request counted (bench/tail.py): waits over 2 s, 503s, the unanswered."""
    post_paths = [f"/posts/{n}" for n in current.ids]
    targets: list[tuple[str, Callable[[], Any], list[str], dict[str, str]]] = [
        ("this template", current.serve, post_paths, current.headers),
    ]
    if reference is not None:
        ref_paths = [
            REFERENCE_READ.replace("{n}", str(full_stack.ID_BASE + index))
            for index in range(reference.rows)
        ]
        targets.append((REFERENCE_LABEL, reference.serve, ref_paths, reference.headers))
    targets.append((RAW_LABEL, serve_raw, post_paths, {}))
    found: dict[str, Any] = figures.setdefault("tail", {})
    with current.serve() as app:  # what the client itself can do, on the cheapest route
        spent = time.process_time()
        ceiling = tail.run(app.base_url, ["/health"], connections=200, seconds=5).figures()
        spent = time.process_time() - spent
    found["client_on_health"] = {**ceiling, "client_cpu_share": spent / 5}
    log(
        f"\nsustained-load tail: get-by-id, {args.tail_seconds:.0f} s at 50 and at 200 "
        f"connections, a fresh server each run; every request counted, those in flight at the "
        f"end waited for up to {args.tail_drain:.0f} s (the client on this template's /health, "
        f"200 connections: {ceiling['rate']:.0f} answers/s, using "
        f"{100 * spent / 5:.0f}% of a core)"
    )
    log(
        f"  {'app':<20}{'conns':>6}{'sent':>8}{'answered':>9}{'req/s':>7}{'p99 ms':>8}"
        f"{'> 2 s':>7}{'max s':>7}{'503':>6}{'other':>6}{'errors':>7}{'unanswered':>11}"
    )
    for label, start, paths, headers in targets:
        rows = found.setdefault(label, {})
        for connections in (50, 200):
            with start() as served:
                result = tail.run(
                    served.base_url,
                    paths,
                    headers=headers,
                    connections=connections,
                    seconds=args.tail_seconds,
                    drain_s=args.tail_drain,
                )
            row = result.figures()
            rows[str(connections)] = row
            other = row["non_2xx"] - row["status_503"]
            log(
                f"  {label:<20}{connections:>6}{row['sent']:>8}{row['answered']:>9}"
                f"{row['rate']:>7.0f}{row['p99_ms']:>8.0f}{row['waits_over_slow']:>7}"
                f"{row['max_wait_ms'] / 1000:>7.2f}{row['status_503']:>6}{other:>6}"
                f"{row['errors']:>7}{row['unanswered']:>11}"
            )


FLOOD_BUDGETS = {
    f"AUTH_LOGIN_ATTEMPTS_PER_{budget}": "1000000 per 15 minutes"
    for budget in ("ACCOUNT_AND_ADDRESS", "ACCOUNT", "ADDRESS")
}


def login_flood(
    load: ModuleType, generated: Generated, figures: dict[str, Any], args: argparse.Namespace
) -> None:
    """50 concurrent logins (production argon2id costs) while reading: who waits?"""
    login = login_request(load, generated.form)
    health = load.Request("GET", "/health")
    read = load.Request(
        "GET", "/posts/{n}", generated.headers, vary=(generated.ids[0], generated.ids[-1])
    )
    seconds = args.flood_seconds
    # A fresh process (its peak RSS is this section's), with login budgets no flood spends:
    # the throttle counts checks in flight, and 50 at once would mostly be answered 429.
    with generated.serve(**FLOOD_BUDGETS) as app:

        def measure(request: Any) -> Any:
            return load.run(
                "wrk", app.base_url, request, connections=5, seconds=seconds, timeout=30
            )

        quiet_health, quiet_read = concurrently(lambda: measure(health), lambda: measure(read))
        rss_before = app.peak_rss_mib()
        flood, flood_health, flood_read = concurrently(
            lambda: load.run(
                "wrk", app.base_url, login, connections=50, seconds=seconds, timeout=30
            ),
            lambda: measure(health),
            lambda: measure(read),
        )
        rss_peak = app.peak_rss_mib()
    f = {
        "logins_per_s": flood.rps,
        "login_p50_ms": flood.p50_ms,
        "login_p99_ms": flood.p99_ms,
        "login_failures": flood.non_2xx + flood.errors + flood.timeouts,
        "health_p99_quiet_ms": quiet_health.p99_ms,
        "health_p99_flood_ms": flood_health.p99_ms if flood_health.requests else float("inf"),
        "read_p99_quiet_ms": quiet_read.p99_ms,
        "read_p99_flood_ms": flood_read.p99_ms if flood_read.requests else float("inf"),
        "read_failures_flood": flood_read.non_2xx + flood_read.errors + flood_read.timeouts,
        "read_rps_quiet": quiet_read.rps,
        "read_rps_flood": flood_read.rps,
        "peak_rss_before_mib": rss_before,
        "peak_rss_flood_mib": rss_peak,
    }
    figures.setdefault("login_flood", {})[generated.label] = f
    log(
        f"\nlogin flood ({generated.label}): 50 concurrent logins for {seconds:.0f} s, "
        "beside 5 connections each on /health and get-by-id"
    )
    log(
        f"  logins: {f['logins_per_s']:.1f}/s, p50 {f['login_p50_ms']:.0f} ms, "
        f"p99 {f['login_p99_ms']:.0f} ms, failures {f['login_failures']}"
    )
    log(
        f"  /health p99: {f['health_p99_quiet_ms']:.1f} ms quiet, "
        f"{f['health_p99_flood_ms']:.1f} ms during the flood"
    )
    # inf: not one request answered during the flood (wrk records answered requests only)
    log(
        f"  get-by-id p99: {f['read_p99_quiet_ms']:.1f} ms quiet, "
        f"{f['read_p99_flood_ms']:.1f} ms during the flood "
        f"({f['read_rps_quiet']:.0f} -> {f['read_rps_flood']:.0f} req/s, "
        f"{f['read_failures_flood']} failures)"
    )
    log(
        f"  server peak RSS: {f['peak_rss_before_mib']:.0f} MiB before, "
        f"{f['peak_rss_flood_mib']:.0f} MiB after the flood"
    )


# Hashing costs of the throttle figure: production's hide the throttle behind ~25 ms of
# argon2id a login; cheap ones leave the throttle's own cost visible.
THROTTLE_HASHING = {
    "production hashing": {},
    "cheap hashing": {
        "AUTH_ARGON2_TIME_COST": "1",
        "AUTH_ARGON2_MEMORY_COST": "8",
        "AUTH_ARGON2_PARALLELISM": "1",
    },
}
WORKER_TIMEOUT_S = 600


def scale_out(
    work: Path,
    load: ModuleType,
    memory: Generated,
    server: DatabaseServer,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """The `redis=true` render of the same variant on a throw-away redis-server."""
    wanted = sorted(args.sections & {"throttle", "jobs"})
    try:
        redis_server = DatabaseServer("redis").start()
    except (ServerUnavailableError, OSError, subprocess.CalledProcessError) as error:
        reason = f"redis-server cannot be had: {error}"
        log(f"\nskipped: {', '.join(wanted)}: {reason}")
        figures.setdefault("skipped", {}).update(dict.fromkeys(wanted, reason))
        return
    try:
        project = work / "pg-redis-project"
        copier_copy(
            work / "template-src", project, "database=postgresql", "deployment=none", "redis=true"
        )
        log(f"\nPostgreSQL + Redis variant installed with uv in {install(project):.1f} s")
        env = {
            **memory.env,
            "DATABASE_URL": server.create_database("benchredis"),
            "REDIS_URL": redis_server.create_database("bench"),
            "REDIS_KEY_PREFIX": "bench",
            # Production refuses mail settings left at their defaults; nothing is mailed here.
            "MAIL_SENDER": "bench@bench.internal",
            "MAIL_LINK_BASE_URL": "https://bench.internal",
        }
        run([str(project / ".venv/bin/alembic"), "upgrade", "heads"], cwd=project, env=env)
        shared = Generated("redis=true", project, env)
        assert redis_server.process is not None
        if "throttle" in args.sections:
            throttle_side_by_side(load, memory, shared, redis_server.process.pid, figures, args)
        if "jobs" in args.sections:
            jobs_section(load, shared, work, figures, args)
    finally:
        redis_server.stop()


def throttle_side_by_side(
    load: ModuleType,
    memory: Generated,
    shared: Generated,
    redis_pid: int,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Logins on the in-memory throttle (redis=false) and on the Redis one (redis=true),
    round after round, at a fixed concurrency below the login budgets."""
    found = figures.setdefault("login_throttle", {})
    log(
        f"\nlogin path, memory vs Redis throttle: POST /auth/login, {args.login_connections} "
        f"connections, median of {args.rounds} alternated rounds of {args.duration:.0f} s"
    )
    log(
        f"  {'':<40}{'logins/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU ms/login':>13}{'Redis CPU':>10}{'failed':>7}"
    )
    for hashing, overrides in THROTTLE_HASHING.items():
        targets: dict[str, tuple[Served, Any]] = {}
        with ExitStack() as stack:
            for name, generated in (("memory", memory), ("Redis", shared)):
                app = stack.enter_context(generated.serve(**overrides))
                targets[name] = (app, login_request(load, sign_up(app.base_url)))
            results: dict[str, list[tuple[Any, float, float]]] = {name: [] for name in targets}
            options = {"connections": args.login_connections, "timeout": 30}
            for app, request in targets.values():  # warm-up
                load.run("wrk", app.base_url, request, seconds=1, **options)
            for _ in range(args.rounds):
                for name, (app, request) in targets.items():
                    cpu, redis_cpu = app.cpu_seconds(), cpu_seconds(redis_pid)
                    result = load.run(
                        "wrk", app.base_url, request, seconds=args.duration, **options
                    )
                    results[name].append(
                        (result, app.cpu_seconds() - cpu, cpu_seconds(redis_pid) - redis_cpu)
                    )
        rows = {}
        for name, rounds in results.items():
            row = median_result([(result, cpu) for result, cpu, _ in rounds])
            row["redis_cpu_ms_per_request"] = statistics.median(
                1000 * redis_cpu / result.requests for result, _, redis_cpu in rounds
            )
            rows[name] = row
        memory_row, redis_row = rows["memory"], rows["Redis"]
        figure = {
            "memory": memory_row,
            "redis": redis_row,
            "redis_vs_memory_rps": redis_row["rps"] / memory_row["rps"],
            "extra_cpu_ms_per_login": redis_row["cpu_ms_per_request"]
            - memory_row["cpu_ms_per_request"],
            "connections": args.login_connections,
            "argon2": overrides or "production defaults",
        }
        found[hashing] = figure
        for name, row in rows.items():
            label = f"{hashing}, {name} throttle"
            log(
                f"  {label:<40}{row['rps']:>9.1f}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}"
                f"{row['cpu_ms_per_request']:>13.2f}{row['redis_cpu_ms_per_request']:>10.3f}"
                f"{row['errors']:>7}"
            )
        log(
            f"  {hashing}: Redis ÷ memory logins/s {figure['redis_vs_memory_rps']:.2f}, "
            f"app CPU {figure['extra_cpu_ms_per_login']:+.2f} ms a login"
        )


def jobs_section(
    load: ModuleType,
    generated: Generated,
    work: Path,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """Enqueue latency under the get-by-id load, then jobs/s through one worker."""
    redis = RedisConnection(generated.env["REDIS_URL"])
    try:
        with generated.serve() as app:
            sign_up_and_seed(generated, app.base_url, max(args.rows, args.jobs))
            enqueue_under_load(load, generated, app, figures, args)
            worker_rounds = [
                worker_throughput(generated, app, redis, work, args) for _ in range(args.rounds)
            ]
    finally:
        redis.close()
    rates = [found["jobs_per_s"] for found in worker_rounds]
    best = sorted(worker_rounds, key=lambda found: found["jobs_per_s"])[len(worker_rounds) // 2]
    figure = {**best, "jobs_per_s_rounds": rates}
    figures.setdefault("jobs", {})["worker"] = figure
    log(
        f"\njobs through one worker (python -m {PACKAGE}.worker, JOBS_CONCURRENCY="
        f"{args.jobs_concurrency}): {args.jobs} audit jobs queued with the worker stopped, "
        f"median of {args.rounds} runs"
    )
    log(
        f"  {figure['jobs_per_s']:.0f} jobs/s from the first job taken to the last one "
        f"acknowledged ({figure['run_s']:.2f} s; every run: "
        f"{', '.join(f'{rate:.0f}' for rate in rates)}/s); spawn to done "
        f"{figure['spawn_to_done_s']:.2f} s; worker CPU {figure['worker_cpu_ms_per_job']:.2f} ms "
        f"a job (after start-up); done-marks {figure['done_marks']}/{args.jobs}"
    )


def enqueue_under_load(
    load: ModuleType,
    generated: Generated,
    app: Served,
    figures: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    """`POST /posts/{id}/audit` timed one by one at a steady rate, alone and while wrk
    drives get-by-id; get-by-id alone and beside the enqueues. No worker runs."""
    ids = generated.ids
    read = load.Request("GET", "/posts/{n}", generated.headers, vary=(ids[0], ids[-1]))

    def reads() -> tuple[Any, float]:
        cpu = app.cpu_seconds()
        result = load.run(
            "wrk",
            app.base_url,
            read,
            connections=args.connections,
            seconds=args.duration,
            timeout=30,
        )
        return result, app.cpu_seconds() - cpu

    def enqueues() -> TimedRun:
        """`--enqueue-connections` clients, each paced at its share of the rate."""
        width = args.enqueue_connections

        def client(offset: int) -> Callable[[], TimedRun]:
            return lambda: timed_requests(
                app.base_url,
                "POST",
                lambda index: f"/posts/{ids[(index * width + offset) % len(ids)]}/audit",
                generated.headers,
                args.duration,
                args.enqueue_rate / width,
            )

        total = TimedRun()
        for found in concurrently(*(client(offset) for offset in range(width))):
            merge_timed(total, found)
        total.seconds /= width  # they ran at the same time
        return total

    load.run("wrk", app.base_url, read, connections=args.connections, seconds=1, timeout=30)
    read_alone: list[tuple[Any, float]] = []
    read_beside: list[tuple[Any, float]] = []
    enqueue_alone, enqueue_beside = TimedRun(), TimedRun()
    for _ in range(args.rounds):
        read_alone.append(reads())
        merge_timed(enqueue_alone, enqueues())
        beside, timed = concurrently(reads, enqueues)
        read_beside.append(beside)
        merge_timed(enqueue_beside, timed)
    figure = {
        "enqueue_rate": args.enqueue_rate,
        "enqueue_connections": args.enqueue_connections,
        "connections": args.connections,
        "enqueue_alone": timed_figures(enqueue_alone),
        "enqueue_under_get_by_id": timed_figures(enqueue_beside),
        "get_by_id_alone": median_result(read_alone),
        "get_by_id_beside_enqueues": median_result(read_beside),
    }
    figure["get_by_id_rps_kept"] = (
        figure["get_by_id_beside_enqueues"]["rps"] / figure["get_by_id_alone"]["rps"]
    )
    figures.setdefault("jobs", {})["enqueue"] = figure
    log(
        f"\njobs: enqueue (POST /posts/{{id}}/audit, 202) at {args.enqueue_rate:.0f}/s on "
        f"{args.enqueue_connections} connections, every request timed; get-by-id by wrk at "
        f"{args.connections} connections; {args.rounds} rounds of {args.duration:.0f} s, "
        "no worker running"
    )
    for label, key in (("alone", "enqueue_alone"), ("under get-by-id", "enqueue_under_get_by_id")):
        row = figure[key]
        log(
            f"  enqueue {label:<16} {row['requests']:>6} requests ({row['rate']:.0f}/s), "
            f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.0f} ms, "
            f"failed {row['failures']}"
        )
    for label, key in (
        ("alone", "get_by_id_alone"),
        ("beside enqueues", "get_by_id_beside_enqueues"),
    ):
        row = figure[key]
        log(
            f"  get-by-id {label:<16}{row['rps']:>6.0f} req/s, p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, CPU {row['cpu_ms_per_request']:.2f} ms/req, "
            f"errors {row['errors']}"
        )
    log(f"  get-by-id req/s kept beside the enqueues: {figure['get_by_id_rps_kept']:.2f}")


def merge_timed(into: TimedRun, more: TimedRun) -> None:
    into.seconds += more.seconds
    into.latencies_ms.extend(more.latencies_ms)
    for status, count in more.statuses.items():
        into.statuses[status] = into.statuses.get(status, 0) + count


def timed_figures(found: TimedRun) -> dict[str, Any]:
    return {
        "requests": len(found.latencies_ms),
        "rate": found.rate,
        "failures": found.failures(202),
        "statuses": found.statuses,
        **latency_summary(found.latencies_ms),
    }


def worker_throughput(
    generated: Generated,
    app: Served,
    redis: RedisConnection,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Queue `--jobs` audit jobs (distinct rows, so each does its work) with no worker
    running, then start one and time it until the stream's consumer group has read and
    acknowledged every one (XINFO GROUPS: entries-read, pending, lag)."""
    prefix = generated.env["REDIS_KEY_PREFIX"]
    stream = f"{prefix}:jobs"
    redis.command("DEL", stream)  # earlier jobs and the group: a fresh queue
    redis.delete_matching(f"{prefix}:done:*")

    def enqueue(post_id: int) -> int:
        return http("POST", f"{app.base_url}/posts/{post_id}/audit", headers=generated.headers)[0]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(enqueue, generated.ids[: args.jobs]))
    assert statuses.count(202) == args.jobs, {s: statuses.count(s) for s in set(statuses)}
    assert redis.command("XLEN", stream) == args.jobs
    env = {
        **generated.env,
        "JOBS_CONCURRENCY": str(args.jobs_concurrency),
        "JOBS_HEARTBEAT_FILE": str(work / "worker.alive"),
    }
    command = [str(generated.project / ".venv/bin/python"), "-m", f"{PACKAGE}.worker"]
    with tempfile.TemporaryFile() as log_file:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=generated.project, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            first, done, cpu_at_first = wait_for_jobs(redis, stream, args.jobs, process, started)
            worker_cpu = cpu_seconds(process.pid) - cpu_at_first
        except Exception:
            log_file.seek(0)
            print(log_file.read().decode(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            stop(process)
    done_marks = sum(1 for _ in redis.scan(f"{prefix}:done:*"))
    return {
        "jobs": args.jobs,
        "jobs_concurrency": args.jobs_concurrency,
        "jobs_per_s": args.jobs / (done - first),
        "run_s": done - first,
        "spawn_to_first_job_s": first - started,
        "spawn_to_done_s": done - started,
        "worker_cpu_ms_per_job": 1000 * worker_cpu / args.jobs,
        "done_marks": done_marks,
    }


def wait_for_jobs(
    redis: RedisConnection,
    stream: str,
    queued: int,
    process: subprocess.Popen[bytes],
    started: float,
) -> tuple[float, float, float]:
    """When the worker took its first job, when the last one was acknowledged, and the
    worker's CPU seconds at its first job (its start-up's)."""
    first, cpu_at_first = None, 0.0
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}")
        try:
            progress = group_progress(redis.command("XINFO", "GROUPS", stream), "workers")
        except RedisReplyError:  # no stream yet
            progress = None
        now = time.perf_counter()
        if first is None and jobs_started(progress):
            first, cpu_at_first = now, cpu_seconds(process.pid)
        if first is not None and jobs_finished(progress, queued):
            return first, now, cpu_at_first
        if now - started > WORKER_TIMEOUT_S:
            raise TimeoutError(f"{queued} jobs not done within {WORKER_TIMEOUT_S} s: {progress}")
        time.sleep(0.005)


def own_make_bench(
    project: Path, server: DatabaseServer, figures: dict[str, Any], args: argparse.Namespace
) -> None:
    output = project / "make-bench.json"
    env = {
        **os.environ,
        "DATABASE_URL": server.create_database("makebench"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "UV_PYTHON_DOWNLOADS": "never",
        "VIRTUAL_ENV": "",
    }
    log(f"\nthe generated project's `make bench` (PostgreSQL, {args.duration:.0f} s a scenario):")
    result = run(
        [
            "make",
            "--no-print-directory",
            "bench",
            f"DURATION={args.duration:.0f}",
            f"CONNECTIONS={args.connections}",
            f"BENCH_ARGS=--json {output}",
        ],
        cwd=project,
        env=env,
    )
    table = result.stdout[result.stdout.index("scenario") :]
    log("  " + table.strip().replace("\n", "\n  "))
    figures["make_bench"] = json.loads(output.read_text())


# --------------------------------------------------------------------------- the table

TABLE_COLUMNS = ("this template", REFERENCE_LABEL, RAW_LABEL)


def summary(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The ratios the hot-path targets use (None: a figure is missing)."""
    side = figures.get("side_by_side", {})
    cold = figures.get("cold_start", {})

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        if numerator is None or not denominator:
            return None
        return numerator / denominator

    def rps(label: str, scenario: str) -> float | None:
        row = side.get(f"{label}: {scenario}")
        return None if row is None or stalled(row) else float(row["rps"])

    below = figures.get("side_by_side_below_stall", {})

    def rps_below_stall(label: str, scenario: str) -> float | None:
        row = below.get("rows", {}).get(f"{label}: {scenario}")
        return None if row is None or stalled(row) else float(row["rps"])

    current = "working tree"
    ratios = {}
    for scenario in ("get-by-id", "list"):
        mine = rps(current, scenario)
        ratios[f"{scenario} / reference template"] = ratio(mine, rps(REFERENCE_LABEL, scenario))
        if ratios[f"{scenario} / reference template"] is None and below:
            # The reference stalled: the two as measured again at fewer connections.
            ratios[f"{scenario} / reference template at {below['connections']} connections"] = (
                ratio(
                    rps_below_stall(current, scenario),
                    rps_below_stall(REFERENCE_LABEL, scenario),
                )
            )
        ratios[f"{scenario} / raw asyncpg"] = ratio(mine, rps(RAW_LABEL, scenario))
    ratios["cold start / reference template"] = ratio(
        cold.get("generated_s"), cold.get("reference_template_s")
    )
    ratios["cold start / raw asyncpg"] = ratio(cold.get("generated_s"), cold.get("raw_asyncpg_s"))
    return {"ratios": ratios}


def summary_table(figures: Mapping[str, Any]) -> list[str]:
    """The issue's table: rows per scenario, one column per app, then the ratios."""
    side = figures.get("side_by_side", {})
    below = figures.get("side_by_side_below_stall", {})
    cold = figures.get("cold_start", {})
    tails = figures.get("tail", {})
    keys = {"this template": "working tree", REFERENCE_LABEL: REFERENCE_LABEL, RAW_LABEL: RAW_LABEL}

    def throughput(column: str, scenario: str, detail: bool) -> str:
        row = side.get(f"{keys[column]}: {scenario}")
        if row is None:
            return ""
        text = f"{row['rps']:.0f} req/s"
        if detail:
            text += f", p99 {row['p99_ms']:.0f} ms, {row['cpu_ms_per_request']:.2f} ms CPU"
        if row.get("errors"):
            text += f", {row['errors']} errors"
        if row.get("rounds_without_an_answer"):
            text += f", {row['rounds_without_an_answer']} rounds without an answer"
        if row.get("stalled_rounds"):
            text += (
                f", {row['stalled_rounds']} of {row['rounds']} rounds stalled "
                "(fewer answers than connections)"
            )
        again = below.get("rows", {}).get(f"{keys[column]}: {scenario}")
        if again is not None:
            text += f"; at {below['connections']} connections {again['rps']:.0f} req/s"
            if detail:
                text += f", p99 {again['p99_ms']:.0f} ms"
        return text

    def cold_cell(column: str) -> str:
        key = {"this template": "generated_s", REFERENCE_LABEL: "reference_template_s"}.get(
            column, "raw_asyncpg_s"
        )
        value = cold.get(key)
        return "" if value is None else f"{value:.2f} s"

    def tail_cell(column: str, connections: int) -> str:
        row = tails.get(column, {}).get(str(connections))
        if row is None:
            return ""
        text = (
            f"{row['waits_over_slow']} over {row['slow_s']:.0f} s, max "
            f"{row['max_wait_ms'] / 1000:.2f} s, p99 {row['p99_ms']:.0f} ms, "
            f"{row['status_503']} x 503"
        )
        other = row.get("non_2xx", 0) - row["status_503"]
        if other:
            text += f", {other} other non-2xx"
        if row.get("errors"):
            text += f", {row['errors']} connection errors"
        return text + f", {row['unanswered']} unanswered of {row['sent']}"

    seconds = next(
        (row["seconds"] for rows in tails.values() if isinstance(rows, dict)
         for row in rows.values() if isinstance(row, dict) and "seconds" in row),
        15,
    )  # fmt: skip
    rows: list[tuple[str, list[str]]] = [
        ("`/health`", [throughput(c, "/health", False) for c in TABLE_COLUMNS]),
        ("authenticated get-by-id", [throughput(c, "get-by-id", True) for c in TABLE_COLUMNS]),
        (
            "authenticated list of 10 with total",
            [throughput(c, "list", True) for c in TABLE_COLUMNS],
        ),
        ("cold start to first authenticated 200", [cold_cell(c) for c in TABLE_COLUMNS]),
    ]
    for connections in (50, 200):
        rows.append(
            (
                f"{seconds:.0f} s at {connections} connections, fresh server",
                [tail_cell(c, connections) for c in TABLE_COLUMNS],
            )
        )
    reference = figures.get("reference_template", {})
    lines = ["| scenario | " + " | ".join(TABLE_COLUMNS) + " |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    if reference.get("measured") is False:
        lines.append(f"reference template: not measured ({reference['reason']})")
    ratios = figures.get("summary", summary(figures))["ratios"]
    shown = [f"{name} {value:.2f}" for name, value in ratios.items() if value is not None]
    if shown:
        lines.append("ratios: " + "; ".join(shown))
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side rounds")
    parser.add_argument(
        "--below-stall-connections",
        type=int,
        default=20,
        help="side by side: where the reference template stalled, this template and the "
        "reference measured again at this many connections (below its 40 threads)",
    )
    parser.add_argument("--rows", type=int, default=1000, help="posts to seed")
    parser.add_argument("--render-runs", type=int, default=3)
    parser.add_argument(
        "--tail-seconds", type=float, default=15, help="tail section: seconds of sending a run"
    )
    parser.add_argument(
        "--tail-drain",
        type=float,
        default=30,
        help="tail section: seconds to wait for the requests in flight when a run ends",
    )
    parser.add_argument(
        "--reference-repo",
        metavar="GIT_DIR",
        help="a git directory or clone holding the reference template's pinned commit "
        "(default: $BENCH_REFERENCE_REPO, then the copy cached under .bench/, then git clone)",
    )
    parser.add_argument("--flood-seconds", type=float, default=10)
    parser.add_argument(
        "--login-connections",
        type=int,
        default=4,
        help="throttle section: concurrent logins (the per-account-and-address budget is 10)",
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs queued for one worker")
    parser.add_argument(
        "--jobs-concurrency", type=int, default=10, help="the worker's JOBS_CONCURRENCY"
    )
    parser.add_argument(
        "--enqueue-rate", type=float, default=50, help="enqueue requests per second"
    )
    parser.add_argument(
        "--enqueue-connections",
        type=int,
        default=4,
        help="enqueue clients (keep-alive connections) sharing that rate",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"measure only these sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--against",
        metavar="GIT_REF",
        help="also measure the template at this commit, side by side",
    )
    args = parser.parse_args(argv)
    args.sections = set(args.only or SECTIONS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk()
    figures: dict[str, Any] = {"cpu_cores": os.cpu_count(), "load_average": os.getloadavg()}
    load_average = os.getloadavg()[0]
    log(f"machine: {os.cpu_count()} cores, load average {load_average:.2f} (compare ratios)")
    with tempfile.TemporaryDirectory(prefix="template-bench-") as directory:
        work = Path(directory)
        snapshot(work / "template-src")
        if "render" in args.sections:
            bench_render(work, figures, args.render_runs)
        if args.sections - {"render"}:
            bench_postgres(work, figures, args)
    if args.sections & WITH_REFERENCE:
        figures["summary"] = summary(figures)
        log("\n" + "\n".join(summary_table(figures)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    log(f"\nall figures: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
