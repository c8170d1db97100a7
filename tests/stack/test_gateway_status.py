"""provision.py status: the report's text, and one-line errors when there is nothing to ask."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from stack.gateway_status import format_status

ROOT = Path(__file__).resolve().parents[2]

HEALTH = {"data": [
    {"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHY"},
    {"target": "10.0.1.12:8080", "weight": 100, "health": "UNHEALTHY"},
], "next": None}
SERVICES = {"data": [{"name": "backend-service", "protocol": "http", "host": "backend-cluster", "retries": 5,
                      "connect_timeout": 60000, "read_timeout": 60000, "write_timeout": 60000}]}
PLUGINS = {"data": [{"name": "rate-limiting", "enabled": True}, {"name": "correlation-id", "enabled": True}]}


def test_report_lists_each_target_the_service_and_the_plugins():
    lines, healthy = format_status("des-kong", HEALTH, SERVICES, PLUGINS)
    assert lines == [
        "Kong on des-kong: upstream backend-cluster",
        "  10.0.1.11:8080  HEALTHY  (weight 100)",
        "  10.0.1.12:8080  UNHEALTHY  (weight 100)",
        "service backend-service: http://backend-cluster, retries 5, timeouts connect/read/write 60000/60000/60000 ms",
        "plugins: correlation-id, rate-limiting",
    ]
    assert healthy is False


def test_all_healthy_and_disabled_plugins():
    health = {"data": [{"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHY"}]}
    lines, healthy = format_status("k", health, {"data": []}, {"data": [{"name": "rate-limiting", "enabled": False}]})
    assert healthy is True
    assert lines[-1] == "plugins: rate-limiting (disabled)"


def test_checks_off_or_no_targets_is_not_healthy():
    off = {"data": [{"target": "10.0.1.11:8080", "weight": 100, "health": "HEALTHCHECKS_OFF"}]}
    assert format_status("k", off, SERVICES, PLUGINS)[1] is False
    lines, healthy = format_status("k", {"data": []}, SERVICES, PLUGINS)
    assert healthy is False and lines[1] == "  (no targets: add backends and deploy)"


def status(home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEPLOY_HOME=str(home), DEPLOY_CONFIG="")
    env.pop("DEPLOY_CONFIG")
    return subprocess.run([sys.executable, "provision.py", "status"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_no_state_is_one_line(tmp_path):
    result = status(tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: no hosts recorded yet: run python provision.py first\n"


def test_unreachable_kong_host_is_one_line(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = {"version": 1, "provider": "local", "prefix": "des", "region": None, "hosts": {
        "des-kong": {"role": "kong", "key": None, "private_ip": "127.0.0.1", "public_ip": "127.0.0.1",
                     "ssh_user": "root", "ssh_port": port, "ssh_key": str(tmp_path / "no-such-key")}}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    result = status(tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot reach des-kong over SSH at root@127.0.0.1:{port} (")
