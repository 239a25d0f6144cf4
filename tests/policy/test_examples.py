"""The example policies in deploy/policies/ load and do what their comments say; the alert
catalogue (docs/alerts.md) has a section for every rule the judge can raise, and no other."""

from __future__ import annotations

import ast
import hashlib
import re
import typing
from pathlib import Path

import pytest

from egresswatch.flows.record import FlowRecord
from egresswatch.policy.judge import PolicyJudge
from egresswatch.policy.load import load_policy
from egresswatch.policy.model import Detections
from tests.conftest import REPO
from tests.policy.test_policy import OFFLINE, flow

EXAMPLES = REPO / "deploy" / "policies"
CATALOGUE = REPO / "docs" / "alerts.md"
POLICY_CODE = REPO / "egresswatch" / "policy"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_policy_loads(path: Path) -> None:
    policy = load_policy(path)  # ConfigError (file, line, key) if it is not valid
    assert policy.scopes[0].name == "offline" and policy.scopes[-1].name == "everything"


def test_the_inference_box_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} >= {"ollama.yaml", "dify.yaml", "vllm.yaml"}


LABELS: dict[str, dict[str, str]] = {}
"""container id -> its labels, for the judge (what Docker's API would say)."""
HOST = {"container_id": None, "container_name": None, "image": None}
"""A flow's fields for the host's own flows (no container)."""


def container(name: str, image: str, **labels: str) -> dict[str, object]:
    """A flow's fields for a container (its id derived from its name) and, in LABELS, its
    labels as Docker would report them."""
    cid = hashlib.sha256(name.encode()).hexdigest()
    LABELS[cid] = labels
    return {"container_id": cid, "container_name": name, "image": image}


def rules(example: str, *flows: FlowRecord) -> list[tuple[str, str]]:
    """(rule, severity) of what a fresh judge with this example raises on these flows, in its
    first day (first-seen destinations are still being learned)."""
    judge = PolicyJudge(load_policy(EXAMPLES / example), lambda cid: LABELS.get(cid, {}))
    return [(a.rule, a.severity) for a in judge.judge(flows)]


def to(name: str | None, port: int = 443, **fields: object) -> FlowRecord:
    return flow(server_name=name, name_source="sni" if name else None, dst_port=port, **fields)


OLLAMA = container("ollama", "ollama/ollama:latest")
OLLAMA_HOST = {**HOST, "process": "ollama", "exe": "/usr/local/bin/ollama"}
R2 = "dd20bb891979d25aebc8bec07b2b3bbc.r2.cloudflarestorage.com"
NOT_ALLOWED = [("ollama: not allowed", "high")]


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        ([to("registry.ollama.ai", **OLLAMA), to(R2, **OLLAMA)], []),  # a pull
        ([to("ollama.com", **OLLAMA)], NOT_ALLOWED),
        ([to("registry.ollama.ai", 80, **OLLAMA)], NOT_ALLOWED),  # HTTPS only
        ([to("other.r2.cloudflarestorage.com", **OLLAMA)], NOT_ALLOWED),  # not a wildcard
        ([to("registry.ollama.ai", **OLLAMA_HOST)], []),
        ([to("telemetry.vendor.example", **OLLAMA_HOST)], [("ollama-host: not allowed", "high")]),
        ([to("deb.debian.org", **HOST, process="http")], []),  # everything else may talk out
        ([to(None, **HOST, process="curl", dns_name=None)], [("raw-ip", "low")]),
        ([to(None, 123, **HOST, process="chronyd", dns_name=None)], []),  # NTP
        ([to("registry.ollama.ai", **container("tool", "busybox", **OFFLINE))],
         [("offline: not allowed", "high")]),
    ],
)  # fmt: skip
def test_ollama_talks_only_to_its_registry(
    flows: list[FlowRecord], expected: list[tuple[str, str]]
) -> None:
    assert rules("ollama.yaml", *flows) == expected


VLLM = {**container("vllm", "vllm/vllm-openai:v0.6.3"), "process": "python3"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("huggingface.co", []),
        ("cas-bridge.xethub.hf.co", []),
        ("cdn-lfs-us-1.hf.co", []),
        ("cdn-lfs.huggingface.co", []),
        ("stats.vllm.ai", [("vllm: denied destination", "high")]),
        ("models.vendor.example", [("vllm: not allowed", "high")]),
    ],
)
def test_vllm_reaches_the_hugging_face_hub_only(name: str, expected: list[tuple[str, str]]) -> None:
    assert rules("vllm.yaml", to(name, **VLLM)) == expected


def test_vllm_uploading_to_the_hub_is_still_an_upload() -> None:
    push = to("huggingface.co", **VLLM, bytes_out=60_000_000)
    assert rules("vllm.yaml", push) == [("upload", "medium")]


DIFY = {"com.docker.compose.project": "docker"}
SANDBOX = container("docker-sandbox-1", "langgenius/dify-sandbox:0.2.14",
                    **DIFY, **{"com.docker.compose.service": "sandbox"})  # fmt: skip
PROXY = container("docker-ssrf_proxy-1", "ubuntu/squid:latest",
                  **DIFY, **{"com.docker.compose.service": "ssrf_proxy"})  # fmt: skip
API = container("docker-api-1", "langgenius/dify-api:1.13.3", **DIFY)
WORKER = container("docker-worker-1", "langgenius/dify-api:1.13.3", **DIFY)
PLUGINS = container("docker-plugin_daemon-1", "langgenius/dify-plugin-daemon:0.5.3-local", **DIFY)
REDIS = container("docker-redis-1", "redis:6-alpine", **DIFY)
DB = container("docker-db_postgres-1", "postgres:15-alpine", **DIFY)
OTHER_REDIS = container("shop-redis-1", "redis:6-alpine", **{"com.docker.compose.project": "shop"})


@pytest.mark.parametrize(
    ("flows", "expected"),
    [
        ([to("pypi.org", **SANDBOX)], [("dify-sandbox: not allowed", "critical")]),
        ([to(None, **SANDBOX, dns_name=None, dst_ip="198.51.100.7")],
         [("dify-sandbox: not allowed", "critical")]),
        ([to("api.github.com", **PROXY)], [("dify-ssrf-proxy: not allowed", "high")]),
        ([to("llm.example.com", **API), to("llm.example.com", **WORKER),
          to("llm.example.com", **PLUGINS)], []),
        ([to("updates.dify.ai", **API)], [("dify-app: not allowed", "high")]),
        ([to("marketplace.dify.ai", **PLUGINS)], [("dify-app: not allowed", "high")]),
        ([to("telemetry.vendor.example", **REDIS)], [("dify-stores: not allowed", "high")]),
        ([to("telemetry.vendor.example", **DB)], [("dify-stores: not allowed", "high")]),
        ([to("telemetry.vendor.example", **OTHER_REDIS)], []),  # another project's redis
    ],
)  # fmt: skip
def test_dify_the_sandbox_never_talks_out_and_the_api_reaches_its_models(
    flows: list[FlowRecord], expected: list[tuple[str, str]]
) -> None:
    assert rules("dify.yaml", *flows) == expected


def test_dify_uploads_add_up_per_container() -> None:
    """Three flows of 40 MB to an allowed model endpoint: none over the 50 MB per flow, together
    over the 100 MB per source and hour."""
    sent = [to("llm.example.com", **API, uid=f"U{i}", first_seen=100.0 + i, last_seen=101.0 + i,
               bytes_out=40_000_000) for i in range(3)]  # fmt: skip
    assert rules("dify.yaml", *sent) == [("upload (source)", "medium")]


def raised_rules() -> set[str]:
    """Every rule the judge can raise, read from the policy package's source: the rule argument
    of each ``_alert(...)`` call, each ``rule=`` an ``Alert`` is built with, and each ``rule =
    "..."`` it is built from. A scope's name (the operator's choice) reads ``<scope>``."""
    found = set()
    for module in sorted(POLICY_CODE.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and _called(node) == "_alert":
                found.add(_text(node.args[2]))
            elif isinstance(node, ast.Call) and _called(node) == "Alert":
                found |= {_text(k.value) for k in node.keywords
                          if k.arg == "rule" and not isinstance(k.value, ast.Name)}  # fmt: skip
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "rule" for t in node.targets
            ):
                found.add(_text(node.value))
    return found


def _called(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):  # {scope.name} -> <scope>
                parts.append(f"<{ast.unparse(value.value).split('.')[0]}>")
            else:
                parts.append(_text(value))
        return "".join(parts)
    raise AssertionError(f"a rule name this test cannot read: {ast.unparse(node)}")


def test_the_rules_read_from_the_code_cover_every_detection_and_scopes() -> None:
    """A guard on raised_rules(): each detection of the policy file raises at least one rule
    named after it, and scopes raise theirs."""
    found = {r.replace("-", " ").replace("_", " ") for r in raised_rules()}
    for detection in Detections.model_fields:
        assert any(r.startswith(detection.replace("_", " ")) for r in found), detection
    assert {"<scope>: not allowed", "<scope>: denied destination"} <= found


def test_the_alert_catalogue_has_a_section_for_every_rule_and_no_other() -> None:
    documented = re.findall(r"^### `([^`]+)`$", CATALOGUE.read_text(), flags=re.MULTILINE)
    assert sorted(documented) == sorted(raised_rules())


def test_the_settings_the_catalogue_names_exist() -> None:
    named = set(re.findall(r"`detections\.(\w+)\.(\w+)`", CATALOGUE.read_text()))
    assert named
    for detection, key in sorted(named):
        field = Detections.model_fields[detection]
        model = next(a for a in typing.get_args(field.annotation) if a is not type(None))
        assert key in model.model_fields, f"detections.{detection}.{key}"
