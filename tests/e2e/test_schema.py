"""The JSON Schema of policy and test files (`toolgate schema`): the committed copies under
docs/schema/ are what the binary prints; every example and fixture policy validates; and the
schema and the loader agree on invalid files — both refuse each one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from toolgate_harness import E2E_DIR, REPO_ROOT, Gateway

pytestmark = pytest.mark.gateway

SCHEMAS = {
    None: "policy.json",
    "intercept": "policy-intercept.json",
    "policylayer": "policy-policylayer.json",
    "test": "policy-test.json",
}
INVALID = E2E_DIR / "fixtures" / "invalid-policies"
SHARED_POLICIES = REPO_ROOT.parent / "shared" / "compat" / "intercept-policies"


def printed_schema(gateway: Gateway, form: str | None) -> dict:
    done = gateway.run_cli("schema", *(["--form", form] if form else []))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def read(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def errors(validator: Draft202012Validator, document: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def is_gateway_config(path: Path) -> bool:
    document = read(path)
    return isinstance(document, dict) and "servers" in document


def policies() -> list[Path]:
    found = [
        p
        for p in (REPO_ROOT / "examples").rglob("*.yaml")
        if not p.name.endswith(".test.yaml") and not is_gateway_config(p)
    ]
    found += sorted((REPO_ROOT / "crates" / "toolgate-policy" / "tests" / "fixtures").iterdir())
    if SHARED_POLICIES.is_dir():
        found += sorted(SHARED_POLICIES.glob("*.yaml"))
    return found


@pytest.mark.parametrize("form", list(SCHEMAS))
def test_the_committed_schemas_are_what_the_binary_prints(gateway: Gateway, form: str | None) -> None:
    committed = json.loads((REPO_ROOT / "docs" / "schema" / SCHEMAS[form]).read_text())
    assert printed_schema(gateway, form) == committed, "regenerate docs/schema (see docs/POLICY.md)"
    Draft202012Validator.check_schema(committed)


def test_every_example_and_fixture_policy_validates(gateway: Gateway) -> None:
    validator = Draft202012Validator(printed_schema(gateway, None))
    found = policies()
    assert len(found) >= 5
    for path in found:
        assert gateway.run_cli("validate", "-c", str(path)).returncode == 0, path
        assert errors(validator, read(path)) == [], path


def test_every_example_test_file_validates(gateway: Gateway) -> None:
    validator = Draft202012Validator(printed_schema(gateway, "test"))
    found = sorted((REPO_ROOT / "examples").rglob("*.test.yaml"))
    assert found
    for path in found:
        assert errors(validator, read(path)) == [], path


def test_the_schema_and_the_loader_refuse_the_same_invalid_files(gateway: Gateway) -> None:
    validator = Draft202012Validator(printed_schema(gateway, None))
    found = sorted(INVALID.iterdir())
    assert len(found) >= 10
    for path in found:
        loaded = gateway.run_cli("validate", "-c", str(path))
        assert loaded.returncode == 1, f"the loader accepts {path.name}"
        assert not validator.is_valid(read(path)), f"the schema accepts {path.name}"


def test_every_example_gateway_config_validates(gateway: Gateway) -> None:
    found = [p for p in (REPO_ROOT / "examples").rglob("*.yaml") if is_gateway_config(p)]
    assert found
    for path in found:
        done = gateway.run_cli("validate", "-c", str(path))
        assert done.returncode == 0, (path, done.stdout, done.stderr)
