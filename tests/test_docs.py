"""The documentation cannot drift from copier.yml, the README or the Makefiles."""

from __future__ import annotations

import re
import shlex
import textwrap
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.helpers import (
    COPIER_YML,
    ROOT,
    VARIANTS,
    Variant,
    choices,
    package_name,
    rendered_files,
)
from tests.test_deployment import REDIS_VARIANTS, build

DOCS = ROOT / "docs"
QUESTIONNAIRE_PAGE = DOCS / "questionnaire.md"
DEPLOYMENT_PAGE = DOCS / "deployment" / "index.md"

QUESTIONS = [name for name in COPIER_YML if not name.startswith("_")]
CHOICE_QUESTIONS = [name for name in QUESTIONS if "choices" in COPIER_YML[name]]
# Fenced bash blocks, also indented ones inside list items.
BASH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```bash\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
FENCED_BLOCK = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
MAKE_TARGET = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
# `{% if auth != "none" %} create-admin{% endif %}` and similar in the template's .PHONY line.
TEMPLATE_TAG = re.compile(r"\{%.*?%\}")


def sections(page: Path) -> dict[str, str]:
    """Each `### heading` of a page mapped to its text, up to the next heading."""
    found: dict[str, str] = {}
    heading = None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip() if line.startswith("### ") else None
            if heading is not None:
                found[heading] = ""
        elif heading is not None:
            found[heading] += line + "\n"
    return found


def make_targets(makefile: Path) -> set[str]:
    return set(MAKE_TARGET.findall(TEMPLATE_TAG.sub("", makefile.read_text(encoding="utf-8"))))


def bash_blocks(text: str) -> list[str]:
    return [textwrap.dedent(match["body"]) for match in BASH_BLOCK.finditer(text)]


def make_commands(markdown: Path) -> list[str]:
    """Every `make ...` line of the page's fenced bash blocks, comments stripped."""
    commands = []
    for block in bash_blocks(markdown.read_text(encoding="utf-8")):
        for line in block.splitlines():
            for command in line.split("#", 1)[0].split("&&"):
                if command.strip().startswith("make "):
                    commands.append(command.strip())
    return commands


def target_of(command: str) -> str:
    words = [word for word in command.split()[1:] if "=" not in word and not word.startswith("-")]
    return words[0] if words else ""


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_question_has_a_section(question: str) -> None:
    assert f"`{question}`" in sections(QUESTIONNAIRE_PAGE), (
        f"docs/questionnaire.md needs a `### \\`{question}\\`` section for {question}"
    )


@pytest.mark.parametrize("question", CHOICE_QUESTIONS)
def test_every_choice_is_documented_in_its_section(question: str) -> None:
    text = sections(QUESTIONNAIRE_PAGE).get(f"`{question}`", "")
    # A yes/no choice is written as YAML spells it (`true`), not as Python does (`True`).
    values = [value.lower() if value in {"True", "False"} else value for value in choices(question)]
    missing = [value for value in values if f"`{value}`" not in text]
    assert missing == [], f"docs/questionnaire.md, section {question}: document {missing}"


def test_every_deployment_target_is_listed() -> None:
    text = DEPLOYMENT_PAGE.read_text(encoding="utf-8")
    missing = [value for value in choices("deployment") if f"| `{value}` |" not in text]
    assert missing == [], f"docs/deployment/index.md: add a row for {missing}"


def test_readme_make_commands_name_real_targets() -> None:
    targets = make_targets(ROOT / "Makefile")
    commands = make_commands(ROOT / "README.md")
    assert commands, "the README shows `make demo` and `make test`"
    unknown = [command for command in commands if target_of(command) not in targets]
    assert unknown == [], f"README.md runs make targets the Makefile lacks: {unknown}"


@pytest.mark.parametrize(
    "page", sorted(DOCS.rglob("*.md")), ids=lambda page: str(page.relative_to(DOCS))
)
def test_docs_make_commands_name_real_targets(page: Path) -> None:
    """Docs show commands of this repository and of generated projects: either must exist."""
    targets = make_targets(ROOT / "Makefile") | make_targets(ROOT / "template/Makefile.jinja")
    unknown = [command for command in make_commands(page) if target_of(command) not in targets]
    assert unknown == [], f"{page.name} runs make targets no Makefile has: {unknown}"


# --------------------------------------------------------------------------- deployment guides
# Each guide is checked against renders of its target, under the default names the guides
# use (project "My API": slug my-api, package my_api). What a guide names must exist there.

DEPLOYMENT_DOCS = DOCS / "deployment"
PACKAGE = package_name({})  # the default project_name's
SLUG = PACKAGE.replace("_", "-")
# Guide page -> the deployment targets it documents. index.md is the overview (and `none`).
GUIDES: dict[str, tuple[str, ...]] = {
    "docker.md": ("docker",),
    "kubernetes.md": ("kubernetes",),
    "cloud-run.md": ("cloud_run",),
    "vps.md": ("vps",),
    "index.md": tuple(choices("deployment")),
}
TARGET_GUIDES = [page for page, targets in GUIDES.items() if len(targets) == 1]
# The checkout on a VPS: `/srv/my-api/deploy/vps/deploy.sh` is the project's deploy/vps/deploy.sh.
CHECKOUT = f"/srv/{SLUG}/"
# Names a generated project's own top level can hold, in any variant (template file names
# without their Jinja conditions). A path in a guide starting with one of them is a claim
# about the generated tree.
TOP_LEVEL = {
    re.sub(r"\{%.*?%\}", "", entry.name).removesuffix(".jinja")
    for entry in (ROOT / "template").iterdir()
    if "{{" not in entry.name
}
# Names of the generated project, as guides spell them: my-api-migrate, my_api.users.cli...
SLUG_NAME = re.compile(rf"[A-Za-z0-9_.-]*(?:{SLUG}|{PACKAGE})[A-Za-z0-9_.-]*")
# Upper-case identifiers: settings, placeholders, workflow variables.
CAPS_NAME = re.compile(r"(?<![\w<>-])[A-Z][A-Z0-9_]*[A-Z0-9](?![\w>])")
ENV_REFERENCE = re.compile(
    r"\$\{?([A-Z][A-Z0-9_]+)"  # $NAME, ${NAME}
    r"|(?<![\w<>-])([A-Z][A-Z0-9_]+)="  # NAME=value
    r"|(?<![\w<>$-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![\w>*])"  # SNAKE_CASE
)
WHOLE_ENV_NAME = re.compile(r"([A-Z][A-Z0-9_]+)(=\S*)?")
KUBERNETES_KINDS = {
    "job": "Job",
    "deployment": "Deployment",
    "service": "Service",
    "configmap": "ConfigMap",
    "secret": "Secret",
    "ingress": "Ingress",
    "hpa": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
}
KUBERNETES_REFERENCE = re.compile(
    rf"\b({'|'.join(KUBERNETES_KINDS)})(?:/| +(?:generic +)?)({SLUG}[\w.-]*)"
)


def guide_variants(targets: Iterable[str]) -> list[Variant]:
    """Every variant of the matrix deploying to one of `targets` (default names only), and
    those test_deployment.py adds with Redis (a VPS, Compose on every database)."""
    selected = [
        v
        for v in VARIANTS + REDIS_VARIANTS
        if v.deployment in targets and not {"project_name", "domains"} & set(v.answers)
    ]
    assert selected, f"no variant of the matrix deploys to {targets}"
    return selected


def representatives(targets: Iterable[str]) -> list[Variant]:
    """One variant per target (the first of the matrix), then one per auth style not yet
    covered: the overview names settings of every style."""
    targets = list(targets)
    chosen = [guide_variants([target])[0] for target in targets]
    for auth in choices("auth"):
        if not any(variant.auth == auth for variant in chosen):
            chosen.append(next(v for v in guide_variants(targets) if v.auth == auth))
    return chosen


def page_variants(page: str) -> list[Variant]:
    """A target's guide is checked against every variant of the target, the overview
    against one variant per target."""
    targets = GUIDES[page]
    return guide_variants(targets) if len(targets) == 1 else representatives(targets)


def code_of(page: Path) -> tuple[list[str], list[str]]:
    """The page's inline code spans (outside fenced blocks) and its bash commands, one per
    line with continuation lines joined and comments stripped."""
    text = page.read_text(encoding="utf-8")
    inline = INLINE_CODE.findall(FENCED_BLOCK.sub("", text))
    commands = []
    for block in bash_blocks(text):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = " ".join(line.split("#", 1)[0].split())
            if command:
                commands.append(command)
    return inline, commands


def words(snippet: str) -> list[str]:
    try:
        return shlex.split(snippet)
    except ValueError:  # an unbalanced quote in a short inline span
        return snippet.split()


def project_paths(page: Path) -> set[str]:
    """Paths into the generated project a page names: inline code and bash words."""
    inline, commands = code_of(page)
    found = set()
    for word in (word for snippet in inline + commands for word in words(snippet)):
        path = word.strip(".,;:()'\"")
        if path.startswith(CHECKOUT):
            path = path.removeprefix(CHECKOUT)
        if any(mark in path for mark in "<>{}$") or "://" in path:
            continue
        if path.split("/")[0] in TOP_LEVEL:
            found.add(path.rstrip("/"))
    return found


def exists(project: Path, path: str) -> bool:
    return any(project.glob(path)) if "*" in path else (project / path).exists()


@cache
def generated_text(project: Path) -> str:
    """Every generated file but the README (prose, compared separately), and their paths."""
    parts = []
    for path in rendered_files(project):
        relative = path.relative_to(project).as_posix()
        parts.append(relative)
        if relative != "README.md":
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def env_names(page: Path) -> set[str]:
    """Environment variables (and placeholders) a page names in code."""
    inline, commands = code_of(page)
    names = set()
    for snippet in inline:
        whole = WHOLE_ENV_NAME.fullmatch(snippet)
        if whole:
            names.add(whole[1])
    for snippet in inline + commands:
        for match in ENV_REFERENCE.finditer(snippet):
            names.add(next(group for group in match.groups() if group))
    return names


def render_all(render: Callable[[Variant], Path], variants: list[Variant]) -> list[Path]:
    return [render(variant) for variant in variants]


def test_every_deployment_target_has_a_guide_in_the_nav() -> None:
    nav = yaml.safe_load(
        re.sub(r"!!python/name:\S+", "null", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    )["nav"]
    in_nav = re.findall(r"deployment/[\w.-]+\.md", str(nav))
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in DEPLOYMENT_PAGE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    for target in choices("deployment"):
        guides = [page for page in TARGET_GUIDES if GUIDES[page] == (target,)]
        if target == "none":
            assert guides == [], "deployment=none is covered by deployment/index.md"
            assert "## `deployment=none`" in DEPLOYMENT_PAGE.read_text(encoding="utf-8")
            continue
        assert guides, f"add a guide for deployment={target} to GUIDES in tests/test_docs.py"
        (guide,) = guides
        assert (DEPLOYMENT_DOCS / guide).is_file(), guide
        assert f"deployment/{guide}" in in_nav, f"mkdocs.yml: add deployment/{guide} to nav"
        assert f"]({guide})" in rows[target], f"deployment/index.md: link {guide} in its row"
    assert sorted(path.name for path in DEPLOYMENT_DOCS.glob("*.md")) == sorted(GUIDES)


# Generated only with redis=true on targets where Redis is optional.
REDIS_ONLY_PATHS = {f"deploy/vps/{SLUG}-worker.service"}


@pytest.mark.parametrize("page", TARGET_GUIDES)
def test_guide_paths_exist_in_every_render_of_its_target(
    render: Callable[[Variant], Path], page: str
) -> None:
    paths = project_paths(DEPLOYMENT_DOCS / page)
    assert paths, f"{page} names no generated file"
    for variant in guide_variants(GUIDES[page]):
        project = render(variant)
        # The guide's redis=true steps name them: there exactly when the project has Redis.
        with_redis = {path for path in paths if path in REDIS_ONLY_PATHS}
        assert {path for path in with_redis if exists(project, path)} == (
            with_redis if variant.redis else set()
        ), variant.id
        missing = sorted(path for path in paths - with_redis if not exists(project, path))
        assert missing == [], f"{page} names files {variant.id} does not generate: {missing}"


def test_overview_paths_exist_in_some_target(render: Callable[[Variant], Path]) -> None:
    page = DEPLOYMENT_PAGE
    projects = render_all(render, page_variants(page.name))
    missing = sorted(
        path
        for path in project_paths(page)
        if not any(exists(project, path) for project in projects)
    )
    assert missing == [], f"{page.name} names files no target generates: {missing}"


@pytest.mark.parametrize("page", sorted(GUIDES))
def test_guide_make_targets_exist_in_the_generated_makefile(
    render: Callable[[Variant], Path], page: str
) -> None:
    inline, commands = code_of(DEPLOYMENT_DOCS / page)
    invocations = [
        " ".join(command_words[index:])
        for snippet in inline + commands
        for segment in re.split(r"&&|\|\||;|\|", snippet)
        if (command_words := words(segment))
        for index, word in enumerate(command_words)
        if word == "make" and all("=" in before for before in command_words[:index])
    ]
    projects = render_all(render, page_variants(page))
    targets = set().union(*(make_targets(project / "Makefile") for project in projects))
    unknown = sorted({target_of(call) for call in invocations} - targets - {""})
    assert unknown == [], f"{page} runs make targets the generated Makefile lacks: {unknown}"


@pytest.mark.parametrize("page", sorted(GUIDES))
def test_guide_env_vars_are_used_by_the_generated_project(
    render: Callable[[Variant], Path], page: str
) -> None:
    """A setting, placeholder or variable a guide names appears in the generated code,
    settings or deployment files (not counting the README)."""
    projects = render_all(render, page_variants(page))
    known = set().union(*(set(CAPS_NAME.findall(generated_text(p))) for p in projects))
    unknown = sorted(env_names(DEPLOYMENT_DOCS / page) - known)
    assert unknown == [], f"{page} names variables the generated project never uses: {unknown}"


@pytest.mark.parametrize("page", sorted(GUIDES))
def test_guide_names_are_the_generated_ones(render: Callable[[Variant], Path], page: str) -> None:
    """Resource names, units, secrets and paths spelled with the project's name (`my-api-migrate`,
    `/etc/my-api/my-api.env`...) appear verbatim in the generated files."""
    inline, commands = code_of(DEPLOYMENT_DOCS / page)
    named = {
        name.rstrip(".")
        for snippet in inline + commands
        for word in words(snippet)
        for name in SLUG_NAME.findall(word)
    } | {
        word.rstrip(".,;:")
        for snippet in inline + commands
        for word in words(snippet)
        if word.startswith("/") and SLUG in word and "$" not in word
    }
    projects = render_all(render, page_variants(page))
    corpus = "\n".join(generated_text(project) for project in projects)
    unknown = sorted(name for name in named if name not in corpus)
    assert unknown == [], f"{page} names things the generated project does not have: {unknown}"


@pytest.mark.parametrize("variant", guide_variants(["kubernetes"]), ids=lambda v: v.id)
def test_kubernetes_guide_commands_name_real_resources(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    kubernetes = project / "deploy/kubernetes"
    resources = build(kubernetes / "overlays/production")
    resources += yaml.safe_load_all((kubernetes / "base/secret.example.yaml").read_text())
    defined = {(resource["kind"], resource["metadata"]["name"]) for resource in resources}
    (namespace,) = {r["metadata"]["name"] for r in resources if r["kind"] == "Namespace"}
    inline, commands = code_of(DEPLOYMENT_DOCS / "kubernetes.md")
    kubectl = [snippet for snippet in inline + commands if snippet.startswith("kubectl")]
    assert kubectl
    referenced = {
        (KUBERNETES_KINDS[kind], name)
        for snippet in kubectl
        for kind, name in KUBERNETES_REFERENCE.findall(snippet)
    }
    unknown = sorted(referenced - defined)
    assert unknown == [], f"kubernetes.md names resources the overlay does not define: {unknown}"
    assert {("Job", f"{SLUG}-migrate"), ("Secret", f"{SLUG}-secrets")} <= referenced
    namespaces = {
        words(snippet)[index + 1]
        for snippet in kubectl
        for index, word in enumerate(words(snippet)[:-1])
        if word in {"-n", "--namespace"}
    }
    assert namespaces == {namespace}


@pytest.mark.parametrize("variant", guide_variants(["cloud_run"]), ids=lambda v: v.id)
def test_cloud_run_guide_commands_name_real_resources(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    (service,) = yaml.safe_load_all((project / "deploy/cloud-run/service.yaml").read_text())
    (job,) = yaml.safe_load_all((project / "deploy/cloud-run/migrate-job.yaml").read_text())
    (container,) = service["spec"]["template"]["spec"]["containers"]
    secrets = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for item in container["env"]
        if "valueFrom" in item
    }
    if variant.auth == "none":  # the guide's "Mail" section is for projects with users
        secrets.add(f"{SLUG}-mail-smtp-password")
    account = service["spec"]["template"]["spec"]["serviceAccountName"]
    services = {service["metadata"]["name"]}
    if (project / "deploy/cloud-run/worker.yaml").is_file():  # the worker's own service
        (worker,) = yaml.safe_load_all((project / "deploy/cloud-run/worker.yaml").read_text())
        services.add(worker["metadata"]["name"])
    expected = {
        "gcloud run services": services,
        "gcloud run revisions": services,
        "gcloud run jobs": {job["metadata"]["name"]},
        "gcloud secrets": secrets,
        "gcloud iam service-accounts": {account, account.split("@")[0]},
    }
    inline, commands = code_of(DEPLOYMENT_DOCS / "cloud-run.md")
    checked = set()
    for snippet in (part.strip() for code in inline + commands for part in code.split("|")):
        for prefix, names in expected.items():
            if snippet.startswith(prefix):
                # The first word with the project's name is the resource (or --service's value).
                named = [w for w in words(snippet) if SLUG in w and not w.startswith("-")][:1]
                assert set(named) <= names, f"{snippet}: expected one of {names}"
                checked.update(prefix for _ in named)
        for member in re.findall(r"serviceAccount:(\S+)", snippet):
            if SLUG in member:
                assert member == account, snippet
    assert checked == set(expected)


@pytest.mark.parametrize("variant", guide_variants(["vps"]), ids=lambda v: v.id)
def test_vps_guide_commands_name_the_unit_and_its_files(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    units = {path.stem for path in (project / "deploy/vps").glob("*.service")}
    worker = f"{SLUG}-worker"  # the background worker's unit, with Redis only
    assert units == ({SLUG, worker} if variant.redis else {SLUG})
    inline, commands = code_of(DEPLOYMENT_DOCS / "vps.md")
    seen = set()
    for snippet in inline + commands:
        snippet_words = words(snippet)
        for index, word in enumerate(snippet_words[:-1]):
            following = snippet_words[index + 1 :]
            if word == "systemctl":
                named = [w for w in following[1:] if not w.startswith(("-", "/"))][:1]
            elif word in {"journalctl", "runuser"}:
                named = [following[following.index("-u") + 1]] if "-u" in following else []
            elif word == "systemd-analyze":
                named = following[1:2]
            else:
                continue
            seen.update(named)
            assert set(named) <= units | {"caddy", "redis-server", worker}, snippet
    assert SLUG in seen


def deployment_commands(project: Path) -> list[str]:
    """The commands of a project's own deployment docs: the README's deployment sections
    and the runbooks under deploy/."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    starts = [
        readme.index(heading)
        for heading in (
            "\n## Container image",
            "\n## Docker",
            "\n## Kubernetes",
            "\n## Google Cloud Run",
            "\n## VPS",
        )
        if heading in readme
    ]
    sources = [readme[min(starts) :]] if starts else []
    sources += [path.read_text(encoding="utf-8") for path in project.glob("deploy/**/*.md")]
    commands = []
    for source in sources:
        for block in bash_blocks(source):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                command = " ".join(line.split("#", 1)[0].split())
                if command:
                    commands.append(command)
    return commands


@pytest.mark.parametrize("page", TARGET_GUIDES)
def test_guide_shows_the_commands_of_the_generated_readme_and_runbook(
    render: Callable[[Variant], Path], page: str
) -> None:
    """The generated README and runbook cannot contradict the guide: each of their commands
    is in the guide (a `'...'` in them stands for any quoted value)."""
    _, guide = code_of(DEPLOYMENT_DOCS / page)
    for variant in guide_variants(GUIDES[page]):
        missing = [
            command
            for command in deployment_commands(render(variant))
            if not any(
                re.fullmatch(re.escape(command).replace(r"'\.\.\.'", "'[^']*'"), line)
                for line in guide
            )
        ]
        assert missing == [], f"{page} lacks commands the {variant.id} project shows: {missing}"
