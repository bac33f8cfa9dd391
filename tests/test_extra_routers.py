"""A hand-written router listed in the project-owned `extra_routers.py` survives
`copier update` (a new template version, a domain added) and is still served."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import copier
import pytest

from tests.helpers import BIN, git, rendered_files, template_repository, uv_env

REPORTS_ROUTER = """\
from fastapi import APIRouter

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/summary")
async def report_summary() -> dict[str, str]:
    return {"status": "ok"}
"""

EXTRA_ROUTERS = '''\
"""Our own routers."""

from fastapi import APIRouter

from my_api.reports.router import router as reports_router

EXTRA_ROUTERS: list[APIRouter] = [reports_router]
'''

SERVED = """
from fastapi.testclient import TestClient

from my_api.main import create_app

app = create_app()
response = TestClient(app).get("/reports/summary")
assert response.status_code == 200, response.text
assert response.json() == {"status": "ok"}
operation = app.openapi()["paths"]["/reports/summary"]["get"]
assert operation["operationId"] == "report_summary", operation
print("served")
"""


@pytest.mark.slow
def test_a_hand_written_router_survives_an_update_and_is_served(tmp_path: Path) -> None:
    template = template_repository(tmp_path / "template")
    project = tmp_path / "project"
    copier.run_copy(
        str(template),
        project,
        data={"auth": "none", "domains": ["posts"]},
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )
    git(project, "init", "--quiet", "--initial-branch=main")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "generated")
    package = project / "src/my_api"
    (package / "reports").mkdir()
    (package / "reports/__init__.py").write_text("")
    (package / "reports/router.py").write_text(REPORTS_ROUTER)
    (package / "extra_routers.py").write_text(EXTRA_ROUTERS)
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--message", "a hand-written router")
    # A new template version that changes the file the project owns: it must not land.
    template_file = template / "template/src/{{ package_name }}/extra_routers.py.jinja"
    template_file.write_text(template_file.read_text() + "# changed by the template\n")
    git(template, "commit", "--quiet", "--all", "--message", "a new template version")

    copier.run_update(
        project,
        data={"domains": ["posts", "tags"]},
        defaults=True,
        overwrite=True,
        quiet=True,
        vcs_ref="HEAD",
    )

    assert (package / "extra_routers.py").read_text() == EXTRA_ROUTERS
    assert (package / "reports/router.py").read_text() == REPORTS_ROUTER
    domains = (package / "domains.py").read_text()
    assert "tags_router" in domains
    assert "*EXTRA_ROUTERS" in domains
    leftovers = [
        path
        for path in rendered_files(project)
        if path.suffix == ".rej" or "<<<<<<<" in path.read_text()
    ]
    assert leftovers == []
    env = {**os.environ, **uv_env("3.12")}
    subprocess.run([str(BIN / "uv"), "sync", "--quiet"], cwd=project, env=env, check=True)
    served = subprocess.run(
        [str(project / ".venv/bin/python"), "-c", SERVED],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert served.returncode == 0, served.stdout + served.stderr
