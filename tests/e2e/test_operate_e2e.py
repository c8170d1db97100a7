"""provision.py ssh, logs, manage, psql and status against real deployed hosts (systemd-nspawn).

Kong's image cannot be pulled here, so the Kong host has Docker but no `kong` container: status
must say so (marked lines, exit 1) while every backend and the database read healthy; the
stand-in container's view is checked in test_kong_e2e.py.
"""

import json
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tasks.kong.render import CONFIG as KONG_CONFIG
from tests.e2e.local_platform import PYTHON, ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hosts(platform):
    platform.ensure_deployed()
    return platform


def no_traceback(result, host_lines: bool = False):
    """provision.py printed no traceback of its own. `host_lines`: stdout carries the hosts' log lines,
    where the app's own tracebacks belong (a request that failed while an earlier test stopped the
    database); provision.py's own would be on stderr."""
    assert "Traceback" not in result.stderr + ("" if host_lines else result.stdout), result.stderr


def test_ssh_runs_a_command_on_every_host(hosts):
    for name in hosts.hosts:
        result = hosts.operate("ssh", name, "--", "true")
        assert result.returncode == 0, (name, result.stderr)
        assert result.stderr == "", result.stderr  # nothing trusted on first use, nothing to warn about
    result = hosts.operate("ssh", "db", "--", "hostname")
    assert result.stdout == f"{hosts.names('db')[0]}\n"


def test_logs_show_a_request_just_made_to_a_backend(hosts):
    backend = hosts.names("backend")[1]
    marker = uuid.uuid4().hex
    with urllib.request.urlopen(
        f"http://{hosts.address(backend)}:8080/despachos/reporte/?e2e={marker}", timeout=30
    ) as answer:
        assert answer.status == 200
    result = hosts.operate("logs", "backend", "--since", "5m")
    assert result.returncode == 0, result.stderr
    no_traceback(result, host_lines=True)
    lines = [line for line in result.stdout.splitlines() if marker in line]
    assert len(lines) == 1 and lines[0].startswith(f"{backend} | "), result.stdout[-2000:]
    everything = hosts.operate("logs", "--lines", "5")
    prefixes = {line.split(" | ")[0].strip() for line in everything.stdout.splitlines()}
    assert prefixes == set(hosts.hosts), everything.stdout[-2000:]


def _signals(pid: int | str) -> str:
    """A process's blocked and ignored signals, as the kernel has them."""
    status = Path(f"/proc/{pid}/status").read_text()
    return " ".join(line.replace("\t", " ") for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn")))


def _started_as_from_a_shell():
    # A shell starts a command with SIGINT at its default and not blocked. This test process may
    # have it otherwise by now (whole-suite runs saw provision.py ignore the SIGINT below: gevent's
    # monkey-patching of this process, earlier tests), and a child inherits both.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_logs_follow_ends_on_sigint_without_a_traceback(hosts, ssh):
    backend = hosts.names("backend")[0]
    process = subprocess.Popen(
        [PYTHON, "provision.py", "logs", "-f", backend, "db"],
        cwd=ROOT,
        env=hosts.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_started_as_from_a_shell,
    )
    try:
        time.sleep(4)
        marker = uuid.uuid4().hex
        urllib.request.urlopen(f"http://{hosts.address(backend)}:8080/despachos/reporte/?follow={marker}", timeout=30)
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            left = subprocess.run(["ps", "-o", "pid,ppid,stat,args", "--ppid", str(process.pid)], capture_output=True)
            signals = f"provision.py: {_signals(process.pid)}; this test process: {_signals('self')}"
            process.kill()
            out, err = process.communicate(timeout=30)
            pytest.fail(
                f"logs -f still ran 30 s after SIGINT ({signals}); its children: {left.stdout.decode()}\n"
                f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}"
            )
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 130), (process.returncode, err)
    assert "Traceback" not in err and err == "", err
    assert any(marker in line and line.startswith(f"{backend} | ") for line in out.splitlines()), out[-2000:]
    time.sleep(2)  # the remote readers end with their connections (SIGHUP through the remote terminal)
    code, left = ssh(backend, "pgrep -af '[j]ournalctl --unit=sprint2-app' || true")
    assert left.strip() == "", left


def test_manage_check_runs_on_the_setup_backend(hosts):
    result = hosts.operate("manage", "check")
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    where = hosts.operate("manage", "shell", "-c", "import socket; print(socket.gethostname())")
    assert where.stdout.strip() == hosts.names("backend")[0], where


def test_psql_runs_as_the_app_user(hosts):
    result = hosts.operate("psql", "-c", "select 1")
    assert result.returncode == 0, result.stderr
    assert "(1 row)" in result.stdout
    who = hosts.operate("psql", "-At", "-c", "select current_user")
    assert who.stdout == "dispatch_user\n", who


def _marked(text):
    return [line for line in text.splitlines() if line.startswith("!")]


def test_status_shows_healthy_backends_then_names_a_stopped_one(hosts, ssh):
    kong = hosts.names("kong")[0]
    result = hosts.operate("status")
    no_traceback(result)
    for name in hosts.names("backend"):
        assert any(
            # After the health, the lock the running virtualenv was built from.
            line.startswith(f"  {name}  ") and " active " in line and "  health 200  lock " in line
            for line in result.stdout.splitlines()
        ), result.stdout
    assert "  PostgreSQL up, " in result.stdout
    # Honest about Kong: no container can run its image here, and status says so; and whether the
    # Kong host has a kong.yml (earlier modules of the whole suite may leave it without one).
    code, _ = ssh(kong, f"test -f {KONG_CONFIG}")
    assert _marked(result.stdout) == [
        "! container kong: absent",
        "! admin API: could not read it (<urlopen error [Errno 111] Connection refused>)",
        *([] if code == 0 else [f"! config: no {KONG_CONFIG}"]),
    ], result.stdout
    assert result.returncode == 1 and result.stdout.splitlines()[-1].startswith(f"UNHEALTHY: {kong} ")

    stopped = hosts.names("backend")[1]
    # The socket too: systemd would start the service again on the next connection (status's own probe).
    code, out = ssh(stopped, "systemctl stop sprint2-app.socket sprint2-app")
    assert code == 0, out
    try:
        result = hosts.operate("status")
        assert result.returncode == 1
        marked = _marked(result.stdout)
        assert any(line.startswith(f"! {stopped}  inactive ") for line in marked), result.stdout
        assert result.stdout.splitlines()[-1].startswith(f"UNHEALTHY: {stopped}, {kong} "), result.stdout
        data = json.loads(hosts.operate("status", "--json").stdout)
        assert f"{stopped}: sprint2-app is inactive" in data["problems"]
    finally:
        ssh(stopped, "systemctl start sprint2-app.socket sprint2-app")
    for _ in range(30):
        result = hosts.operate("status")
        if not any(line.startswith(f"! {stopped}") for line in result.stdout.splitlines()):
            break
        time.sleep(1)
    assert _marked(result.stdout) == _marked(hosts.operate("status").stdout)
    assert not any(line.startswith(f"! {stopped}") for line in result.stdout.splitlines()), result.stdout
