"""Static checks of infra/: the Terraform of the three clouds, the container image's Dockerfile and
its dependency lock, and the studio's compose file.

Providers cannot be downloaded here, so no `terraform validate` or plan: `terraform fmt -check`
where the binary is installed, a parse of every file with python-hcl2 always, checkov's offline
rules (from .venv-iac, `make iac-tools`), and checks of what the rules cannot see (the security
zones, encryption at rest, the work pools, the resources checkov mislinks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CLOUD = INFRA / "cloud"
CLOUDS = ("aws", "azure", "gcp")
DOCKERFILE = INFRA / "containers" / "Dockerfile"
LOCK = INFRA / "containers" / "requirements.lock"
COMPOSE = INFRA / "studio" / "compose.yaml"
CHECKOV = ROOT / ".venv-iac" / "bin" / "checkov"
# The seed's security zones (seed/bifrost-infrastructure-design.md, "Security Zones").
ZONES = ["public", "web", "service", "data", "storage"]
COMPOSE_PASSWORDS = ("DB_ADMIN", "DB_MIGRATOR", "DB_API", "DB_WORKER", "DB_READER", "DB_PREFECT")
COMPOSE_PASSWORDS += ("DB_REPLICATION", "REDIS", "S3")


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of block labels and strings: drop them, recursively."""
    if isinstance(value, dict):
        # python-hcl2's own markers (__comments__, __is_block__) are not part of the code.
        return {_unquote(k): _unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return _unquote(hcl2.load(handle))


def blocks(folder: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every `kind` block (resource, data, module, output...) of the folder's .tf files, by
    "type.name" (or "name" for one-label blocks)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        for entry in parsed(path).get(kind, []):
            for first, body in entry.items():
                if kind in ("resource", "data"):
                    for name, inner in body.items():
                        found[f"{first}.{name}"] = inner
                else:
                    found[first] = body
    return found


def terraform_files() -> list[Path]:
    return sorted(CLOUD.rglob("*.tf"))


def test_every_terraform_file_parses_and_is_formatted() -> None:
    files = terraform_files()
    assert len(files) >= 20
    for path in files:
        assert parsed(path), f"{path} is empty"
    terraform = shutil.which("terraform")
    if terraform is None:
        # No binary (nothing the project installs ships one): the HCL2 parse above is the check.
        print("terraform not on PATH: syntax checked by python-hcl2 only")
        return
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(CLOUD)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull},
    )
    assert done.returncode == 0, f"terraform fmt -check:\n{done.stdout}{done.stderr}"


def test_fmt_check_catches_bad_formatting(tmp_path: Path) -> None:
    """The check above is not vacuous: a misaligned file fails it (or fails to parse)."""
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "aws_s3_bucket" "x" {\n  bucket = "a"\n  acl = "private"\n}\n')
    terraform = shutil.which("terraform")
    if terraform is not None:
        done = subprocess.run([terraform, "fmt", "-check", str(tmp_path)], capture_output=True, timeout=60)
        assert done.returncode != 0
    broken = tmp_path / "broken.tf"
    broken.write_text('resource "aws_s3_bucket" "x" {\n  bucket = \n')
    with broken.open() as handle, pytest.raises(Exception, match=r"(?i)unexpected|expect"):
        hcl2.load(handle)


@pytest.fixture(scope="module")
def checkov_reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One checkov run over infra/cloud and the Dockerfile (each run costs seconds of start-up)."""
    if not CHECKOV.exists():
        service_missing("checkov (make iac-tools)", f"{CHECKOV} missing")
    output = tmp_path_factory.mktemp("checkov")
    done = subprocess.run(
        [
            *(str(CHECKOV), "--directory", str(CLOUD), "--directory", str(DOCKERFILE.parent)),
            *("--framework", "terraform", "dockerfile", "--skip-download", "--compact"),
            *("--output", "json", "--output-file-path", str(output)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # Offline: no Prisma Cloud look-ups, no terraform CLI configuration to read.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "TF_CLI_CONFIG_FILE": os.devnull},
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: some check failed (asserted below)
    report = json.loads((output / "results_json.json").read_text())
    return report if isinstance(report, list) else [report]


def _results(reports: list[dict[str, Any]], folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The checks of files under `folder`, by outcome (passed, failed, skipped)."""
    found: dict[str, list[dict[str, Any]]] = {"passed": [], "failed": [], "skipped": []}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for outcome in found:
            for check in report["results"].get(f"{outcome}_checks", []):
                if Path(check["file_abs_path"]).resolve().is_relative_to(folder):
                    found[outcome].append(check)
    return found


def _described(checks: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})" for c in checks
    )


@pytest.mark.parametrize("cloud", CLOUDS)
def test_checkov_finds_nothing_in_the_terraform(checkov_reports, cloud: str) -> None:
    results = _results(checkov_reports, CLOUD / cloud)
    assert results["failed"] == [], "checkov:\n" + _described(results["failed"])
    assert len(results["passed"]) >= 50, "checkov scanned almost nothing"
    skipped = results["skipped"]
    # Every skip says why (the `#checkov:skip=ID:reason` comment next to the resource).
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"


def test_checkov_finds_nothing_in_the_dockerfile(checkov_reports) -> None:
    results = _results(checkov_reports, DOCKERFILE.parent)
    assert results["failed"] == [], "checkov:\n" + _described(results["failed"])
    assert len(results["passed"]) >= 10


def test_every_checkov_skip_has_a_reason() -> None:
    pattern = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
    skips = 0
    for path in [*terraform_files(), DOCKERFILE]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = pattern.search(line)
            if match:
                skips += 1
                assert match.group(2) and len(match.group(2).strip()) >= 20, f"{path}:{number}: no reason"
    assert skips > 0


def test_aws_has_the_five_security_zones_as_subnets_and_groups() -> None:
    aws = CLOUD / "aws"
    network = parsed(aws / "network.tf")
    locals_ = {k: v for entry in network["locals"] for k, v in entry.items()}
    assert locals_["zones"] == ZONES
    # Only the web and service zones reach the internet (through NAT); data and storage do not.
    assert locals_["egress_zones"] == ["web", "service"]
    resources = blocks(aws, "resource")
    acl = resources["aws_network_acl.isolated"]
    assert acl["for_each"] == '${toset(["data", "storage"])}'
    groups = set(locals_["groups"])
    for name, path in locals_["paths"].items():
        assert path["from"] in groups and path["to"] in groups, name
    # The database, cache and search domain answer only the API, the workers and Prefect.
    into_data = {(p["from"], p["to"]) for p in locals_["paths"].values() if p["to"] in ("database", "cache")}
    assert {source for source, _ in into_data} <= {"api", "worker", "prefect"}
    assert "alb" not in {source for source, target in into_data}


def test_aws_encrypts_everything_at_rest() -> None:
    resources = blocks(CLOUD / "aws", "resource")
    assert resources["aws_rds_cluster.main"]["storage_encrypted"] is True
    assert resources["aws_elasticache_replication_group.main"]["at_rest_encryption_enabled"] is True
    assert resources["aws_elasticache_replication_group.main"]["transit_encryption_enabled"] is True
    assert resources["aws_opensearch_domain.main"]["encrypt_at_rest"][0]["enabled"] is True
    assert resources["aws_efs_file_system.hot"]["encrypted"] is True
    assert resources["aws_ecr_repository.bifrost"]["encryption_configuration"][0]["encryption_type"] == "KMS"
    for name, body in resources.items():
        kind = name.split(".", 1)[0]
        if kind in ("aws_cloudwatch_log_group", "aws_secretsmanager_secret"):
            assert "kms_key_id" in body, f"{name} is not encrypted with the KMS key"
        if kind == "aws_s3_bucket_server_side_encryption_configuration":
            (rule,) = body["rule"]
            assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    # Every bucket has an encryption configuration naming it (directly or by iterating over it).
    configurations = [b for n, b in resources.items() if n.startswith("aws_s3_bucket_server_side")]
    for name in (n for n in resources if n.startswith("aws_s3_bucket.")):
        assert any(
            name in str(c.get("for_each", "")) or f"{name}." in c["bucket"] or f"{name}[" in c["bucket"]
            for c in configurations
        ), f"{name} has no encryption configuration"


def test_aws_tier_bucket_companions_cover_every_tier() -> None:
    """What the checkov skips on aws_s3_bucket.tier say: each companion iterates over every
    tier bucket and configures the bucket of its own key."""
    resources = blocks(CLOUD / "aws", "resource")
    companions = (
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_logging",
        "aws_s3_bucket_notification",
        "aws_s3_bucket_replication_configuration",
    )
    for kind in companions:
        body = resources[f"{kind}.tier"]
        assert body["for_each"] == "${aws_s3_bucket.tier}", kind
        assert body["bucket"] == "${aws_s3_bucket.tier[each.key].id}", kind
    lifecycles = {name for name in resources if name.startswith("aws_s3_bucket_lifecycle_configuration.")}
    assert {"aws_s3_bucket_lifecycle_configuration.hot", "aws_s3_bucket_lifecycle_configuration.archive"} <= (
        lifecycles
    )
    archive = resources["aws_s3_bucket_lifecycle_configuration.archive"]["rule"][0]
    assert archive["transition"][0]["storage_class"] == "DEEP_ARCHIVE"
    replication = resources["aws_s3_bucket_replication_configuration.tier"]["rule"][0]
    assert "aws_s3_bucket.replica[each.key]" in replication["destination"][0]["bucket"]
    assert resources["aws_s3_bucket.replica"]["provider"] == "${aws.replica}"


def test_aws_work_pools_are_the_deployments_pools() -> None:
    from deployments.flows import POOL_TYPES

    outputs = blocks(CLOUD / "aws", "output")
    pools = outputs["work_pools"]["value"]
    assert set(pools) == set(POOL_TYPES)
    # The ECS pool's variables are variables of deployments/pools/ecs.json.
    template = json.loads((ROOT / "deployments" / "pools" / "ecs.json").read_text())
    known = set(template["variables"]["properties"])
    assert set(outputs["ecs_pool_job_variables"]["value"]) <= known


def test_aws_has_the_reference_services() -> None:
    resources = blocks(CLOUD / "aws", "resource")
    nodes = resources["aws_rds_cluster_instance.node"]["for_each"]
    assert set(nodes) == {"writer", "reader"}
    assert resources["aws_rds_cluster.main"]["engine"] == "aurora-postgresql"
    for required in (
        "aws_elasticache_replication_group.main",
        "aws_opensearch_domain.main",
        "aws_ecs_cluster.main",
        "aws_ecs_service.service",
        "aws_ecs_service.worker_gpu",
        "aws_cloudfront_distribution.review",
        "aws_secretsmanager_secret.bifrost",
        "aws_wafv2_web_acl.api",
        "aws_backup_plan.main",
    ):
        assert required in resources, required
    health = resources["aws_lb_target_group.service"]["health_check"][0]["path"]
    assert "/readyz" in health


@pytest.mark.parametrize("cloud", ["azure", "gcp"])
def test_azure_and_gcp_have_the_four_modules(cloud: str) -> None:
    folder = CLOUD / cloud
    modules = blocks(folder, "module")
    assert {name: body["source"] for name, body in modules.items()} == {
        role: f"./modules/{role}" for role in ("database", "cache", "storage", "compute")
    }
    variables = blocks(folder, "variable")
    assert variables, "no variables"
    for role, body in modules.items():
        module_folder = folder / "modules" / role
        declared = set(blocks(module_folder, "variable"))
        passed = {k for k in body if k not in ("source", "depends_on")}
        assert passed == declared, f"{cloud}/{role}: passed {passed ^ declared} differ from its variables"
        assert blocks(module_folder, "resource"), f"{cloud}/{role} makes nothing"


def test_cloud_readme_maps_every_role() -> None:
    readme = (CLOUD / "README.md").read_text()
    for role in ("database", "cache", "object storage", "compute", "secrets", "cdn", "search"):
        assert re.search(rf"^\|\s*{role}", readme, re.MULTILINE | re.IGNORECASE), role


def compose_command() -> list[str]:
    for candidate in (["docker-compose"], ["docker", "compose"], ["podman", "compose"]):
        if shutil.which(candidate[0]) is None:
            continue
        probe = subprocess.run([*candidate, "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return candidate
    service_missing("a compose implementation (Debian's docker-compose, make tools)", "none on PATH")
    raise AssertionError("unreachable")


def compose_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_command(), "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_compose_file_is_valid_and_complete() -> None:
    passwords = {f"{name}_PASSWORD": f"secret-{name.lower()}" for name in COMPOSE_PASSWORDS}
    done = compose_config(COMPOSE, passwords)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert {"gateway", "api1", "api2", "api3", "worker-cpu", "worker-gpu", "migrate", "prefect"} <= set(
        services
    )
    assert {"postgres", "postgres-replica", "redis", "s3", "s3-buckets"} <= set(services)
    for name in ("api1", "api2", "api3"):
        environment = services[name]["environment"]
        assert "bifrost_api:secret-db_api@postgres" in environment["BIFROST_DATABASE_URL"]
        assert "postgres-replica" in environment["BIFROST_DATABASE_REPLICA_URLS"]
        assert services[name]["read_only"] is True
    assert "bifrost_worker" in services["worker-cpu"]["environment"]["BIFROST_DATABASE_URL"]
    assert "bifrost_migrator" in services["migrate"]["environment"]["BIFROST_DATABASE_URL"]
    assert (
        "postgresql+asyncpg://prefect"
        in services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    # Only the gateway is published to every address; Prefect's UI to the host only.
    published = {name: service.get("ports", []) for name, service in services.items() if service.get("ports")}
    assert set(published) == {"gateway", "prefect"}
    # docker-compose 1.x prints the short form ("127.0.0.1:4200:4200/tcp"), others the long one.
    for port in published["prefect"]:
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        assert host_ip == "127.0.0.1", port
    assert config["networks"]["data"]["internal"] is True
    assert config["networks"]["storage"]["internal"] is True
    # The files it mounts exist.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith(("/", ".")) and "certs" not in source:
                assert (COMPOSE.parent / source).resolve().exists(), source


def test_compose_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  api:\n    image: bifrost\n    restart: sometimes\n    colour: blue\n")
    assert compose_config(broken, {}).returncode != 0
    # A missing password is refused with the hint to run the set-up script.
    done = compose_config(COMPOSE, {})
    assert done.returncode != 0
    assert "setup.sh" in done.stderr


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split into stages."""
    instructions: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = f"{pending} {stripped[:-1]}" if stripped.endswith("\\") else f"{pending} {stripped}"
        if not stripped.endswith("\\"):
            instructions.append(pending.strip())
            pending = ""
    stages: list[list[str]] = [[]]
    for instruction in instructions:
        if (
            instruction.upper().startswith("FROM ")
            and stages[-1]
            and any(i.upper().startswith("FROM ") for i in stages[-1])
        ):
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_dockerfile_is_multi_stage_non_root_pinned_and_checked() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "not a multi-stage build"
    final = stages[-1]
    users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert users, "the runtime stage runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (Kubernetes runAsNonRoot)"
    (healthcheck,) = [i for i in final if i.upper().startswith("HEALTHCHECK ")]
    assert "/readyz" in healthcheck
    assert any(i.startswith("COPY --from=build") for i in final)
    installs = [i for stage in stages for i in stage if "pip install" in i]
    assert installs and all("--no-deps" in i for i in installs)
    assert any("-r /tmp/requirements.lock" in i for i in installs)
    # The final stage installs nothing: it only copies the built venv.
    assert not any("pip install" in i or "apt-get" in i for i in final)
    froms = [i for stage in stages for i in stage if i.upper().startswith("FROM ")]
    assert not any(":latest" in i for i in froms)


def test_lock_pins_every_runtime_dependency() -> None:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, separator, version = line.partition("==")
        assert separator and version and " " not in line, f"not pinned: {line}"
        assert canonicalize_name(name) not in pins, f"pinned twice: {name}"
        pins[canonicalize_name(name)] = version
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for text in dependencies:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {LOCK.name}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} in the lock does not satisfy {requirement.specifier}"
        )
        # What an extra brings (psycopg[binary], uvicorn[standard]) is pinned too: read from the
        # installed distribution's metadata, for the image's interpreter's environment.
        for extra in requirement.extras:
            for needed in map(Requirement, metadata.requires(requirement.name) or []):
                if needed.marker is not None and needed.marker.evaluate({"extra": extra}):
                    assert canonicalize_name(needed.name) in pins, f"{needed} (from {text}) is not pinned"


def test_package_data_ships_every_resource_file() -> None:
    """An installed copy (the image's) has every non-Python file the packages read: each one
    matches a package-data pattern of pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"] if p.endswith("*")]
    for package in packages:
        folder = ROOT / package
        for path in folder.rglob("*"):
            if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(folder)
            assert any(relative.match(pattern) for pattern in patterns.get(package, [])), (
                f"{path.relative_to(ROOT)} is missing from pyproject's package-data for {package}"
            )


def test_studio_setup_makes_passwords_and_a_certificate_once(tmp_path: Path) -> None:
    """infra/studio/setup.sh on a copy of infra/: the .env it writes is all the compose file
    needs, the certificate names the host, and a second run keeps both."""
    if shutil.which("openssl") is None:
        service_missing("openssl", "not on PATH")
    copy = tmp_path / "infra"
    for folder in ("studio", "small-team", "database"):
        shutil.copytree(INFRA / folder, copy / folder, ignore=shutil.ignore_patterns(".env", "certs"))
    setup = [str(copy / "studio" / "setup.sh"), "studio.example"]
    first = subprocess.run(setup, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    env_file = copy / "studio" / ".env"
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(values) == {f"{name}_PASSWORD" for name in COMPOSE_PASSWORDS}
    assert len(set(values.values())) == len(values) and all(len(v) == 48 for v in values.values())
    assert env_file.stat().st_mode & 0o077 == 0, ".env must be readable by its owner only"
    pem = copy / "studio" / "certs" / "gateway.pem"
    text = pem.read_text()
    assert "PRIVATE KEY" in text and "CERTIFICATE" in text
    names = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=text, capture_output=True, text=True
    )
    assert "DNS:studio.example" in names.stdout

    second = subprocess.run(setup, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and second.stdout == ""
    assert dict(line.split("=", 1) for line in env_file.read_text().splitlines()) == values
    assert pem.read_text() == text
    # The compose file reads the passwords from the .env beside it.
    done = compose_config(copy / "studio" / "compose.yaml", {})
    assert done.returncode == 0, done.stderr
    assert values["DB_API_PASSWORD"] in done.stdout
