"""`python provision.py --provider local plan` run by an ordinary user: it prints the plan and
exits 0, or says in one line what it cannot read. Run as `nobody` when the suite runs as root
(as CI does), as the suite's own user otherwise; against a copy of the code that user can read,
with an interpreter it can run."""

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from stack.settings import PROJECT_ROOT

USER = "nobody"
CODE = ("stack", "tasks", "templates", "files", "provision.py")
# Unlikely to be any bridge's: check_subnet_free reads this machine's addresses.
SUBNET = "10.251.7.0/24"


def as_user(command: list[str], env: dict[str, str]) -> list[str]:
    """`command` as the test user, with exactly `env` (runuser would set HOME and the like)."""
    with_env = ["/usr/bin/env", "-i", *(f"{key}={value}" for key, value in env.items()), *command]
    if os.geteuid() != 0:
        return with_env
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", USER, "--", *with_env]


def give(path: Path) -> None:
    """Make `path` the test user's (nothing to do when the suite is not root)."""
    if os.geteuid() == 0:
        shutil.chown(path, USER)


@pytest.fixture
def readable(tmp_path):
    """A world-readable folder: pytest's tmp_path is its user's only."""
    folder = Path(tempfile.mkdtemp(prefix="plan-without-root-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def interpreter(env: dict[str, str]) -> str:
    """This Python, or the system's of the same version when the test user may not run this one
    (a pyenv build under /root), with this environment's packages on PYTHONPATH."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, getattr(sys, "_base_executable", sys.executable), f"/usr/bin/{version}"):
        probe = subprocess.run(
            as_user([candidate, "-c", "import pydantic, yaml"], env), capture_output=True, timeout=30
        )
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"{USER} can run no {version} that imports this environment's packages")


def plan_as_user(readable: Path, home: Path) -> subprocess.CompletedProcess:
    code = readable / "code"
    for part in CODE:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, code / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            code.mkdir(exist_ok=True)
            shutil.copy(source, code / part)
    config = readable / "config.yml"
    config.write_text(f"project_prefix: pnr\nlocal_subnet: {SUBNET}\nbackends: [a]\n")
    env = {
        "PATH": "/usr/bin:/bin",  # an ordinary user's: no /usr/sbin, where iptables lives
        "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
        "DEPLOY_HOME": str(home),
        "DEPLOY_CONFIG": str(config),
        "HOME": str(readable),
    }
    return subprocess.run(
        as_user([interpreter(env), "provision.py", "--provider", "local", "plan"], env),
        cwd=code,
        capture_output=True,
        text=True,
        timeout=60,
    )


def recorded_state(subnet: str) -> dict:
    """Two hosts recorded as made by an earlier apply, not running (no pid)."""

    def host(role: str, address: str) -> dict:
        return {
            "role": role,
            "key": "a" if role == "backend" else None,
            "private_ip": address,
            "public_ip": address,
            "ssh_user": "ubuntu",
            "ssh_key": "/nonexistent/id_ed25519",
            "ssh_port": 22,
            "local": {"pid": None, "dir": "/nonexistent", "root": "/nonexistent/root"},
        }

    prefix = subnet.rsplit(".", 1)[0]
    return {
        "version": 1,
        "provider": "local",
        "prefix": "pnr",
        "region": None,
        "hosts": {"pnr-db": host("db", f"{prefix}.10"), "pnr-backend-a": host("backend", f"{prefix}.20")},
        "local": {"bridge": "br-pnr", "subnet": subnet, "gateway": f"{prefix}.1"},
    }


def test_an_ordinary_user_gets_the_plan(readable):
    home = readable / "home"
    home.mkdir(mode=0o700)
    state = home / "state.json"
    state.write_text(json.dumps(recorded_state(SUBNET)))
    state.chmod(0o600)
    give(home)
    give(state)
    before = state.read_bytes(), sorted(path.name for path in home.iterdir())

    result = plan_as_user(readable, home)

    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    # the base image line appears only on a machine that has not built it yet
    assert [line for line in lines if not line.startswith("+ build base image ")] == [
        "+ create bridge br-pnr 10.251.7.1 with NAT for 10.251.7.0/24",
        "~ start pnr-db         (db, 10.251.7.10)",
        "~ start pnr-backend-a  (backend, 10.251.7.20)",
        "+ create pnr-kong       (kong, 10.251.7.11)",
        "Plan: 1 to create, 2 to start, 0 to destroy, 0 unchanged.",
        "(dry run: nothing was changed)",
    ]
    assert (state.read_bytes(), sorted(path.name for path in home.iterdir())) == before


def test_a_state_this_user_cannot_read_is_one_line(readable):
    home = readable / "home"
    home.mkdir(mode=0o700)
    (home / "state.json").write_text(json.dumps(recorded_state(SUBNET)))
    if os.geteuid() != 0:
        home.chmod(0)  # the suite's own user: a folder it may not enter stands for root's

    result = plan_as_user(readable, home)

    home.chmod(0o700)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {home}/state.json: not readable by this user: run as its owner (sudo), "
        "or set DEPLOY_HOME to a copy you can read\n"
    )
    assert result.stdout == ""
