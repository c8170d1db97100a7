"""provision.py ssh/logs/manage/psql/status: one line, no traceback, when a host cannot be reached safely.

Real ssh against a loopback port nobody listens on; the hosts' own behaviour is in tests/e2e.
"""

import json
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from stack.settings import PROJECT_ROOT

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdF4x6bX0mR3p8k1PZ1eVxqYbqkz7m8Fv1yTn9yH1aA"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def home(tmp_path):
    """A local-provider state with one db host on a closed loopback port, its key and pinned host key."""
    home = tmp_path / "home"
    (home / "ssh").mkdir(parents=True)
    key = home / "ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = free_port()
    (home / "ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {KEY_LINE}\n")
    hosts = {
        "des-db": {
            "role": "db",
            "key": None,
            "private_ip": "127.0.0.1",
            "public_ip": "127.0.0.1",
            "ssh_user": "root",
            "ssh_key": str(key),
            "ssh_port": port,
        },
        "des-backend-a": {
            "role": "backend",
            "key": "a",
            "private_ip": "127.0.0.1",
            "public_ip": "127.0.0.1",
            "ssh_user": "root",
            "ssh_key": str(key),
            "ssh_port": port,
        },
    }
    (home / "state.json").write_text(
        json.dumps({"version": 1, "provider": "local", "prefix": "des", "region": None, "hosts": hosts})
    )
    return SimpleNamespace(path=home, port=port)


def run(tmp_path, home, *args):
    (tmp_path / "config.yml").write_text("project_prefix: des\n")
    env = {
        "DEPLOY_HOME": str(getattr(home, "path", home)),
        "DEPLOY_CONFIG": str(tmp_path / "config.yml"),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "provision.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(result, text):
    assert result.returncode == 1, result
    assert result.stderr == f"error: {text}\n", result.stderr


@pytest.mark.parametrize("args", [["ssh", "db"], ["logs"], ["manage", "check"], ["psql"], ["status"]])
def test_no_state_is_one_line(tmp_path, args):
    one_line(run(tmp_path, tmp_path / "empty", *args), "no hosts recorded yet: run python provision.py first")


def test_an_unknown_host_is_one_line(tmp_path, home):
    one_line(
        run(tmp_path, home, "ssh", "des-kong"),
        "no host or role 'des-kong' in the state (hosts: des-backend-a, des-db; roles: db, backend, kong, rds)",
    )
    one_line(
        run(tmp_path, home, "logs", "db", "web"),
        "no host or role 'web' in the state (hosts: des-backend-a, des-db; roles: db, backend, kong, rds)",
    )


def test_a_host_that_does_not_answer_is_one_line(tmp_path, home):
    for args in (["ssh", "db", "--", "true"], ["psql", "-c", "select 1"], ["manage", "check"], ["logs", "backend-a"]):
        result = run(tmp_path, home, *args)
        name = "des-backend-a" if args[0] in ("manage", "logs") else "des-db"
        assert result.returncode == 1, (args, result)
        assert result.stderr == (
            f"error: {name} (root@127.0.0.1:{home.port}) does not answer (Connection refused): "
            "is it running? (python provision.py starts stopped hosts)\n"
        ), (args, result.stderr)


def test_a_missing_key_or_pinned_host_key_is_one_line_before_any_connection(tmp_path, home):
    (home.path / "ssh" / "known_hosts").write_text(f"10.9.9.9 {KEY_LINE}\n")
    one_line(
        run(tmp_path, home, "ssh", "des-db"),
        f"{home.path}/ssh/known_hosts has no host key for des-db ([127.0.0.1]:{home.port}); nothing is trusted on "
        "first use here: re-create it: python provision.py --provider local destroy --only des-db && "
        "python provision.py --provider local",
    )
    (home.path / "ssh" / "id_ed25519").unlink()
    one_line(
        run(tmp_path, home, "psql"),
        f"the SSH key {home.path}/ssh/id_ed25519 for des-db is missing: restore it (or set ssh_key_path)",
    )


def test_status_says_what_it_could_not_read_and_exits_1(tmp_path, home):
    result = run(tmp_path, home, "status")
    assert result.returncode == 1 and result.stderr == "", result
    lines = result.stdout.splitlines()
    assert (
        f"! des-db         127.0.0.1        does not answer: des-db (root@127.0.0.1:{home.port}) does not answer "
        "(Connection refused): is it running? (python provision.py starts stopped hosts)" in lines
    )
    assert "! des-backend-a  not read (host does not answer)" in lines
    assert lines[-1] == "UNHEALTHY: des-backend-a, des-db (the lines marked !; --json lists each problem)"
    data = json.loads(run(tmp_path, home, "status", "--json").stdout)
    assert data["healthy"] is False and sorted(data["hosts"]) == ["des-backend-a", "des-db"]
    assert data["hosts"]["des-db"]["reachable"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["logs", "--since", "ten"], "--since ten: expected a number and s, m, h or d (e.g. 10m)"),
        (["logs", "--lines", "0"], "--lines: expected a whole number of at least 1"),
        (["manage"], "name a management command, e.g. manage check, manage createsuperuser, manage shell"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path, home, args, message):
    result = run(tmp_path, home, *args)
    assert result.returncode == 2 and result.stderr.splitlines()[-1].endswith(message), result.stderr


def test_the_operate_commands_keep_their_own_arguments():
    from provision import split_operate

    assert split_operate(["--provider", "local", "status", "--json"]) == (["--provider", "local"], ["status", "--json"])
    assert split_operate(["psql", "-c", "select 1"]) == ([], ["psql", "-c", "select 1"])
    assert split_operate(["ssh", "db", "--", "ls", "-la"]) == ([], ["ssh", "db", "--", "ls", "-la"])
    assert split_operate(["destroy", "--only", "des-db"]) == (["destroy", "--only", "des-db"], [])
    assert split_operate(["--backup", "status", "destroy"]) == (["--backup", "status", "destroy"], [])
