"""provision.py's own decisions (the providers are tested in tests/stack/aws and tests/stack/local)."""

import subprocess
import sys

from stack.settings import PROJECT_ROOT
from stack.state import Host, State, save_state


def run(tmp_path, *args):
    env = {
        "DEPLOY_HOME": str(tmp_path / "home"),
        "DEPLOY_CONFIG": str(tmp_path / "config.yml"),
        "PATH": "/usr/bin:/bin",
    }
    (tmp_path / "config.yml").write_text("project_prefix: des\n")
    return subprocess.run(
        [sys.executable, "provision.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_another_provider_than_the_recorded_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    save_state(State("local", "des", hosts={"des-db": Host("db", "10.77.0.10", "10.77.0.10", "root")}))
    result = run(tmp_path, "--provider", "aws", "--dry")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the state records local hosts; run python provision.py --provider local destroy first, "
        "or set DEPLOY_HOME to another folder"
    )


def test_outputs_without_state_says_to_provision_first(tmp_path):
    result = run(tmp_path, "outputs")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no hosts recorded yet: run python provision.py first"


def test_an_unknown_command_is_refused_by_argparse(tmp_path):
    result = run(tmp_path, "destory")
    assert result.returncode == 2
    assert "invalid choice: 'destory'" in result.stderr


def test_only_with_plan_is_refused_rather_than_ignored(tmp_path):
    result = run(tmp_path, "plan", "--only", "des-db")
    assert result.returncode == 2
    assert "--only and --backup go with destroy; apply and plan always cover every host" in result.stderr


def test_every_registered_provider_implements_the_contract():
    from stack.provider import Provider
    from stack.providers import PROVIDERS, provider_named

    assert sorted(PROVIDERS) == ["aws", "local"]
    for name in PROVIDERS:
        provider = provider_named(name)
        assert isinstance(provider, Provider) and provider.name == name


def test_outputs_of_local_hosts_never_import_boto3(tmp_path, monkeypatch):
    # boto3 and botocore cost about a second: only commands that call AWS may pay it.
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    save_state(State("local", "des", hosts={"des-db": Host("db", "10.77.0.10", "10.77.0.10", "root")}))
    env = {
        "DEPLOY_HOME": str(tmp_path / "home"),
        "DEPLOY_CONFIG": str(tmp_path / "config.yml"),
        "PATH": "/usr/bin:/bin",
    }
    (tmp_path / "config.yml").write_text("project_prefix: des\n")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "provision.py", "outputs"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "des-db  private 10.77.0.10" in result.stdout
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")
    ]
    assert "stack.providers" in imported
    assert not [name for name in imported if name.startswith(("boto", "stack.aws.clients"))]


def test_outputs_for_another_provider_than_the_recorded_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    save_state(State("local", "des", hosts={"des-db": Host("db", "10.77.0.10", "10.77.0.10", "root")}))
    result = run(tmp_path, "--provider", "aws", "outputs")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: the state records local hosts;")
