"""The settings loader: defaults, the example file, and one clear line for each kind of mistake."""

import subprocess
import sys
from pathlib import Path

import pytest

from stack.errors import SettingsError
from stack.settings import PROJECT_ROOT, SCHEMA, defaults, host_names, load_settings, settings_from


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_defaults_are_the_seed_values():
    settings = defaults()
    assert settings.region == "us-east-1"
    assert settings.project_prefix == "des"
    assert settings.instance_type == "t2.nano"
    assert settings.kong_instance_type == "t2.small"
    assert settings.backends == ["a", "b"]
    assert settings.app_repo == "https://github.com/mr-torres-d-ojedas/Sprint2.git"
    # A commit, not a branch: Sprint2's newest commit where migrate, populate and the report work.
    assert settings.app_ref == "b0abfcb9949fc9fd2eb30d50c22d591d4177dfa0"
    assert settings.app_setup_commands == ["python manage.py makemigrations --noinput",
                                           "python manage.py migrate --noinput"]
    assert settings.allow_destructive_migrations is False
    assert (settings.db_name, settings.db_user, settings.max_connections) == ("dispatch_db", "dispatch_user", 2000)
    assert settings.manager_email is None
    assert settings.gateway.health_path == "/despachos/reporte/"
    assert settings.gateway.active.interval == 10


def _leaves(schema, prefix=""):
    for key, spec in schema.items():
        if isinstance(spec, dict):
            yield from _leaves(spec, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", spec


def test_the_example_file_documents_every_setting_with_its_default():
    example = PROJECT_ROOT / "config.example.yml"
    assert load_settings(example) == defaults()
    text = example.read_text()
    lines = text.splitlines()
    for path, spec in _leaves(SCHEMA):
        key = path.rsplit("/", 1)[-1]
        documented = [i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:")]
        assert documented, f"{path} is missing from config.example.yml"
        assert any(lines[i - 1].strip() == f"# {spec.doc}" for i in documented), f"{path}: comment out of step"


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "backends: [a, b, c]\ngateway:\n  active:\n    interval: 5\n"))
    assert settings.backends == ["a", "b", "c"]
    assert settings.gateway.active.interval == 5
    assert settings.gateway.active.timeout == defaults().gateway.active.timeout
    assert settings.region == "us-east-1"


def test_an_empty_file_means_all_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == defaults()


@pytest.mark.parametrize(
    "text, message",
    [
        ("regoin: us-east-1\n", "config.yml: regoin: unknown setting"),
        ("gateway:\n  active:\n    intervall: 5\n", "config.yml: gateway/active/intervall: unknown setting"),
        ("max_connections: lots\n", "config.yml: max_connections: expected a whole number from 10 to 10000, got 'lots'"),
        ("max_connections: true\n", "config.yml: max_connections: expected a whole number"),
        ("project_prefix: My_Project\n", "config.yml: project_prefix: expected lower-case letters"),
        ("backends: []\n", "config.yml: backends: expected a non-empty list"),
        ("backends: [a, b, a]\n", "config.yml: backends: expected no duplicates, 'a' appears twice"),
        ("backends: [a, B]\n", "config.yml: backends: item 2: expected 1-10 lower-case letters or digits"),
        ("admin_cidr: 10.0.0.1/8\n", "config.yml: admin_cidr: expected an IPv4 CIDR"),
        ("gateway: 5\n", "config.yml: gateway: expected a mapping of settings, got int"),
        ("gateway:\n  algorithm: random\n", "config.yml: gateway/algorithm: expected one of round-robin"),
        ("- a\n- b\n", "config.yml: the top level: expected a mapping of settings, got list"),
        ("region: [unclosed\n", "config.yml line 2: not valid YAML"),
        ("gateway:\n  route_paths: [/a//b]\n", "config.yml: gateway/route_paths: item 1: expected a path"),
        ("gateway:\n  health_path: //x\n", "config.yml: gateway/health_path: expected a path"),
        ("gateway:\n  proxy_port: 8001\n", "config.yml: gateway/admin_port: expected a port other than"),
        ("app_setup_commands: [python manage.py makemigrations]\n",
         "config.yml: app_setup_commands: item 1: 'python manage.py makemigrations' would wait for answers on a "
         "terminal the deploy does not have: add --noinput"),
        ("app_setup_commands: ['python manage.py migrate', x]\n", "item 1: 'python manage.py migrate' would wait"),
        ("app_populate_commands: [python populate.py, ./load.sh]\n",
         "config.yml: app_populate_commands: item 2: expected 'python SCRIPT [ARGUMENTS]'"),
        ("app_populate_commands: ['python -c 1']\n", "app_populate_commands: item 1: expected 'python SCRIPT"),
        ("app_populate_commands: ['python \"x.py']\n", "app_populate_commands: item 1: expected a shell command"),
        ("allow_destructive_migrations: yes please\n", "allow_destructive_migrations: expected true or false"),
    ],
)
def test_mistakes_name_the_key_path(tmp_path, text, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(write(tmp_path, text))
    assert message in str(raised.value).replace(str(tmp_path) + "/", "")


def test_deploy_config_names_another_file_and_it_must_exist(tmp_path, monkeypatch):
    path = write(tmp_path, "project_prefix: other\n")
    monkeypatch.setenv("DEPLOY_CONFIG", str(path))
    assert load_settings().project_prefix == "other"
    monkeypatch.setenv("DEPLOY_CONFIG", str(tmp_path / "missing.yml"))
    with pytest.raises(SettingsError, match="settings file not found"):
        load_settings()


def test_settings_are_read_only():
    with pytest.raises(AttributeError):
        defaults().region = "eu-west-1"


def test_host_names_follow_the_design():
    settings = settings_from({"project_prefix": "x", "backends": ["a", "b", "c"]})
    assert host_names(settings) == {
        "x-db": ("db", None),
        "x-backend-a": ("backend", "a"),
        "x-backend-b": ("backend", "b"),
        "x-backend-c": ("backend", "c"),
        "x-kong": ("kong", None),
    }


@pytest.mark.parametrize("script", ["provision.py", "inventory.py"])
def test_scripts_refuse_a_bad_file_with_one_line_and_exit_2(tmp_path, script):
    path = write(tmp_path, "instance_type: 3\n")
    if script == "provision.py":
        command = [sys.executable, "provision.py", "--dry"]
    else:
        command = [str(Path(sys.executable).parent / "pyinfra"), "inventory.py", "deploy.py", "--dry"]
    env = {"DEPLOY_CONFIG": str(path), "DEPLOY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: config.yml: instance_type: expected a non-empty string"]
    assert "Traceback" not in result.stderr
