"""The settings loader: defaults, the example file, and one clear line for each kind of mistake."""

import subprocess
import sys
from pathlib import Path

import pytest

from stack import settings as settings_module
from stack.errors import SettingsError
from stack.settings import PROJECT_ROOT, Settings, defaults, host_names, load_settings, settings_from
from stack.settings_hosts import HostSettings
from stack.settings_types import leaves
from tasks.backend.settings import BackendSettings
from tasks.db.settings import DbSettings
from tasks.kong.settings import KongSettings


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
    assert settings.app_setup_commands == [
        "python manage.py makemigrations --noinput",
        "python manage.py migrate --noinput",
    ]
    assert settings.allow_destructive_migrations is False
    assert (settings.db_name, settings.db_user, settings.max_connections) == ("dispatch_db", "dispatch_user", 2000)
    assert settings.manager_email is None
    assert settings.gateway.health_path == "/despachos/reporte/"
    assert settings.gateway.active.interval == 10


def test_the_example_file_loads_to_the_defaults():
    # That it is the models' current text: tests/stack/test_settings_docs.py.
    assert load_settings(PROJECT_ROOT / "config.example.yml") == defaults()


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "backends: [a, b, c]\ngateway:\n  active:\n    interval: 5\n"))
    assert settings.backends == ["a", "b", "c"]
    assert settings.gateway.active.interval == 5
    assert settings.gateway.active.timeout == defaults().gateway.active.timeout
    assert settings.region == "us-east-1"


def test_the_same_file_is_read_again_but_parsed_once_and_a_changed_one_again(tmp_path, monkeypatch):
    path = write(tmp_path, "backends: [a, b]\n")
    parsed = []
    original = settings_module._parse_yaml
    monkeypatch.setattr(settings_module, "_parse_yaml", lambda *a: parsed.append(a) or original(*a))
    first, second = load_settings(path), load_settings(path)
    assert second is first and len(parsed) == 1
    path.write_text("backends: [a, b, c]\n")
    assert load_settings(path).backends == ["a", "b", "c"] and len(parsed) == 2
    path.write_text("backends: [a, b, c\n")
    with pytest.raises(SettingsError):
        load_settings(path)  # a broken file is never answered from the last good one


def test_an_empty_file_means_all_defaults(tmp_path):
    assert load_settings(write(tmp_path, "")) == defaults()


@pytest.mark.parametrize(
    "text, message",
    [
        ("regoin: us-east-1\n", "config.yml: regoin: unknown setting"),
        ("gateway:\n  active:\n    intervall: 5\n", "config.yml: gateway/active/intervall: unknown setting"),
        (
            "max_connections: lots\n",
            "config.yml: max_connections: expected a whole number from 10 to 10000, got 'lots'",
        ),
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
        (
            "app_setup_commands: [python manage.py makemigrations]\n",
            "config.yml: app_setup_commands: item 1: 'python manage.py makemigrations' would wait for answers on a "
            "terminal the deploy does not have: add --noinput",
        ),
        ("app_setup_commands: ['python manage.py migrate', x]\n", "item 1: 'python manage.py migrate' would wait"),
        (
            "app_populate_commands: [python populate.py, ./load.sh]\n",
            "config.yml: app_populate_commands: item 2: expected 'python SCRIPT [ARGUMENTS]'",
        ),
        ("app_populate_commands: ['python -c 1']\n", "app_populate_commands: item 1: expected 'python SCRIPT"),
        ("app_populate_commands: ['python \"x.py']\n", "app_populate_commands: item 1: expected a shell command"),
        ("allow_destructive_migrations: yes please\n", "allow_destructive_migrations: expected true or false"),
        # Values that pass a loose check but open or break things (issue 10).
        # Every pattern matches the whole value: a trailing newline once passed them all and wrote a
        # broken line into pg_hba.conf.
        ('db_name: "dispatch_db\\n"\n', "config.yml: db_name: expected a PostgreSQL name, got 'dispatch_db\\n'"),
        ('gateway:\n  health_path: "/health-check/\\n"\n', "config.yml: gateway/health_path: expected a path"),
        # Control characters (NUL included) in any string setting, also inside lists.
        ('app_ref: "main\\0"\n', "config.yml: app_ref: expected no control characters, got 'main\\x00'"),
        ('app_repo: "https://example.com/a\\tb.git"\n', "config.yml: app_repo: expected no control characters"),
        (
            'app_setup_commands: ["python manage.py migrate\\rx"]\n',
            "config.yml: app_setup_commands: item 1: expected no control characters",
        ),
        ('gateway:\n  image: "kong\\x1b[2J"\n', "config.yml: gateway/image: expected no control characters"),
        # Kong's admin API is full control of the gateway: not to the whole Internet.
        ("kong_admin_cidr: 0.0.0.0/0\n", "config.yml: kong_admin_cidr: 0.0.0.0/0 would open Kong's admin API"),
        ("kong_admin_cidr: 0.0.0.0/1\n", "config.yml: kong_admin_cidr: 0.0.0.0/1 would open Kong's admin API"),
        # SSH listens on 22 on every host: Kong could not bind it, after the old container was removed.
        ("gateway:\n  proxy_port: 22\n", "config.yml: gateway/proxy_port: 22 is SSH's port on the Kong host"),
        (
            "gateway:\n  proxy_port: 80\n",
            "config.yml: gateway/proxy_port: expected a whole number from 1024 to 65535, "
            "got 80 (Kong runs unprivileged on the Kong host's network)",
        ),
        ("gateway:\n  admin_port: 22\n", "config.yml: gateway/admin_port: 22 is SSH's port on the Kong host"),
        # The local hosts' bridge: a private /24, nothing this machine itself uses.
        (
            "local_subnet: 10.77.0.0/16\n",
            "config.yml: local_subnet: expected a /24 such as 10.77.0.0/24, got 10.77.0.0/16",
        ),
        (
            "local_subnet: 127.0.0.0/24\n",
            "config.yml: local_subnet: expected a private range (inside 10.0.0.0/8, "
            "172.16.0.0/12 or 192.168.0.0/16), got 127.0.0.0/24",
        ),
        ("local_subnet: 8.8.8.0/24\n", "config.yml: local_subnet: expected a private range"),
        ("local_subnet: 169.254.1.0/24\n", "config.yml: local_subnet: expected a private range"),
    ],
)
def test_mistakes_name_the_key_path_in_one_line(tmp_path, text, message):
    with pytest.raises(SettingsError) as raised:
        load_settings(write(tmp_path, text))
    assert message in str(raised.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in str(raised.value)


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


def test_host_names_without_the_db_host():
    settings = settings_from({"project_prefix": "x", "backends": ["a"], "db_service": "rds"})
    assert host_names(settings, db_host=False) == {"x-backend-a": ("backend", "a"), "x-kong": ("kong", None)}
    assert "x-db" in host_names(settings)  # the default: every host, whatever db_service says


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


@pytest.mark.parametrize("cidr", ["203.0.113.7/32", "198.51.100.0/24", "10.0.0.0/8", "172.16.0.0/12"])
def test_a_narrow_or_private_admin_cidr_is_accepted(cidr):
    assert settings_from({"kong_admin_cidr": cidr}).kong_admin_cidr == cidr


def test_a_key_given_twice_is_refused_naming_it(tmp_path):
    with pytest.raises(SettingsError) as raised:
        load_settings(write(tmp_path, "region: us-east-1\ngateway:\n  retries: 2\n  retries: 3\n"))
    assert str(raised.value).endswith(
        "config.yml line 4: gateway/retries is given twice (the last would win silently): keep one"
    )


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "config.yml"
    path.write_bytes("project_prefix: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SettingsError) as raised:
        load_settings(path)
    assert str(raised.value) == f"{path}: not UTF-8 text (byte 0xe9 at offset 19): save it as UTF-8"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"app_ref: ma\x00in\n", "error: config.yml: control character 0x00 at character 11: remove it"),
        (b"region: us-east-1\nregion: us-west-2\n", "error: config.yml line 2: region is given twice"),
        (b"project_prefix: \xff\n", "error: config.yml: not UTF-8 text (byte 0xff at offset 16): save it as UTF-8"),
    ],
)
def test_provision_refuses_bad_bytes_in_one_line_with_exit_2(tmp_path, content, message):
    path = tmp_path / "config.yml"
    path.write_bytes(content)
    env = {"DEPLOY_CONFIG": str(path), "DEPLOY_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "provision.py", "--dry"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr.replace(str(tmp_path) + "/", ""), result.stderr
    assert "Traceback" not in result.stderr


def _with(path: str, value):
    *parents, key = path.split("/")
    values = given = {}
    for parent in parents:
        given = given.setdefault(parent, {})
    given[key] = value
    return values


@pytest.mark.parametrize("path", [path for path, field in leaves(Settings) if isinstance(field.default, str)])
def test_no_string_setting_accepts_a_trailing_newline(path):
    default = dict(leaves(Settings))[path].default
    with pytest.raises(SettingsError, match=f"^{path}: "):
        settings_from(_with(path, default + "\n"))


def test_each_setting_belongs_to_exactly_one_component():
    # Settings composes the parts by inheritance, where a key declared twice would silently win once.
    parts = [HostSettings, BackendSettings, DbSettings, KongSettings]
    keys = [key for part in parts for key in part.fields]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(Settings.fields)


@pytest.mark.parametrize(
    "values, message",
    [
        # In each section its unknown keys first, then its values in order, then how they go together.
        ({"region": 5, "regoin": "us-east-1"}, "regoin: unknown setting"),
        ({"gateway": {"retries": -1, "intervall": 5}}, "gateway/intervall: unknown setting"),
        ({"gateway": {"proxy_port": 8001}, "region": 5}, "region: expected a non-empty string"),
        (
            {"gateway": {"proxy_port": 8001, "passive": {"unhealthy_timeouts": 0}}},
            "gateway/passive/unhealthy_timeouts: expected a whole number from 1 to 255, got 0",
        ),
        ({1: "x"}, "1: unknown setting"),
        ({"gateway": {"active": []}}, "gateway/active: expected a mapping of settings, got list"),
        ({"backends": ["a", 3, "a"]}, "backends: item 2: expected a non-empty string"),
        ({"app_ref": "{value}"}, None),
    ],
)
def test_the_first_mistake_is_told_as_before(values, message):
    if message is None:
        assert settings_from(values).app_ref == "{value}"
        return
    with pytest.raises(SettingsError) as raised:
        settings_from(values)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("path", [path for path, field in leaves(Settings)])
def test_every_setting_words_its_own_refusal(path):
    with pytest.raises(SettingsError) as raised:
        settings_from(_with(path, {"not": "a value"}))
    assert str(raised.value).startswith(f"{path}: expected ")


def test_an_empty_section_means_its_defaults():
    assert settings_from({"gateway": None}) == settings_from({"gateway": {"active": None}}) == defaults()


def test_as_dict_is_plain_data_and_a_copy():
    settings = defaults()
    values = settings.as_dict()
    assert type(values["gateway"]["active"]) is dict and type(values["backends"]) is list
    values["backends"].append("c")
    values["gateway"]["active"]["interval"] = 1
    assert settings.backends == ["a", "b"] and settings.gateway.active.interval == 10
    with pytest.raises(AttributeError):
        settings.gateway.active.interval = 1


def test_kong_nodes_after_the_first_are_numbered_from_2():
    settings = settings_from({"project_prefix": "x", "backends": ["a"], "gateway": {"nodes": 3}})
    assert host_names(settings) == {
        "x-db": ("db", None),
        "x-backend-a": ("backend", "a"),
        "x-kong": ("kong", None),
        "x-kong-2": ("kong", None),
        "x-kong-3": ("kong", None),
    }


@pytest.mark.parametrize(
    ("nodes", "asked", "expected"), [(1, False, False), (1, True, True), (2, False, True), (3, True, True)]
)
def test_the_load_balancer_comes_with_two_nodes_or_when_asked(nodes, asked, expected):
    gateway = settings_from({"gateway": {"nodes": nodes, "load_balancer": asked}}).gateway
    assert gateway.uses_load_balancer is expected


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ({"db_service": "aurora"}, "db_service: expected one of host, rds, got 'aurora'"),
        (
            {"rds_instance_class": "t3.micro"},
            "rds_instance_class: expected an RDS instance class such as db.t3.micro, got 't3.micro'",
        ),
        ({"rds_storage_gb": 10}, "rds_storage_gb: expected a whole number from 20 to 65536, got 10"),
        ({"rds_multi_az": "yes"}, "rds_multi_az: expected true or false, got 'yes'"),
        ({"rds_engine_version": "16"}, "rds_engine_version: expected a whole number from 13 to 17, got '16'"),
        ({"gateway": {"nodes": 0}}, "gateway/nodes: expected a whole number from 1 to 9, got 0"),
        (
            {"gateway": {"rate_limit_redis": "redis"}},
            "gateway/rate_limit_redis: expected host:port of a Redis, got 'redis'",
        ),
    ],
)
def test_the_gateway_tier_and_rds_settings_refuse_bad_values_in_one_line(given, line):
    with pytest.raises(SettingsError) as refused:
        settings_from(given)
    assert str(refused.value) == line
