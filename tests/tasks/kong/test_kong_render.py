"""kong.yml and the kong container spec, rendered without a host, checked value by value."""

import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stack.settings import settings_from
from tasks.kong.commands import (
    checked,
    docker_run_argv,
    listen_ports,
    parse_in_new_container_argv,
    ports_free_command,
    pull_command,
)
from tasks.kong.render import container_spec, render_kong_yml, spec_hash

FOUR = ["10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.14"]


def parsed(settings, ips):
    return yaml.safe_load(render_kong_yml(settings, ips))


def expected(ips):
    """The whole file for the default settings, as data."""
    return {
        "_format_version": "2.1",
        "upstreams": [
            {
                "name": "backend-cluster",
                "algorithm": "round-robin",
                "healthchecks": {
                    "active": {
                        "type": "http",
                        "http_path": "/despachos/reporte/",
                        "timeout": 5,
                        "concurrency": 10,
                        "healthy": {"interval": 10, "successes": 2, "http_statuses": [200, 302]},
                        "unhealthy": {"interval": 10, "http_failures": 3, "timeouts": 3, "tcp_failures": 3},
                    },
                    "passive": {
                        "type": "http",
                        "healthy": {"successes": 5},
                        "unhealthy": {"http_failures": 5, "timeouts": 2, "tcp_failures": 2},
                    },
                },
                "targets": [{"target": f"{ip}:8080", "weight": 100} for ip in ips],
            }
        ],
        "services": [
            {
                "name": "backend-service",
                "protocol": "http",
                "host": "backend-cluster",
                "retries": 5,
                "connect_timeout": 60000,
                "read_timeout": 60000,
                "write_timeout": 60000,
                "routes": [
                    {
                        "name": "backend-route",
                        "paths": ["/"],
                        "strip_path": False,
                        "plugins": [
                            {"name": "rate-limiting", "config": {"minute": 100, "limit_by": "ip", "policy": "local"}}
                        ],
                    },
                    {
                        "name": "gateway-health",
                        "paths": ["/gateway-health"],
                        "strip_path": False,
                        "plugins": [{"name": "request-termination", "config": {"status_code": 200, "message": "ok"}}],
                    },
                ],
            }
        ],
        "plugins": [
            {
                "name": "correlation-id",
                "config": {"header_name": "X-Kong-Request-ID", "generator": "uuid#counter", "echo_downstream": True},
            },
        ],
    }


@pytest.mark.parametrize("ips", [FOUR[:1], FOUR[:2], FOUR], ids=["1 backend", "2 backends", "4 backends"])
def test_every_value_for_1_2_and_4_backends(ips):
    assert parsed(settings_from({}), ips) == expected(ips)


def test_targets_follow_the_given_order_and_app_port():
    config = parsed(settings_from({"app_port": 9090}), ["10.0.1.12", "10.0.1.11"])
    assert config["upstreams"][0]["targets"] == [
        {"target": "10.0.1.12:9090", "weight": 100},
        {"target": "10.0.1.11:9090", "weight": 100},
    ]


def test_no_backends_renders_an_empty_target_list():
    assert parsed(settings_from({}), [])["upstreams"][0]["targets"] == []


def flatten(value, path=""):
    """{"upstreams/0/healthchecks/active/timeout": 5, ...}: every leaf with its path."""
    if isinstance(value, dict):
        return {key: leaf for name, item in value.items() for key, leaf in flatten(item, f"{path}/{name}").items()}
    if isinstance(value, list) and value and all(isinstance(item, (dict, list)) for item in value):
        return {key: leaf for index, item in enumerate(value) for key, leaf in flatten(item, f"{path}/{index}").items()}
    return {path: value}


UPSTREAM = "/upstreams/0"
ACTIVE = f"{UPSTREAM}/healthchecks/active"
PASSIVE = f"{UPSTREAM}/healthchecks/passive"
SERVICE = "/services/0"
RATE_LIMIT = f"{SERVICE}/routes/0/plugins/0/config/minute"
ONE_SETTING_CHANGES = [
    (
        {"app_port": 9000},
        {f"{UPSTREAM}/targets/0/target": "10.0.1.11:9000", f"{UPSTREAM}/targets/1/target": "10.0.1.12:9000"},
    ),
    ({"gateway": {"health_path": "/health/"}}, {f"{ACTIVE}/http_path": "/health/"}),
    ({"gateway": {"algorithm": "least-connections"}}, {f"{UPSTREAM}/algorithm": "least-connections"}),
    ({"gateway": {"target_weight": 7}}, {f"{UPSTREAM}/targets/0/weight": 7, f"{UPSTREAM}/targets/1/weight": 7}),
    ({"gateway": {"retries": 2}}, {f"{SERVICE}/retries": 2}),
    ({"gateway": {"connect_timeout_ms": 1500}}, {f"{SERVICE}/connect_timeout": 1500}),
    ({"gateway": {"read_timeout_ms": 2500}}, {f"{SERVICE}/read_timeout": 2500}),
    ({"gateway": {"write_timeout_ms": 3500}}, {f"{SERVICE}/write_timeout": 3500}),
    (
        {"gateway": {"route_paths": ["/despachos", "/pedidos"]}},
        {f"{SERVICE}/routes/0/paths": ["/despachos", "/pedidos"]},
    ),
    ({"gateway": {"rate_limit_per_minute": 60}}, {RATE_LIMIT: 60}),
    # Each node counts on its own (Kong's local policy): its share of the limit, rounded up.
    ({"gateway": {"nodes": 2}}, {RATE_LIMIT: 50}),
    ({"gateway": {"nodes": 3}}, {RATE_LIMIT: 34}),
    ({"gateway": {"node_health_path": "/ready"}}, {f"{SERVICE}/routes/1/paths": ["/ready"]}),
    ({"gateway": {"request_id_header": "X-Request-ID"}}, {"/plugins/0/config/header_name": "X-Request-ID"}),
    ({"gateway": {"active": {"interval": 30}}}, {f"{ACTIVE}/healthy/interval": 30}),
    ({"gateway": {"active": {"timeout": 2}}}, {f"{ACTIVE}/timeout": 2}),
    ({"gateway": {"active": {"concurrency": 3}}}, {f"{ACTIVE}/concurrency": 3}),
    ({"gateway": {"active": {"healthy_successes": 4}}}, {f"{ACTIVE}/healthy/successes": 4}),
    ({"gateway": {"active": {"healthy_statuses": [200]}}}, {f"{ACTIVE}/healthy/http_statuses": [200]}),
    ({"gateway": {"active": {"unhealthy_interval": 20}}}, {f"{ACTIVE}/unhealthy/interval": 20}),
    ({"gateway": {"active": {"unhealthy_http_failures": 6}}}, {f"{ACTIVE}/unhealthy/http_failures": 6}),
    ({"gateway": {"active": {"unhealthy_timeouts": 7}}}, {f"{ACTIVE}/unhealthy/timeouts": 7}),
    ({"gateway": {"active": {"unhealthy_tcp_failures": 8}}}, {f"{ACTIVE}/unhealthy/tcp_failures": 8}),
    ({"gateway": {"passive": {"healthy_successes": 9}}}, {f"{PASSIVE}/healthy/successes": 9}),
    ({"gateway": {"passive": {"unhealthy_http_failures": 11}}}, {f"{PASSIVE}/unhealthy/http_failures": 11}),
    ({"gateway": {"passive": {"unhealthy_timeouts": 12}}}, {f"{PASSIVE}/unhealthy/timeouts": 12}),
    ({"gateway": {"passive": {"unhealthy_tcp_failures": 13}}}, {f"{PASSIVE}/unhealthy/tcp_failures": 13}),
]


@pytest.mark.parametrize("override, changes", ONE_SETTING_CHANGES, ids=lambda value: str(value)[:60])
def test_a_changed_setting_changes_exactly_its_values(override, changes):
    before = flatten(parsed(settings_from({}), FOUR[:2]))
    after = flatten(parsed(settings_from(override), FOUR[:2]))
    assert set(after) == set(before)
    assert {path: value for path, value in after.items() if before[path] != value} == changes


def test_every_gateway_setting_that_shapes_kong_yml_is_covered_above():
    covered = {key for override, _ in ONE_SETTING_CHANGES for key in _keys(override)}
    container_only = {"gateway/image", "gateway/proxy_port", "gateway/admin_port"}
    # The load balancer's (provision.py), not kong.yml's.
    load_balancer_only = {"gateway/load_balancer", "gateway/deregistration_delay"}
    # Adds keys rather than changing values: test_a_shared_redis_counts_the_whole_limit_on_every_node.
    covered |= {"gateway/rate_limit_redis"}
    every = set(_keys(settings_from({}).as_dict()["gateway"], "gateway"))
    assert every - container_only - load_balancer_only <= covered


@pytest.mark.parametrize("nodes, limit, per_node", [(1, 100, 100), (2, 100, 50), (3, 100, 34), (3, 1, 1), (9, 60, 7)])
def test_each_node_allows_its_share_of_the_limit_rounded_up(nodes, limit, per_node):
    config = parsed(settings_from({"gateway": {"nodes": nodes, "rate_limit_per_minute": limit}}), FOUR[:2])
    assert flatten(config)[RATE_LIMIT] == per_node


def test_a_shared_redis_counts_the_whole_limit_on_every_node():
    settings = settings_from({"gateway": {"nodes": 3, "rate_limit_redis": "10.0.1.50:6380"}})
    [backends, health] = parsed(settings, FOUR[:2])["services"][0]["routes"]
    assert backends["plugins"] == [
        {
            "name": "rate-limiting",
            "config": {
                "minute": 100,
                "limit_by": "ip",
                "policy": "redis",
                "redis_host": "10.0.1.50",
                "redis_port": 6380,
            },
        }
    ]
    assert health["plugins"][0]["name"] == "request-termination"  # never counted


def test_the_health_route_is_the_nodes_own_and_never_rate_limited():
    [backends, health] = parsed(settings_from({}), FOUR[:2])["services"][0]["routes"]
    assert [plugin["name"] for plugin in backends["plugins"]] == ["rate-limiting"]
    assert [plugin["name"] for plugin in health["plugins"]] == ["request-termination"]
    assert health["paths"] == ["/gateway-health"]


def _keys(value, prefix=""):
    for name, item in value.items():
        path = f"{prefix}/{name}" if prefix else name
        if isinstance(item, dict):
            yield from _keys(item, path)
        else:
            yield path


# --- the container -----------------------------------------------------------------------------


def test_container_spec_defaults():
    assert container_spec(settings_from({})) == {
        "name": "kong",
        "image": "kong:2.7.2-alpine",
        "restart": "unless-stopped",
        "network": "host",
        "env": {
            "KONG_DATABASE": "off",
            "KONG_DECLARATIVE_CONFIG": "/kong/declarative/kong.yml",
            "KONG_PROXY_LISTEN": "0.0.0.0:8000",
            "KONG_ADMIN_LISTEN": "127.0.0.1:8001",
            "KONG_PROXY_ACCESS_LOG": "/dev/stdout",
            "KONG_ADMIN_ACCESS_LOG": "/dev/stdout",
            "KONG_PROXY_ERROR_LOG": "/dev/stderr",
            "KONG_ADMIN_ERROR_LOG": "/dev/stderr",
        },
        "mounts": ["/opt/kong/declarative:/kong/declarative:ro"],
        "log_driver": "json-file",
        "log_options": {"max-size": "10m", "max-file": "5"},
    }


def test_admin_cidr_opens_the_admin_port_on_every_interface():
    spec = container_spec(
        settings_from({"kong_admin_cidr": "203.0.113.7/32", "gateway": {"admin_port": 9001, "proxy_port": 8080}})
    )
    assert (spec["env"]["KONG_PROXY_LISTEN"], spec["env"]["KONG_ADMIN_LISTEN"]) == ("0.0.0.0:8080", "0.0.0.0:9001")
    assert listen_ports(spec) == {8080: "gateway.proxy_port", 9001: "gateway.admin_port"}


def test_docker_run_argv_is_exact():
    spec = container_spec(settings_from({}))
    assert docker_run_argv(spec) == [
        "docker",
        "run",
        "--detach",
        "--name",
        "kong",
        "--restart",
        "unless-stopped",
        "--network",
        "host",
        "--label",
        f"stack.kong.spec={spec_hash(spec)}",
        "--env",
        "KONG_ADMIN_ACCESS_LOG=/dev/stdout",
        "--env",
        "KONG_ADMIN_ERROR_LOG=/dev/stderr",
        "--env",
        "KONG_ADMIN_LISTEN=127.0.0.1:8001",
        "--env",
        "KONG_DATABASE=off",
        "--env",
        "KONG_DECLARATIVE_CONFIG=/kong/declarative/kong.yml",
        "--env",
        "KONG_PROXY_ACCESS_LOG=/dev/stdout",
        "--env",
        "KONG_PROXY_ERROR_LOG=/dev/stderr",
        "--env",
        "KONG_PROXY_LISTEN=0.0.0.0:8000",
        "--volume",
        "/opt/kong/declarative:/kong/declarative:ro",
        # Docker's json-file log would otherwise grow until the disk is full (every request is logged).
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-file=5",
        "--log-opt",
        "max-size=10m",
        "kong:2.7.2-alpine",
    ]
    assert parse_in_new_container_argv(spec) == [
        "docker",
        "run",
        "--rm",
        "--env",
        "KONG_DATABASE=off",
        "--volume",
        "/opt/kong/declarative:/kong/declarative:ro",
        "kong:2.7.2-alpine",
        "kong",
        "config",
        "parse",
        "/kong/declarative/kong.next.yml",
    ]


def test_spec_hash_changes_with_the_spec_only():
    base = spec_hash(container_spec(settings_from({})))
    assert spec_hash(container_spec(settings_from({}))) == base
    assert spec_hash(container_spec(settings_from({"backends": ["a", "b", "c"]}))) == base  # config, not spec
    for override in (
        {"gateway": {"image": "kong:2.8.1-alpine"}},
        {"gateway": {"proxy_port": 8080}},
        {"gateway": {"admin_port": 9001}},
        {"kong_admin_cidr": "203.0.113.7/32"},
    ):
        assert spec_hash(container_spec(settings_from(override))) != base, override


# --- the shell snippets, run for real against a stand-in `docker` --------------------------------


def fake_docker(tmp_path, script):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\n" + script)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


def test_a_failed_pull_is_one_clear_line(tmp_path):
    env = fake_docker(
        tmp_path,
        (
            'echo "Using default tag: latest"\n'
            'echo \'Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: '
            "lookup registry-1.docker.io: no such host' >&2\nexit 1\n"
        ),
    )
    result = subprocess.run(["sh", "-c", pull_command("kong:2.7.2-alpine")], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        'cannot pull kong:2.7.2-alpine: Error response from daemon: Get "https://registry-1.docker.io/v2/": '
        "dial tcp: lookup registry-1.docker.io: no such host; check the host's internet access or set "
        "gateway.image\n"
    )


def test_a_successful_pull_is_silent(tmp_path):
    env = fake_docker(tmp_path, 'echo "docker.io/library/kong:2.7.2-alpine"\n')
    result = subprocess.run(["sh", "-c", pull_command("kong:2.7.2-alpine")], env=env, capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_rejected_config_fails_with_kongs_message(tmp_path):
    env = fake_docker(tmp_path, "echo \"Error: Failed parsing: in 'upstreams': unknown field\" >&2\nexit 1\n")
    command = checked(["docker", "exec", "kong", "kong", "config", "parse", "/x.yml"], "Kong rejected /x.yml:")
    result = subprocess.run(["sh", "-c", command + " && echo applied"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "Kong rejected /x.yml:\nError: Failed parsing: in 'upstreams': unknown field\n"


def test_pull_command_quotes_the_image():
    assert "docker pull --quiet 'kong:2.7.2-alpine;rm -rf x'" in pull_command("kong:2.7.2-alpine;rm -rf x")
    assert shlex.split(pull_command("kong:2.7.2-alpine"))  # well-formed shell words


@pytest.fixture
def held_port():
    """A port held by another program (python3 listening on 127.0.0.1): (port, pid)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
            "s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield int(holder.stdout.readline()), holder.pid
    finally:
        holder.kill()
        holder.wait()


def _check_ports(tmp_path, ports, docker_script):
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    folder.mkdir()
    return subprocess.run(
        ["sh", "-c", ports_free_command(ports)],
        env=fake_docker(folder, docker_script),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_port_held_by_another_program_stops_before_the_container_is_touched(tmp_path, held_port):
    port, pid = held_port
    result = _check_ports(tmp_path, {port: "gateway.proxy_port"}, "exit 1\n")  # no kong container
    assert result.returncode == 1
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    assert result.stderr == (
        f"port {port} is taken on the Kong host by {comm} (pid {pid}): choose another "
        "gateway.proxy_port; the running Kong container was left as it is\n"
    )


def test_a_free_port_or_one_held_by_the_serving_container_passes(tmp_path, held_port):
    port, pid = held_port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert _check_ports(tmp_path, {free: "gateway.admin_port"}, "exit 1\n").returncode == 0
    # Published by the old (bridge-network) container: Docker's proxy holds it.
    published = f'[ "$1" = port ] && echo "8000/tcp -> 0.0.0.0:{port}"; exit 0\n'
    assert _check_ports(tmp_path, {port: "gateway.proxy_port"}, published).returncode == 0
    # On the host network: the holder is in the serving container's pid namespace (here: ours).
    same_namespace = f'[ "$1" = inspect ] && echo {pid}; exit 0\n'
    assert _check_ports(tmp_path, {port: "gateway.proxy_port"}, same_namespace).returncode == 0
