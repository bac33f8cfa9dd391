"""Deployment targets: every artifact of every variant that has it, checked offline.

No Docker engine, cluster or cloud account is needed: kubernetes-validate (bundled schemas),
a small kustomize-style composition of base + overlay, structural checks of the Cloud Run
manifests, systemd-analyze, yamllint and hadolint. The slow test runs the image's own
command outside a container.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests import test_variants as variant_checks
from tests.helpers import (
    BIN,
    VARIANTS,
    StepTimer,
    Variant,
    package_name,
    rendered_files,
    stop_gracefully,
    uv_env,
)
from tests.servers import DatabaseServer, free_port
from tests.test_variants import (
    YAMLLINT_CONFIG,
    check_compose_schema,
    get_status,
    parametrize_variants,
    run_tool,
    wait_for_status,
)

CONTAINER_TARGETS = ("docker", "kubernetes", "cloud_run")


def variants_for(*targets: str) -> pytest.MarkDecorator:
    selected = [v for v in VARIANTS if v.deployment in targets]
    assert selected, f"no variant in the matrix deploys to {targets}"
    return parametrize_variants(selected)


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


# Redis where the matrix has none: every compose variant and a VPS (the matrix gives Redis to
# every kubernetes/cloud_run variant and to one docker variant, on SQLite).
REDIS_VARIANTS = [
    Variant(
        f"{database}-jwt-docker-redis",
        {"database": database, "deployment": "docker", "redis": True},
    )
    for database in ("postgresql", "mysql")
] + [
    Variant(
        "postgresql-jwt-vps-redis", {"deployment": "vps", "redis": True, "database": "postgresql"}
    )
]


@parametrize_variants(REDIS_VARIANTS)
def test_redis_variants_render_cleanly(render: Callable[[Variant], Path], variant: Variant) -> None:
    """test_variants.py's checks of every rendered file, on the variants only this file has."""
    variant_checks.test_no_template_markers_survive(render, variant)
    variant_checks.test_no_stray_blank_lines(render, variant)
    variant_checks.test_ci_and_deployment_files_validate(render, variant)


def variants_with_redis(*targets: str) -> pytest.MarkDecorator:
    """Every variant deploying to `targets`, with and without Redis."""
    selected = [v for v in VARIANTS + REDIS_VARIANTS if v.deployment in targets]
    assert any(v.redis for v in selected), f"no variant deploys to {targets} with Redis"
    return parametrize_variants(selected)


# --------------------------------------------------------------------------- every target


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v.deployment == "none"], ids=lambda v: v.id
)
def test_none_has_no_deployment_files(render: Callable[[Variant], Path], variant: Variant) -> None:
    project = render(variant)
    for path in ("deploy", "Dockerfile", ".dockerignore", "compose.yaml"):
        assert not (project / path).exists(), path
    assert not (project / ".github/workflows/deploy.yml").exists()


@variants_for(*CONTAINER_TARGETS)
def test_dockerfile_passes_hadolint_and_honours_port(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    run_tool(project, str(BIN / "hadolint"), "Dockerfile")
    command = dockerfile_cmd(project)
    assert command[:2] == ["sh", "-c"]
    assert command[2].startswith("exec uvicorn "), "uvicorn must be PID 1 to get SIGTERM"
    assert '--port "${PORT:-8000}"' in command[2]
    # The app derives the client address (TRUSTED_PROXY_HOPS/TRUSTED_PROXIES), not uvicorn.
    assert "--no-proxy-headers" in command[2].split()
    assert "--no-server-header" in command[2].split()
    assert "--proxy-headers" not in command[2].split()
    assert "FORWARDED_ALLOW_IPS" not in (project / "Dockerfile").read_text()
    assert "deploy" in (project / ".dockerignore").read_text().splitlines()


def dockerfile_cmd(project: Path) -> list[str]:
    lines = [
        line for line in (project / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    ]
    assert len(lines) == 1, lines
    return list(json.loads(lines[0].removeprefix("CMD ")))


def dockerfile_final_sync(project: Path) -> list[str]:
    """The options of the Dockerfile's last `uv sync`: the one that installs the project."""
    syncs = re.findall(r"^\s*uv sync(.*)$", (project / "Dockerfile").read_text(), re.MULTILINE)
    assert syncs, "the Dockerfile installs nothing with uv sync"
    return syncs[-1].split()


# --------------------------------------------------------------------------- docker


@variants_with_redis("docker")
def test_compose_runs_redis_beside_the_app_when_answered(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    services = compose["services"]
    api = services["api"]
    assert "redis" not in services["migrate"].get("depends_on", {})  # migrations never need it
    if not variant.redis:
        assert "redis" not in services
        assert "REDIS_URL" not in api["environment"]
        assert "redis" not in api["depends_on"]
        assert "redis-data" not in compose["volumes"]
        assert "worker" not in services
        return
    redis = services["redis"]
    assert re.fullmatch(r"redis:7\.\d+-alpine", redis["image"]), redis["image"]
    # Append-only persistence on a named volume: queued work survives a restart.
    assert redis["command"] == ["redis-server", "--appendonly", "yes"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis  # reachable by the app on the compose network only
    assert redis["restart"] == "unless-stopped"
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert api["depends_on"]["redis"] == {"condition": "service_healthy"}
    check_compose_worker(services, package_name(variant.answers))
    check_compose_mailpit(services, mail=variant.auth != "none")
    # test_variants.py lints the matrix's compose files; these are the ones it does not have.
    run_tool(project, str(BIN / "yamllint"), "--strict", "-d", YAMLLINT_CONFIG, "compose.yaml")
    check_compose_schema(project)


def check_compose_mailpit(services: dict, *, mail: bool) -> None:
    """With users, Mailpit catches the worker's mail; the app's settings point at it."""
    api, worker = services["api"], services["worker"]
    if not mail:
        assert "mailpit" not in services
        assert not any(name.startswith("MAIL_") for name in api["environment"])
        return
    mailpit = services["mailpit"]
    assert re.fullmatch(r"axllent/mailpit:v1\.\d+", mailpit["image"]), mailpit["image"]
    assert mailpit["ports"] == ["127.0.0.1:8025:8025"]  # its web page, on this machine only
    for service in (api, worker):
        environment = service["environment"]
        assert environment["MAIL_SMTP_HOST"] == "mailpit"
        # Production mode: clear text to another host must be asked for, and the sender
        # and link set (core/mail.py refuses defaults).
        assert environment["MAIL_SMTP_SECURITY"] == "none"
        assert {"MAIL_SENDER", "MAIL_LINK_BASE_URL"} <= environment.keys()


def check_compose_worker(services: dict, package: str) -> None:
    """The worker: the API's build, settings and restart policy, another command, after
    Redis and the migrations, its heartbeat as healthcheck, time to finish its job."""
    api, worker = services["api"], services["worker"]
    assert worker["build"] == api["build"]
    assert worker["command"] == ["python", "-m", f"{package}.worker"]
    assert worker["env_file"] == api["env_file"]
    assert worker["environment"] == api["environment"]  # REDIS_URL and the database's URL
    assert worker.get("volumes") == api.get("volumes")  # the SQLite volume, where there is one
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"].get("db") == api["depends_on"].get("db")
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", f"{package}.worker", "--alive"]
    assert worker["restart"] == api["restart"]
    assert worker["stop_grace_period"] == "60s"
    assert "ports" not in worker  # it takes no traffic


# --------------------------------------------------------------------------- kubernetes

KUSTOMIZE_ONLY = {"kustomization.yaml"}


def kubernetes_validate(project: Path, *files: Path | str) -> None:
    tool = BIN / "kubernetes-validate"
    assert tool.is_file(), f"{tool} is missing: `uv sync` the template's own environment"
    run_tool(project, str(tool), "--strict", "--quiet", *map(str, files))


def is_patch(path: Path) -> bool:
    return path.name.endswith("-patch.yaml")


@variants_for("kubernetes")
def test_kubernetes_manifests_validate_strictly(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """Every full manifest (base, overlay, secret example) against the bundled schemas."""
    project = render(variant)
    manifests = [
        path.relative_to(project)
        for path in sorted((project / "deploy/kubernetes").rglob("*.yaml"))
        if path.name not in KUSTOMIZE_ONLY and not is_patch(path)
    ]
    assert len(manifests) >= 10, manifests
    assert Path("deploy/kubernetes/base/worker-deployment.yaml") in manifests
    kubernetes_validate(project, *manifests)


def merge(base: object, patch: object) -> object:
    """Strategic-merge subset: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            by_name[item["name"]] = merge(by_name.get(item["name"], {}), item)
        return list(by_name.values())
    return patch


def build(directory: Path) -> list[dict]:
    """A kustomize build reduced to what the template uses: resources, patches, images,
    namespace and labels. Fails on any reference that does not resolve."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{entry}: no kustomization.yaml"
            resources += build(target)
        else:
            assert target.is_file(), f"{directory}: resource {entry} does not exist"
            resources += load_all(target)
    for patch_entry in kustomization.get("patches", []):
        patch_path = directory / patch_entry["path"]
        assert patch_path.is_file(), f"{directory}: patch {patch_entry['path']} does not exist"
        for patch in load_all(patch_path):
            matches = [
                i
                for i, resource in enumerate(resources)
                if (resource["kind"], resource["metadata"]["name"])
                == (patch["kind"], patch["metadata"]["name"])
            ]
            assert len(matches) == 1, f"{patch_path.name} matches no single resource"
            resources[matches[0]] = merge(resources[matches[0]], patch)  # type: ignore[assignment]
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in pod_spec(resource).get("containers", []):
                # Like kustomize: the entry matches the image's name exactly, tag aside.
                if image_name(container["image"]) == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] != "Namespace":
                resource["metadata"]["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    return resources


def image_name(image: str) -> str:
    """`registry.example.com/app:1.0` -> `registry.example.com/app` (a port stays)."""
    repository, _, last = image.rpartition("/")
    return f"{repository}/{last.split(':')[0]}" if repository else last.split(":")[0]


def pod_spec(resource: dict) -> dict:
    template = resource.get("spec", {}).get("template", {})
    return template.get("spec", {}) if isinstance(template, dict) else {}


@variants_for("kubernetes")
def test_kustomizations_resolve_and_compose_valid_manifests(
    render: Callable[[Variant], Path], variant: Variant, tmp_path: Path
) -> None:
    project = render(variant)
    root = project / "deploy/kubernetes"
    kustomizations = sorted(root.rglob("kustomization.yaml"))
    assert [k.parent.relative_to(root).as_posix() for k in kustomizations] == [
        "base",
        "overlays/production",
    ]
    built = build(root / "overlays/production")
    kinds = sorted(resource["kind"] for resource in built)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "Namespace",
        "PodDisruptionBudget",
        "Service",
    ]
    output = tmp_path / "built.yaml"
    output.write_text(yaml.safe_dump_all(built))
    kubernetes_validate(project, output)
    images = {c["image"] for r in built for c in pod_spec(r).get("containers", [])}
    assert images == {f"registry.example.com/{variant_slug(variant)}:0.1.0"}
    slug = variant_slug(variant)
    deployments = {r["metadata"]["name"]: r for r in built if r["kind"] == "Deployment"}
    assert set(deployments) == {slug, f"{slug}-worker"}
    assert deployments[slug]["spec"]["replicas"] == 3  # the overlay's patch was applied
    # The worker's own patch: one replica, production-sized like the API.
    worker = deployments[f"{slug}-worker"]
    assert worker["spec"]["replicas"] == 1
    (container,) = pod_spec(worker)["containers"]
    assert container["resources"]["requests"]["cpu"] == "250m"
    assert worker["metadata"]["namespace"] == slug
    assert next(r for r in built if r["kind"] == "Ingress")["spec"]["tls"]


@variants_for("kubernetes")
def test_real_kustomize_builds_what_the_simulation_builds(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """`kubectl kustomize` (the real thing) agrees with `build` above, image tag included."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    project = render(variant)
    overlay = project / "deploy/kubernetes/overlays/production"
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

    def by_kind_and_name(resources: list[dict]) -> list[dict]:
        return sorted(resources, key=lambda r: (r["kind"], r["metadata"]["name"]))

    real = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert by_kind_and_name(real) == by_kind_and_name(build(overlay))


def variant_slug(variant: Variant) -> str:
    name = str(variant.answers.get("project_name", "My API")).lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


@variants_for("kubernetes")
def test_kubernetes_workloads_are_locked_down(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    base = project / "deploy/kubernetes/base"
    slug = variant_slug(variant)
    deployment = load_all(base / "deployment.yaml")[0]
    job = load_all(base / "migration-job.yaml")[0]
    worker = load_all(base / "worker-deployment.yaml")[0]
    for workload in (deployment, job, worker):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        (container,) = spec["containers"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert "memory" in container["resources"]["limits"]
        assert {
            source.get("configMapRef", source.get("secretRef"))["name"]
            for source in container["envFrom"]
        } == {f"{slug}-config", f"{slug}-secrets"}
    (api,) = pod_spec(deployment)["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["resources"]["requests"]
    assert pod_spec(job)["containers"][0]["command"] == ["alembic", "upgrade", "heads"]
    check_kubernetes_worker(deployment, worker, slug, package_name(variant.answers))
    assert "worker-deployment.yaml" in (base / "kustomization.yaml").read_text()
    secret = load_all(base / "secret.example.yaml")[0]
    assert secret["stringData"]["SECRET_KEY"] == "change-me"  # noqa: S105  # refused in production
    # Redis is external (managed, or the cluster's own): its URL, password included, is a
    # key of the Secret every pod reads through envFrom; the Job gets it too, unused.
    assert variant.redis
    assert re.fullmatch(r"rediss?://:PASSWORD@HOST:\d+/0", secret["stringData"]["REDIS_URL"])
    assert "rediss://" in (base / "secret.example.yaml").read_text().split("apiVersion")[0]
    # The SMTP server in the ConfigMap, its credentials in the Secret (with users only).
    config = load_all(base / "configmap.yaml")[0]["data"]
    mail = variant.auth != "none"
    assert ("MAIL_SMTP_PASSWORD" in secret["stringData"]) is mail
    assert ("MAIL_SENDER" in config and "MAIL_LINK_BASE_URL" in config) is mail
    assert not any(name.startswith("MAIL_SMTP_PASS") for name in config)
    for workload in (deployment, job, worker):
        (container,) = pod_spec(workload)["containers"]
        assert "REDIS_URL" not in {item["name"] for item in container.get("env", [])}
    assert (
        "secret.example.yaml"
        not in (base / "kustomization.yaml").read_text().split("resources:")[1]
    )


def check_kubernetes_worker(api_deployment: dict, worker: dict, slug: str, package: str) -> None:
    """The worker Deployment: the API's image and pod security, its own command and
    component label, a heartbeat liveness probe, no readiness probe, ports or Service, and a
    minute to finish the job in hand."""
    assert worker["metadata"]["name"] == f"{slug}-worker"
    selector = worker["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": slug, "app.kubernetes.io/component": "worker"}
    assert worker["spec"]["template"]["metadata"]["labels"] == selector
    assert worker["spec"]["replicas"] == 1
    spec, api_spec = pod_spec(worker), pod_spec(api_deployment)
    assert spec["terminationGracePeriodSeconds"] == 60
    assert spec["securityContext"] == api_spec["securityContext"]
    assert spec["volumes"] == api_spec["volumes"]  # the /tmp emptyDir
    (container,), (api,) = spec["containers"], api_spec["containers"]
    assert container["image"] == api["image"]
    assert container["command"] == ["python", "-m", f"{package}.worker"]
    assert container["envFrom"] == api["envFrom"]
    assert container["securityContext"] == api["securityContext"]
    assert container["volumeMounts"] == api["volumeMounts"]
    assert container["livenessProbe"]["exec"]["command"] == [
        "python",
        "-m",
        f"{package}.worker",
        "--alive",
    ]
    assert "readinessProbe" not in container
    assert "ports" not in container
    assert container["resources"]["requests"]


# --------------------------------------------------------------------------- cloud run


@variants_for("cloud_run")
def test_cloud_run_service_and_job_are_well_formed(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    slug = variant_slug(variant)
    (service,) = load_all(project / "deploy/cloud-run/service.yaml")
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    assert service["metadata"]["name"] == slug
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["run.googleapis.com/cloudsql-instances"] == "PROJECT_ID:REGION:INSTANCE"
    assert int(annotations["autoscaling.knative.dev/maxScale"]) >= 1
    spec = template["spec"]
    assert isinstance(spec["containerConcurrency"], int)
    assert 1 <= spec["containerConcurrency"] <= 1000
    (container,) = spec["containers"]
    assert container["image"] == "IMAGE"
    (port,) = container["ports"]
    assert port["name"] in {"http1", "h2c"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["containerPort"]
    check_secret_env(container["env"], slug, *app_secrets(variant))
    # Memorystore (or any Redis) on a private address, reached through Direct VPC egress.
    assert variant.redis
    (interface,) = json.loads(annotations["run.googleapis.com/network-interfaces"])
    assert set(interface) == {"network", "subnetwork"}
    assert annotations["run.googleapis.com/vpc-access-egress"] == "private-ranges-only"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ENVIRONMENT"] == "production"
    assert "PORT" not in env  # Cloud Run sets it from containerPort
    assert service["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]

    (job,) = load_all(project / "deploy/cloud-run/migrate-job.yaml")
    assert (job["apiVersion"], job["kind"]) == ("run.googleapis.com/v1", "Job")
    assert job["metadata"]["name"] == f"{slug}-migrate"
    job_annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert (
        job_annotations["run.googleapis.com/cloudsql-instances"]
        == (annotations["run.googleapis.com/cloudsql-instances"])
    )
    (job_container,) = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert job_container["command"] == ["alembic", "upgrade", "heads"]
    # Migrations never read Redis: no URL, no VPC egress.
    check_secret_env(job_container["env"], slug, "SECRET_KEY", "DATABASE_URL")
    assert not [key for key in job_annotations if key.startswith("run.googleapis.com/vpc")]
    assert "run.googleapis.com/network-interfaces" not in job_annotations


@variants_for("cloud_run")
def test_cloud_run_worker_service_runs_without_requests(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """A second service for the worker: the API's image, secrets, Cloud SQL and VPC egress,
    CPU always allocated, always one instance (a few at most), no public ingress, the worker's
    command, and probes on the port it opens for them."""
    project = render(variant)
    slug = variant_slug(variant)
    (api,) = load_all(project / "deploy/cloud-run/service.yaml")
    (worker,) = load_all(project / "deploy/cloud-run/worker.yaml")
    assert (worker["apiVersion"], worker["kind"]) == ("serving.knative.dev/v1", "Service")
    assert worker["metadata"]["name"] == f"{slug}-worker"
    assert worker["metadata"]["labels"] == api["metadata"]["labels"]
    assert worker["metadata"]["annotations"]["run.googleapis.com/ingress"] == "internal"
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    api_annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert annotations["autoscaling.knative.dev/minScale"] == "1"
    assert 1 <= int(annotations["autoscaling.knative.dev/maxScale"]) <= 3
    for key in (
        "run.googleapis.com/cloudsql-instances",
        "run.googleapis.com/network-interfaces",
        "run.googleapis.com/vpc-access-egress",
        "run.googleapis.com/execution-environment",
    ):
        assert annotations[key] == api_annotations[key], key
    spec, api_spec = worker["spec"]["template"]["spec"], api["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == api_spec["serviceAccountName"]
    (container,), (api_container,) = spec["containers"], api_spec["containers"]
    assert container["image"] == api_container["image"] == "IMAGE"
    assert [container["command"], container["args"]] == [
        ["python"],
        ["-m", f"{package_name(variant.answers)}.worker"],
    ]
    check_secret_env(container["env"], slug, *app_secrets(variant))
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ENVIRONMENT"] == "production"
    assert "PORT" not in env  # Cloud Run sets it from containerPort
    (port,) = container["ports"]
    assert container["startupProbe"]["tcpSocket"]["port"] == port["containerPort"]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/health",
        "port": port["containerPort"],
    }
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert worker["spec"]["traffic"] == [{"percent": 100, "latestRevision": True}]
    run_tool(
        project,
        str(BIN / "yamllint"),
        "--strict",
        "-d",
        YAMLLINT_CONFIG,
        "deploy/cloud-run/worker.yaml",
    )


def app_secrets(variant: Variant) -> list[str]:
    """The settings the API and the worker read from Secret Manager on Cloud Run."""
    mail = ["MAIL_SMTP_PASSWORD"] if variant.auth != "none" else []
    return ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", *mail]


def check_secret_env(env: list[dict], slug: str, *names: str) -> None:
    """Exactly these secrets, from Secret Manager references (never literal values): the
    secret of SECRET_KEY is `<slug>-secret-key`."""
    by_name = {item["name"]: item for item in env}
    assert {name for name, item in by_name.items() if "valueFrom" in item} == set(names)
    for name in names:
        assert "value" not in by_name[name]
        assert by_name[name]["valueFrom"]["secretKeyRef"] == {
            "name": f"{slug}-{name.lower().replace('_', '-')}",
            "key": "latest",
        }


@variants_for("cloud_run")
def test_cloud_run_workflow_builds_pushes_migrates_and_deploys(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    workflow_path = ".github/workflows/deploy.yml"
    run_tool(
        project,
        str(BIN / "check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        workflow_path,
    )
    workflow = yaml.safe_load((project / workflow_path).read_text())
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    script = "\n".join(step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"])
    order = [
        "docker build",
        "docker push",
        "gcloud run jobs replace",
        "gcloud run jobs execute",
        "gcloud run services replace deploy/cloud-run/service.yaml",
        "gcloud run services replace deploy/cloud-run/worker.yaml",  # the same image, after
    ]
    positions = [script.index(command) for command in order]
    assert positions == sorted(positions), "build, push, migrate, then deploy the API and worker"
    assert "--wait" in script
    filled_in = script.split("for manifest in ", 1)[1].split(";", 1)[0].split()
    for manifest in (
        "deploy/cloud-run/service.yaml",
        "deploy/cloud-run/worker.yaml",
        "deploy/cloud-run/migrate-job.yaml",
    ):
        assert manifest in filled_in  # IMAGE, PROJECT_ID... replaced
        assert (project / manifest).is_file()


# --------------------------------------------------------------------------- vps


def verify_with_placeholder(text: str, executable: str, unit: Path) -> str:
    """`systemd_verify` of the unit `text`, written to `unit` with `executable` (which does
    not exist here) swapped for a placeholder script beside it."""
    placeholder = unit.parent / "bin" / Path(executable).name
    placeholder.parent.mkdir()
    placeholder.write_text("#!/bin/sh\n")
    placeholder.chmod(0o755)
    unit.write_text(text.replace(executable, str(placeholder)))
    return systemd_verify(unit)


def systemd_verify(unit: Path) -> str:
    """`systemd-analyze verify` output; it exits 0 on unknown keys, so warnings count too."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    return (
        (f"exit {result.returncode}\n" if result.returncode else "")
        + result.stdout
        + (result.stderr)
    )


def test_systemd_verify_catches_mistakes(tmp_path: Path) -> None:
    """The check below would fail on a typo or a bad value (negative control)."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nProtectSystm=strict\nPrivateTmp=maybe\n")
    output = systemd_verify(unit)
    assert "Unknown key" in output
    assert "Failed to parse boolean value" in output


@variants_with_redis("vps")
def test_systemd_unit_verifies_and_is_hardened(
    render: Callable[[Variant], Path], variant: Variant, tmp_path: Path
) -> None:
    """systemd-analyze checks that ExecStart's binary exists: verify a copy whose
    /srv/<slug>/.venv points at a placeholder executable, everything else unchanged."""
    project = render(variant)
    slug = variant_slug(variant)
    text = (project / f"deploy/vps/{slug}.service").read_text()
    executable = f"/srv/{slug}/.venv/bin/uvicorn"
    assert f"ExecStart={executable} " in text
    assert verify_with_placeholder(text, executable, tmp_path / f"{slug}.service") == ""

    directives = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    expected = {
        "User": slug,
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "EnvironmentFile": f"/etc/{slug}/{slug}.env",
        "StateDirectory": slug,
    }
    assert {key: directives.get(key) for key in expected} == expected
    # Started after the local redis-server (and pulling it in) only when the app uses it.
    for ordering in ("After", "Wants"):
        assert ("redis-server.service" in directives[ordering].split()) is variant.redis
    # Workers come from WEB_CONCURRENCY (env); the app reads the forwarding headers itself.
    assert "--workers" not in text
    assert "--forwarded-allow-ips" not in text
    assert "--no-proxy-headers --no-server-header" in text
    assert "--host 127.0.0.1 --port 8000" in text


@parametrize_variants([v for v in VARIANTS + REDIS_VARIANTS if v.deployment == "vps" and v.redis])
def test_systemd_worker_unit_verifies_and_is_hardened_like_the_api(
    render: Callable[[Variant], Path], variant: Variant, tmp_path: Path
) -> None:
    """The worker's unit: the API unit's user, env file and hardening, after redis-server
    (pulled in) and the local database, the venv's python running the worker, always
    restarted, a minute to finish its job on SIGTERM. Verified like the API unit."""
    project = render(variant)
    slug = variant_slug(variant)
    vps = project / "deploy/vps"
    text = (vps / f"{slug}-worker.service").read_text()
    executable = f"/srv/{slug}/.venv/bin/python"
    assert f"ExecStart={executable} -m {package_name(variant.answers)}.worker\n" in text
    assert verify_with_placeholder(text, executable, tmp_path / f"{slug}-worker.service") == ""

    def directives(unit_text: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for line in unit_text.splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                found.setdefault(key, []).append(value)
        return found

    worker = directives(text)
    api = directives((vps / f"{slug}.service").read_text())
    assert "StateDirectory" in text.split("# Hardening", 1)[1]
    shared = [
        key
        for key in api
        if key
        not in {
            "Description",
            "After",
            "Wants",
            "ExecStart",
            "TimeoutStopSec",
            "Restart",
            "Environment",
        }
    ]
    assert {key: worker.get(key) for key in shared} == {key: api[key] for key in shared}
    assert worker["Restart"] == ["always"]
    assert worker["TimeoutStopSec"] == ["60"]
    assert worker["KillSignal"] == ["SIGTERM"]
    after, wants = worker["After"][0].split(), worker["Wants"][0].split()
    assert "redis-server.service" in after
    assert "redis-server.service" in wants
    database_unit = {"postgresql": "postgresql.service", "mysql": "mariadb.service"}
    if variant.database in database_unit:
        assert database_unit[variant.database] in after

    script = (vps / "deploy.sh").read_text()
    api_restart = script.index('systemctl restart "$app"\n')
    assert script.index('systemctl restart "$app-worker"') > api_restart  # after the API
    runbook = (vps / "RUNBOOK.md").read_text()
    for command in ("systemctl status", "journalctl -u", "systemctl restart"):
        assert f"{command} {slug}-worker" in runbook, command
    assert f"deploy/vps/{slug}-worker.service /etc/systemd/system/" in runbook
    assert f"systemctl enable {slug} {slug}-worker" in runbook


@variants_with_redis("vps")
def test_vps_env_proxy_and_deploy_script(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    slug = variant_slug(variant)
    vps = project / "deploy/vps"
    env = dict(
        line.split("=", 1)
        for line in (vps / f"{slug}.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["ENVIRONMENT"] == "production"
    # Caddy, on the same host, is the one proxy.
    assert (env["TRUSTED_PROXY_HOPS"], env["TRUSTED_PROXIES"]) == ("1", "127.0.0.1")
    # SQLite has one writer; without Redis each process would count logins on its own.
    single_process = variant.database == "sqlite" or (not variant.redis and variant.auth != "none")
    assert int(env["WEB_CONCURRENCY"]) == (1 if single_process else 2)
    assert env.get("REDIS_URL") == ("redis://127.0.0.1:6379/0" if variant.redis else None)
    mail = variant.redis and variant.auth != "none"  # reset and verification links
    assert ("MAIL_SENDER" in env and "MAIL_SMTP_PASSWORD" in env) is mail
    runbook = (vps / "RUNBOOK.md").read_text()
    assert ("apt-get install -y redis-server" in runbook) is variant.redis
    assert ("REDIS_URL" in runbook) is variant.redis
    assert env["SECRET_KEY"] == ""
    if variant.database == "sqlite":
        assert env["DATABASE_URL"].startswith(f"sqlite+aiosqlite:////var/lib/{slug}/")

    caddyfile = (vps / "Caddyfile").read_text()
    assert "reverse_proxy 127.0.0.1:8000" in caddyfile
    # /metrics is answered by Caddy itself (respond runs before reverse_proxy), never proxied.
    assert "@metrics path /metrics /metrics/*\n\trespond @metrics 404\n" in caddyfile
    assert caddyfile.count("{") == caddyfile.count("}")

    script = vps / "deploy.sh"
    assert os.access(script, os.X_OK)
    run_tool(project, "bash", "-n", str(script))
    text = script.read_text()
    steps = [
        "uv sync --frozen",
        "alembic upgrade heads",
        'systemctl restart "$app"',
        "http://127.0.0.1:8000/health",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert (vps / "RUNBOOK.md").is_file()


# --------------------------------------------------------------------------- background worker


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS + REDIS_VARIANTS if v.deployment != "none" and "domains" not in v.answers],
    ids=lambda v: v.id,
)
def test_the_worker_is_deployed_exactly_where_redis_is(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """With Redis every target runs `python -m <package>.worker` (the checks above say how);
    without it no file, service or command mentions the worker module. The module itself
    comes from the worker's own change: nothing here runs it."""
    project = render(variant)
    command = f"{package_name(variant.answers)}.worker"
    files = {
        path.relative_to(project).as_posix(): path.read_text(encoding="utf-8")
        for path in rendered_files(project)
        if path.suffix != ".db"
    }
    mentions = sorted(name for name, text in files.items() if command in text)
    worker_files = sorted(name for name in files if "worker" in Path(name).name)
    expected = {
        "docker": ["compose.yaml"],
        "kubernetes": ["deploy/kubernetes/base/worker-deployment.yaml"],
        "cloud_run": ["deploy/cloud-run/worker.yaml"],
        "vps": [f"deploy/vps/{variant_slug(variant)}-worker.service"],
    }[variant.deployment]
    if not variant.redis:
        assert not [name for name in mentions if name.startswith(("deploy/", "compose"))]
        assert not [name for name in worker_files if name.startswith("deploy/")]
        if variant.deployment == "docker":
            assert "worker" not in yaml.safe_load(files["compose.yaml"])["services"]
        if variant.deployment == "vps":
            assert "-worker" not in files["deploy/vps/deploy.sh"]
        return
    assert set(expected) <= set(mentions), mentions
    if variant.deployment != "docker":
        assert set(expected) <= set(worker_files), worker_files


# --------------------------------------------------------------------------- worker processes

WORKER_COUNT = re.compile(
    r"^(?:ENV\b.*\s)?\s*WEB_CONCURRENCY[=:]\s*\"?(\d+)|name: WEB_CONCURRENCY\n\s*value: \"?(\d+)",
    re.MULTILINE,
)
HOW_TO_GET_MORE = "copier update -d redis=true"


def test_worker_count_pattern_finds_every_shape() -> None:
    """Negative control for the check below: each way a shipped file sets the count."""
    shapes = {
        "WEB_CONCURRENCY=2\n": "2",
        "ENV PORT=8000 WEB_CONCURRENCY=3\n": "3",
        '  WEB_CONCURRENCY: "4"\n': "4",
        '            - name: WEB_CONCURRENCY\n              value: "5"\n': "5",
    }
    for text, count in shapes.items():
        assert [a or b for a, b in WORKER_COUNT.findall(text)] == [count], text
    assert not WORKER_COUNT.findall("set `WEB_CONCURRENCY=2` in the env file\n")


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS + REDIS_VARIANTS if "domains" not in v.answers],
    ids=lambda v: v.id,
)
def test_one_worker_process_per_instance_without_redis(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """An app with users and no Redis refuses WEB_CONCURRENCY > 1 (each process would count
    logins on its own): no shipped file sets more, and the deployment files say how to get
    more. With Redis (or no users) the counts are free."""
    project = render(variant)
    counts = {
        path.relative_to(project).as_posix(): (
            [int(a or b) for a, b in WORKER_COUNT.findall(path.read_text(encoding="utf-8"))],
            path.read_text(encoding="utf-8"),
        )
        for path in rendered_files(project)
        if path.suffix != ".db"
    }
    counts = {name: found for name, found in counts.items() if found[0]}
    if variant.deployment in CONTAINER_TARGETS:
        assert "Dockerfile" in counts
    if variant.deployment == "vps":
        assert f"deploy/vps/{variant_slug(variant)}.env.example" in counts
    single_process = not variant.redis and variant.auth != "none"
    for name, (values, text) in counts.items():
        if not single_process:
            assert HOW_TO_GET_MORE not in text, name
            continue
        assert set(values) == {1}, name
        if name == "Dockerfile" or name.startswith("deploy/"):
            assert HOW_TO_GET_MORE in text or "Keep 1 with SQLite" in text, name


# --------------------------------------------------------------------------- README


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS + REDIS_VARIANTS if v.deployment != "none" and "domains" not in v.answers],
    ids=lambda v: v.id,
)
def test_readme_has_a_deployment_guide(render: Callable[[Variant], Path], variant: Variant) -> None:
    readme = (render(variant) / "README.md").read_text()
    heading = {
        "docker": "## Docker",
        "kubernetes": "## Kubernetes",
        "cloud_run": "## Google Cloud Run",
        "vps": "## VPS (systemd + Caddy)",
    }[variant.deployment]
    assert heading in readme
    assert ("## Container image" in readme) is (variant.deployment in CONTAINER_TARGETS)
    sections = "".join(
        readme.split(title, 1)[1].split("\n## ", 1)[0]
        for title in (heading, "## Container image")
        if title in readme
    )
    # Where Redis runs and how the app reaches it, or why there is one worker process.
    assert ("REDIS_URL" in sections) is variant.redis
    single_process = not variant.redis and variant.auth != "none"
    told = variant.deployment in CONTAINER_TARGETS or variant.database != "sqlite"
    assert (HOW_TO_GET_MORE in sections) is (single_process and told)


# --------------------------------------------------------------------------- the image's CMD


@pytest.fixture(scope="module")
def redis_server() -> Iterator[DatabaseServer]:
    """One real Redis (redis-server on loopback) for the module's apps that need one."""
    server = DatabaseServer("redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS if v.id in {"sqlite-jwt-docker", "sqlite-session-docker-redis"}],
    ids=lambda v: v.id,
)
def test_container_command_serves_health_outside_a_container(
    render_copy: Callable[[Variant], Path], request: pytest.FixtureRequest, variant: Variant
) -> None:
    """Install the project as the image does, run the Dockerfile's CMD as written (PORT set,
    uvicorn from the synced venv on PATH, REDIS_URL as compose gives it, to a real Redis) and
    hit /health and /ready; SIGTERM then shuts it down gracefully. The image runs the
    installed, compiled package, not the source tree."""
    project = render_copy(variant)
    timer = StepTimer(project)
    sync_options = dockerfile_final_sync(project)
    assert "--no-editable" in sync_options  # else the image compiles src/ at every start
    env = {**uv_env(variant.python_version), "UV_COMPILE_BYTECODE": "1"}
    timer.run("uv sync", str(BIN / "uv"), "sync", "--quiet", *sync_options, env=env)
    package = package_name(variant.answers)
    installed = list((project / ".venv/lib").glob(f"python*/site-packages/{package}/main.py"))
    assert len(installed) == 1, "the project is not installed into the virtualenv"
    assert list((installed[0].parent / "__pycache__").glob("main.*.pyc"))
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{project / '.venv/bin'}{os.pathsep}{os.environ['PATH']}",
        "PORT": str(port),
        "DATABASE_URL": f"sqlite+aiosqlite:///{project / 'cmd-check.db'}",
    }
    env.pop("VIRTUAL_ENV", None)
    if variant.redis:
        server: DatabaseServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = server.create_database(variant.id)
    command = dockerfile_cmd(project)
    process = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_status(f"http://127.0.0.1:{port}/health", 200)
        assert get_status(f"http://127.0.0.1:{port}/health") == 200
        assert get_status(f"http://127.0.0.1:{port}/ready") == 200  # database (and Redis) up
    finally:
        output = stop_gracefully(process)
    assert process.returncode in {0, -signal.SIGTERM}, output
    assert f"Uvicorn running on http://0.0.0.0:{port}" in output, output
    assert "Application shutdown complete" in output, output


# --------------------------------------------------------------------------- exposure


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS if v.deployment != "none" and "domains" not in v.answers],
    ids=lambda v: v.id,
)
def test_each_target_trusts_exactly_its_own_proxy_and_keeps_metrics_internal(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    """TRUSTED_PROXY_HOPS / TRUSTED_PROXIES per target (the generated
    tests/core/test_client_address.py checks a spoofed X-Forwarded-For against each), no
    uvicorn proxy trust anywhere, and /metrics never reachable from outside."""
    project = render(variant)
    texts = {
        path.relative_to(project).as_posix(): path.read_text(encoding="utf-8")
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.parts and path.suffix != ".db"
    }
    assert not [name for name, text in texts.items() if "FORWARDED_ALLOW_IPS" in text]
    generated_test = texts["tests/core/test_client_address.py"]
    if variant.deployment == "cloud_run":
        (service,) = load_all(project / "deploy/cloud-run/service.yaml")
        (container,) = service["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert (env["TRUSTED_PROXY_HOPS"], env["TRUSTED_PROXIES"]) == ("1", "*")
        assert env["METRICS_ENABLED"] == "false"  # everything on Cloud Run is public
        assert 'Target("cloud_run", 1, "*",' in generated_test
    elif variant.deployment == "kubernetes":
        config = load_all(project / "deploy/kubernetes/base/configmap.yaml")[0]["data"]
        assert (config["TRUSTED_PROXY_HOPS"], config["TRUSTED_PROXIES"]) == ("1", "10.0.0.0/8")
        assert 'Target("kubernetes", 1, "10.0.0.0/8",' in generated_test
        # The Ingress reaches the app only through the Service's one port; the app answers
        # 404 to /metrics for anything forwarded (generated tests/core/test_exposure.py).
        service = load_all(project / "deploy/kubernetes/base/service.yaml")[0]
        assert [port["name"] for port in service["spec"]["ports"]] == ["http"]
    elif variant.deployment == "vps":
        assert 'Target("vps", 1, "127.0.0.1",' in generated_test
    else:
        compose = yaml.safe_load(texts["compose.yaml"])
        api = compose["services"]["api"]
        assert "TRUSTED_PROXY_HOPS" not in api.get("environment", {})  # 0: no proxy
        assert 'Target("docker", 0, "127.0.0.1",' in generated_test
        published = [
            port for service in compose["services"].values() for port in service.get("ports", [])
        ]
        assert published
        assert all(str(port).startswith("127.0.0.1:") for port in published)


@pytest.mark.parametrize(
    "variant",
    [v for v in VARIANTS if "domains" not in v.answers],
    ids=lambda v: v.id,
)
def test_every_shipped_uvicorn_command_hides_its_server_header(
    render: Callable[[Variant], Path], variant: Variant
) -> None:
    project = render(variant)
    commands = [
        line
        for line in (project / "Makefile").read_text().splitlines()
        if "uvicorn " in line and "--factory" in line
    ]
    if variant.deployment in CONTAINER_TARGETS:
        commands.append(dockerfile_cmd(project)[2])
    if variant.deployment == "vps":
        unit = (project / f"deploy/vps/{variant_slug(variant)}.service").read_text()
        commands += [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert commands
    for command in commands:
        options = command.split()
        assert "--no-server-header" in options, command
        assert "--no-proxy-headers" in options, command
    bench = (project / "bench/server.py").read_text()
    assert '"--no-server-header"' in bench
    assert '"--no-proxy-headers"' in bench
