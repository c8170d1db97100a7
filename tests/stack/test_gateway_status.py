"""provision.py status: the report's text, and one-line errors when there is nothing to ask."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paramiko
import pytest

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


@pytest.fixture
def ssh_server():
    """A real SSH server on loopback (paramiko's, no login possible): (port, its host key)."""
    host_key = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    host_key = host_key or paramiko.RSAKey.generate(2048)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        transport = paramiko.Transport(connection)
        transport.add_server_key(host_key)
        try:
            transport.start_server(server=paramiko.ServerInterface())
            transport.join(10)
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], host_key
    listener.close()
    thread.join(5)


def _kong_at(home: Path, port: int) -> None:
    home.mkdir(exist_ok=True)
    state = {"version": 1, "provider": "local", "prefix": "des", "region": None, "hosts": {
        "des-kong": {"role": "kong", "key": None, "private_ip": "127.0.0.1", "public_ip": "127.0.0.1",
                     "ssh_user": "root", "ssh_port": port, "ssh_key": str(home / "no-such-key")}}}
    (home / "state.json").write_text(json.dumps(state))


def test_a_changed_host_key_names_the_projects_known_hosts_file(tmp_path, ssh_server):
    port, _ = ssh_server
    _kong_at(tmp_path, port)
    (tmp_path / "ssh").mkdir()
    other = paramiko.RSAKey.generate(2048)  # what the host had before it was re-created
    (tmp_path / "ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} ssh-rsa {other.get_base64()}\n")
    result = status(tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: the SSH host key of des-kong ([127.0.0.1]:{port}) is not the one in {tmp_path}/ssh/known_hosts: "
        f"if the host was re-created, remove the old key with ssh-keygen -R '[127.0.0.1]:{port}' -f "
        f"{tmp_path}/ssh/known_hosts and run the deploy (it records the new key)\n")


def test_an_unknown_host_key_is_refused(tmp_path, ssh_server):
    port, _ = ssh_server
    _kong_at(tmp_path, port)
    result = status(tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: des-kong ([127.0.0.1]:{port}) has no host key in {tmp_path}/ssh/known_hosts: run the deploy "
        "first (pyinfra inventory.py deploy.py records it)\n")
