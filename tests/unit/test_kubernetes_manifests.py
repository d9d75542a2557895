"""deploy/kubernetes/: valid against the Kubernetes schemas, and true to the service.

The schemas (kubernetes-validate --strict) catch a misspelt field or a wrong type; the tests
after them check what no schema can: that the probes ask routes the HTTP listener serves on the
port it listens on, that every variable is a setting, that the Secrets the production guide
creates hold every key the pods read, that the settings the manifests make pass production's
start-up checks, that the grace period outlasts the drain, that the selectors match, and that
the pods run as the Dockerfile's user.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, SecretStr

from server.http.probes import HEALTHZ_PATH, READYZ_PATH
from server.http.routes import http_app
from server.settings import ENV_PREFIX, Settings, default_password_hash_workers
from tests.unit.server.test_settings import API_KEY_ENTRY, TOTP_KEYS
from tools.bench.goals import IDLE_RSS_LIMIT_BYTES

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
GUIDE = ROOT / "docs" / "production.md"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"

MAKEFILE = ROOT / "Makefile"


def kubernetes_versions() -> list[str]:
    """The Makefile's KUBERNETES_VERSIONS: the oldest Kubernetes the manifests support (the
    preStop hook's sleep action is on by default from 1.30) and the newest the pinned
    kubernetes-validate knows; `make validate-kubernetes` validates against the same."""
    match = re.search(r"^KUBERNETES_VERSIONS := (.+)$", MAKEFILE.read_text("utf-8"), re.MULTILINE)
    assert match, "KUBERNETES_VERSIONS is not in the Makefile"
    return match.group(1).split()


_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_COMMENTED_KEY = re.compile(r"^\s*#\s*((?:USER_SERVICE|OTEL)_[A-Z0-9_]+):", re.MULTILINE)
_OTEL_NAME = re.compile(r"\bOTEL_[A-Z0-9_]*[A-Z0-9]\b")
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$")


# --- reading the files ---------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(path for path in MANIFESTS.glob("*.yaml") if path != KUSTOMIZATION)


@cache
def resources() -> dict[str, dict[str, Any]]:
    """kind -> the one resource of that kind (each file holds one)."""
    found: dict[str, dict[str, Any]] = {}
    for path in manifest_files():
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        assert len(documents) == 1, f"{path.name}: one resource per file"
        (document,) = documents
        assert document["kind"] not in found, f"two {document['kind']}s"
        found[document["kind"]] = document
    return found


def pod_spec() -> dict[str, Any]:
    return resources()["Deployment"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return only  # type: ignore[no-any-return]


def container_ports() -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container()["ports"]}


def config_map() -> dict[str, str]:
    return dict(resources()["ConfigMap"]["data"])


def env_entries() -> list[dict[str, Any]]:
    return list(container()["env"])


def secret_refs() -> list[tuple[str, str, bool]]:
    """(secret, key, optional) of every secretKeyRef."""
    refs = []
    for item in env_entries():
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            refs.append((ref["name"], ref["key"], bool(ref.get("optional", False))))
    return refs


def dockerfile_runtime_stage() -> list[str]:
    """The runtime stage's instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile_runtime_stage():
        if line.upper().startswith("ENV "):
            for token in shlex.split(line[4:]):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def dockerfile_user() -> tuple[int, int]:
    (user,) = [line for line in dockerfile_runtime_stage() if line.upper().startswith("USER ")]
    uid, _, gid = user.split()[1].partition(":")
    return int(uid), int(gid)


def setting_variables() -> set[str]:
    """Every environment variable Settings reads: USER_SERVICE_<FIELD>, and the AWS aliases."""
    names = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        else:
            assert alias is None, f"{field}: an alias of another kind"
            names.add(ENV_PREFIX + field.upper())
    return names


def documented_otel_variables() -> set[str]:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## Tracing\n", 1)[1].split("\n## ", 1)[0]
    return set(_OTEL_NAME.findall(section))


def guide_secrets() -> tuple[set[tuple[str, str]], set[str]]:
    """The (Secret, key) pairs the guide's `kubectl create secret` commands make; and the keys
    its prose adds to them when a feature is on (`--from-file=KEY=...` in inline code)."""
    text = GUIDE.read_text(encoding="utf-8")
    created = set()
    for language, body in (match.groups() for match in _FENCE.finditer(text)):
        if language != "bash":
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            if not line.startswith("kubectl create secret "):
                continue
            words = shlex.split(line, comments=True)
            kind, name, options = words[3], words[4], words[5:]
            if kind == "tls":
                created |= {(name, "tls.crt"), (name, "tls.key")}
            else:
                created |= {
                    (name, option.split("=", 2)[1])
                    for option in options
                    if option.startswith(("--from-file=", "--from-literal="))
                }
    mentioned = set(re.findall(r"`--from-(?:file|literal)=([a-z0-9.-]+)=[^`]*`", text))
    return created, mentioned


# --- the schemas ---------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_transforms_nothing() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    # Nothing but the list: what `kubectl apply -k` applies is the files as validated below.
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    assert set(resources()) == {
        "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }  # fmt: skip


@pytest.mark.parametrize("version", kubernetes_versions())
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(version: str) -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    files = [str(path) for path in manifest_files()]
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", "-k", version, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind it has no schema for is only a warning: every resource must have been checked.
    assert "WARN" not in output and "ERROR" not in output, output


# --- settings and Secrets ------------------------------------------------------------------


def test_every_variable_the_manifests_name_is_a_setting_or_a_documented_otel_variable() -> None:
    known = setting_variables() | documented_otel_variables()
    assert "USER_SERVICE_HTTP_PORT" in known and "OTEL_SERVICE_NAME" in known
    named = set(config_map()) | {item["name"] for item in env_entries()}
    # The commented-out keys too: uncommenting one must give a setting the service reads.
    commented = set(_COMMENTED_KEY.findall((MANIFESTS / "configmap.yaml").read_text("utf-8")))
    assert commented, "the ConfigMap's optional settings were not found"
    assert sorted((named | commented) - known) == []


def test_no_variable_is_set_twice() -> None:
    names = [item["name"] for item in env_entries()]
    assert len(names) == len(set(names))
    # An `env` entry silently wins over the ConfigMap's: each belongs in one place.
    assert set(names) & set(config_map()) == set()
    (source,) = container()["envFrom"]
    assert source == {"configMapRef": {"name": resources()["ConfigMap"]["metadata"]["name"]}}


def secret_fields() -> set[str]:
    return {
        field
        for field, info in Settings.model_fields.items()
        if SecretStr in getattr(info.annotation, "__args__", (info.annotation,))
    }


def secret_mounts() -> dict[str, tuple[str, dict[str, str]]]:
    """mountPath -> (Secret name, file name -> key) of each mounted Secret."""
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounts = {}
    for mount in container()["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        assert mount.get("readOnly") is True, f"{mount['name']} is mounted writable"
        items = {item["path"]: item["key"] for item in secret.get("items", [])}
        mounts[mount["mountPath"]] = (secret["secretName"], items)
    return mounts


def secret_of_file(path: str) -> tuple[str, str] | None:
    """(Secret, key) a file path of the container reads, when it lies in a mounted Secret."""
    for mount_path, (secret, items) in secret_mounts().items():
        if PurePosixPath(path).is_relative_to(mount_path):
            name = PurePosixPath(path).relative_to(mount_path).as_posix()
            return secret, items.get(name, name) if items else name
    return None


def test_every_secret_setting_comes_from_a_secret_and_none_is_written_out() -> None:
    assert {"jwt_signing_keys", "page_token_secret", "totp_encryption_keys", "smtp_password",
            "legacy_auth_hmac_key"} <= secret_fields()  # fmt: skip
    plain = dict(config_map()) | {
        item["name"]: item["value"] for item in env_entries() if "value" in item
    }
    from_secrets = {item["name"] for item in env_entries() if "valueFrom" in item}
    # The SecretStr settings, and the API keys' list (it names each caller's role).
    for field in sorted(secret_fields() | {"api_keys"}):
        variable = ENV_PREFIX + field.upper()
        assert variable not in plain, f"{variable} is written out in the manifests"
        file_variable = f"{variable}_FILE"
        if file_variable in plain:
            assert secret_of_file(plain[file_variable]), f"{file_variable}: not in a Secret"
        else:
            assert variable in from_secrets, f"{variable} is neither a Secret's key nor a file"
    # The TLS key and certificate are files of a mounted Secret.
    for field in ("tls_cert_file", "tls_key_file"):
        variable = ENV_PREFIX + field.upper()
        assert secret_of_file(plain[variable]), f"{variable} is not in a mounted Secret"


def test_the_guide_creates_every_secret_key_the_pods_read_and_no_other() -> None:
    made, mentioned = guide_secrets()
    assert made, "the guide's `kubectl create secret` commands were not found"
    required = {(name, key) for name, key, optional in secret_refs() if not optional}
    optional = {(name, key) for name, key, optional in secret_refs() if optional}
    for item in env_entries():
        if "value" in item and (found := secret_of_file(item["value"])) is not None:
            required.add(found)
    for secret, items in secret_mounts().values():
        required |= {(secret, key) for key in items.values()}
    assert sorted(required - made) == [], "the pods need keys the guide does not create"
    assert sorted(key for _, key in optional - made if key not in mentioned) == [], (
        "optional keys the guide never mentions"
    )
    assert sorted(made - required - optional) == [], "the guide creates keys no pod reads"


SAMPLE_SECRETS = {
    "api-keys": API_KEY_ENTRY,
    "page-token-secret": "p" * 32,
    "totp-encryption-keys": TOTP_KEYS,
    "smtp-password": "an SMTP password",
    "legacy-auth-hmac-key": base64.b64encode(bytes(32)).decode(),
}


@pytest.fixture
def manifest_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The container's environment: the image's, the ConfigMap's, the Deployment's, with sample
    values for the Secrets' keys (as the guide's commands would create them)."""
    for name in list(os.environ):
        if name.startswith((ENV_PREFIX, "AWS_", "OTEL_")):
            monkeypatch.delenv(name)
    environment = {name: value for name, value in dockerfile_env().items() if name in
                   setting_variables()}  # fmt: skip
    environment |= config_map()
    for item in env_entries():
        if "value" in item:
            environment[item["name"]] = item["value"]
        else:
            environment[item["name"]] = SAMPLE_SECRETS[item["valueFrom"]["secretKeyRef"]["key"]]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.mark.usefixtures("manifest_environment")
def test_the_settings_the_manifests_make_pass_productions_start_up_checks() -> None:
    assert set(SAMPLE_SECRETS) == {key for _, key, _ in secret_refs()}
    settings = Settings()
    assert settings.is_production
    assert settings.unmet_serving_requirement() is None
    assert not settings.creates_tables and not settings.uses_embedded_dynamodb
    assert settings.notifier_kind == "smtp"
    ports = container_ports()
    assert settings.port == ports["grpc"]
    assert settings.http_port == ports["http"]
    # The plaintext ports stay on the loopback; no container port exposes them.
    assert settings.health_port is not None and settings.health_port not in ports.values()
    assert settings.metrics_address == "127.0.0.1"


@pytest.mark.usefixtures("manifest_environment")
def test_the_probes_ask_the_http_listeners_routes_on_its_port_in_its_scheme() -> None:
    settings = Settings()
    app = http_app(
        keys=[], issuer="urn:test", public_url="https://test", ready=lambda: True, metrics=None
    )
    served = {route.resource.canonical for route in app.router.routes() if route.resource}
    ports = container_ports()
    scheme = "HTTPS" if settings.tls_cert_file is not None else "HTTP"
    expected = {"startupProbe": HEALTHZ_PATH, "livenessProbe": HEALTHZ_PATH,
                "readinessProbe": READYZ_PATH}  # fmt: skip
    for probe, path in expected.items():
        get = container()[probe]["httpGet"]
        # Liveness and start-up never wait on DynamoDB; readiness does.
        assert get["path"] == path and path in served, probe
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == settings.http_port, probe
        assert get["scheme"] == scheme, probe


def test_every_probe_gives_the_tls_handshake_time() -> None:
    # Unset, timeoutSeconds is 1 s: a handshake and a reply on a loaded node can take longer,
    # and a start-up probe that times out restarts the pod.
    probes = [name for name in container() if name.endswith("Probe")]
    assert sorted(probes) == ["livenessProbe", "readinessProbe", "startupProbe"]
    for probe in probes:
        timeout = container()[probe].get("timeoutSeconds")
        assert timeout is not None and timeout >= 2, probe


@pytest.mark.usefixtures("manifest_environment")
def test_the_grace_period_outlasts_the_prestop_pause_and_the_drain() -> None:
    settings = Settings()
    pre_stop = container()["lifecycle"]["preStop"]
    pause = float(
        pre_stop["sleep"]["seconds"] if "sleep" in pre_stop else pre_stop["exec"]["command"][1]
    )
    assert pause > 0
    # The guide's rule: the pause + the drain + 5 s to close connections and exit.
    drain = pause + settings.shutdown_grace_seconds
    assert pod_spec()["terminationGracePeriodSeconds"] >= drain + 5


def cores(quantity: str) -> float:
    match = _QUANTITY.match(quantity)
    assert match, quantity
    number, unit = float(match.group(1)), match.group(2)
    return number / 1000 if unit == "m" else number


def mebibytes(quantity: str) -> float:
    match = _QUANTITY.match(quantity)
    assert match and match.group(2) in {"Ki", "Mi", "Gi"}, quantity
    return float(match.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}[match.group(2)]


@pytest.mark.usefixtures("manifest_environment")
def test_the_resources_hold_the_hashing_threads_and_the_benchmarks_memory() -> None:
    settings = Settings()
    resources_ = container()["resources"]
    requested = cores(resources_["requests"]["cpu"])
    # One hashing thread per requested core, and room for the event loop beside them.
    assert settings.password_hash_workers == requested
    assert cores(resources_["limits"]["cpu"]) >= requested + 1
    # The value set is what the default would make of the limit's quota (the CPUs less one).
    quota = math.ceil(cores(resources_["limits"]["cpu"]))
    assert default_password_hash_workers(lambda: quota) == settings.password_hash_workers
    # The bench's resident-memory goal (which its runs meet) plus an argon2id hash per thread.
    hashing = settings.password_hash_workers * settings.argon2_memory_kib / 1024
    needed = IDLE_RSS_LIMIT_BYTES / 2**20 + hashing
    assert mebibytes(resources_["requests"]["memory"]) >= needed
    assert mebibytes(resources_["limits"]["memory"]) > mebibytes(resources_["requests"]["memory"])


# --- the pod's security and the resources' references --------------------------------------


def test_the_pods_run_as_the_dockerfiles_user_locked_down() -> None:
    uid, gid = dockerfile_user()
    assert uid != 0
    pod = pod_spec()["securityContext"]
    own = container()["securityContext"]
    for context in (pod, own):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert own["readOnlyRootFilesystem"] is True
    assert own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    # The only writable place is a bounded emptyDir.
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    writable = [mount for mount in container()["volumeMounts"] if not mount.get("readOnly")]
    assert [mount["mountPath"] for mount in writable] == ["/tmp"]
    assert volumes[writable[0]["name"]]["emptyDir"]["sizeLimit"]


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_selectors_labels_and_names_agree_across_the_resources() -> None:
    found = resources()
    deployment = found["Deployment"]
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert labels_match(selector, pods)
    assert found["Service"]["spec"]["selector"] == selector
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    for constraint in pod_spec()["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target == {
        "apiVersion": deployment["apiVersion"], "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }  # fmt: skip
    assert pod_spec()["serviceAccountName"] == found["ServiceAccount"]["metadata"]["name"]
    # Every resource carries the name label, for `kubectl get all -l ...`.
    for resource in found.values():
        assert labels_match(selector, resource["metadata"]["labels"]), resource["kind"]


def test_the_service_exposes_the_grpc_and_http_ports_by_name() -> None:
    ports = container_ports()
    service_ports = {port["name"]: port for port in resources()["Service"]["spec"]["ports"]}
    assert set(service_ports) == {"grpc", "http"}
    for name, port in service_ports.items():
        assert port["targetPort"] == name and name in ports
        assert port["appProtocol"]


def test_the_autoscaler_owns_the_replicas_and_the_budget_leaves_some_serving() -> None:
    found = resources()
    assert "replicas" not in found["Deployment"]["spec"], "a re-apply would reset the count"
    autoscaler = found["HorizontalPodAutoscaler"]["spec"]
    assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    assert found["PodDisruptionBudget"]["spec"]["maxUnavailable"] < autoscaler["minReplicas"] - 1
    rollout = found["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0


def guide_yaml_blocks() -> Iterator[Any]:
    text = GUIDE.read_text(encoding="utf-8")
    for language, body in (match.groups() for match in _FENCE.finditer(text)):
        if language == "yaml":
            yield yaml.safe_load(body)


def test_the_guides_commands_act_in_the_overlays_namespace() -> None:
    # The overlay puts every resource in its namespace: the Secrets the pods read must be there
    # too, and the rollout watched there, or the commands work on the current namespace instead.
    (overlay,) = [
        block
        for block in guide_yaml_blocks()
        if isinstance(block, dict) and block.get("kind") == "Kustomization"
    ]
    namespace = overlay["namespace"]
    section = GUIDE.read_text(encoding="utf-8").split("\n### Applying the manifests\n", 1)[1]
    section = section.split("\n### ", 1)[0]
    commands = []
    for language, body in (match.groups() for match in _FENCE.finditer(section)):
        if language == "bash":
            for line in re.sub(r"\\\n\s*", " ", body).splitlines():
                if line.startswith("kubectl "):
                    commands.append(shlex.split(line, comments=True))
    assert ["kubectl", "create", "namespace", namespace] in commands
    acting = [words for words in commands if words[1:3] != ["create", "namespace"]]
    assert len([words for words in acting if words[1:3] == ["create", "secret"]]) == 3
    for words in acting:
        if words[1:3] == ["apply", "-k"] and words[3].startswith("overlays/"):
            continue  # the overlay sets the namespace itself
        assert ("-n", namespace) in itertools.pairwise(words), " ".join(words)


def _kubectl_verb(words: list[str]) -> str:
    """The verb of a kubectl command line, wherever ``-n NAMESPACE`` stands."""
    rest = words[1:]
    while rest[:1] == ["-n"]:
        rest = rest[2:]
    return rest[0] if rest else ""


def test_every_kubectl_command_of_the_guide_finds_the_pods() -> None:
    # The runbook's commands too: a `kubectl exec`/`logs`/`get` without the namespace acts on the
    # current one, and a label selector the manifests do not set matches no pod.
    (overlay,) = [
        block
        for block in guide_yaml_blocks()
        if isinstance(block, dict) and block.get("kind") == "Kustomization"
    ]
    namespace = overlay["namespace"]
    labels = resources()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    text = re.sub(r"\\\n\s*", " ", GUIDE.read_text(encoding="utf-8"))
    lines = [
        line.strip().strip("`")
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)
        for line in block.splitlines()
    ] + re.findall(r"`(kubectl [^`]*)`", text)
    commands = [shlex.split(line, comments=True) for line in lines if line.startswith("kubectl ")]
    acting = [
        words
        for words in commands
        if _kubectl_verb(words) in {"exec", "logs", "get", "rollout", "describe", "delete"}
    ]
    assert len(acting) >= 8
    for words in acting:
        assert ("-n", namespace) in itertools.pairwise(words), " ".join(words)
        for flag, selector in itertools.pairwise(words):
            if flag == "-l":
                key, _, value = selector.partition("=")
                assert labels.get(key) == value, " ".join(words)


def test_the_guides_overlay_names_the_deployments_image() -> None:
    (overlay,) = [
        block
        for block in guide_yaml_blocks()
        if isinstance(block, dict) and block.get("kind") == "Kustomization"
    ]
    image = container()["image"]
    assert [entry["name"] for entry in overlay["images"]] == [image.rsplit(":", 1)[0]]
    assert overlay["resources"] == ["../../deploy/kubernetes"]


# --- rendered by kustomize, where kubectl is installed ---------------------------------------

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (its kustomize) not installed")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in documents}


@needs_kubectl
def test_kustomize_renders_the_base_as_the_files_are() -> None:
    assert by_kind(kustomize(MANIFESTS)) == resources()


@needs_kubectl
def test_the_guides_overlay_renders_with_its_namespace_image_and_patches(tmp_path: Path) -> None:
    (overlay,) = [
        block
        for block in guide_yaml_blocks()
        if isinstance(block, dict) and block.get("kind") == "Kustomization"
    ]
    shutil.copytree(MANIFESTS, tmp_path / "deploy" / "kubernetes")
    directory = tmp_path / "overlays" / "production"
    directory.mkdir(parents=True)
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    role = "arn:aws:iam::123456789012:role/user-service-production"
    patches = {
        "settings.yaml": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "user-service"},
            "data": {"USER_SERVICE_AWS_REGION": "eu-west-1"},
        },
        "role.yaml": {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "user-service",
                "annotations": {"eks.amazonaws.com/role-arn": role},
            },
        },
    }
    assert sorted(patch["path"] for patch in overlay["patches"]) == sorted(patches)
    for name, patch in patches.items():
        (directory / name).write_text(yaml.safe_dump(patch), encoding="utf-8")
    # The stack's outputs, as the guide's describe-stacks command writes them.
    tables = {
        "USER_SERVICE_AWS_REGION": "eu-west-1",
        "USER_SERVICE_TABLE_NAME": "Users-prod",
        "USER_SERVICE_EMAIL_TABLE_NAME": "UserEmails-prod",
        "USER_SERVICE_EVENTS_TABLE_NAME": "UserEvents-prod",
        "USER_SERVICE_SESSIONS_TABLE_NAME": "UserSessions-prod",
    }
    assert set(tables) <= set(config_map())
    (directory / "user-service-tables.env").write_text(
        "".join(f"{name}={value}\n" for name, value in tables.items()), encoding="utf-8"
    )

    rendered = by_kind(kustomize(directory))
    assert set(rendered) == set(resources())
    assert {document["metadata"]["namespace"] for document in rendered.values()} == {
        overlay["namespace"]
    }
    (image,) = overlay["images"]
    (pod_container,) = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert pod_container["image"] == f"{image['newName']}@{image['digest']}"
    # The stack's outputs and the patch change their keys and keep the others.
    assert rendered["ConfigMap"]["data"] == config_map() | tables
    # Whatever name kustomize gives the merged ConfigMap, the pods read that one.
    (source,) = [
        entry["configMapRef"]["name"]
        for entry in pod_container.get("envFrom", [])
        if "configMapRef" in entry
    ]
    assert source == rendered["ConfigMap"]["metadata"]["name"]
    assert rendered["ServiceAccount"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": role
    }
