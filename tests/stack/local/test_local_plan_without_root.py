"""`python provision.py --provider local plan` run by an ordinary user (tests/stack/local/as_user.py):
it prints the plan and exits 0, or says in one line what it cannot read."""

import json
import os

import pytest

from tests.stack.local.as_user import give, plan_as_user, readable_folder

# Unlikely to be any bridge's: check_subnet_free reads this machine's addresses.
SUBNET = "10.251.7.0/24"
CONFIG = f"project_prefix: pnr\nlocal_subnet: {SUBNET}\nbackends: [a]\n"


@pytest.fixture
def readable():
    with readable_folder() as folder:
        yield folder


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

    result = plan_as_user(readable, home, CONFIG)

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

    result = plan_as_user(readable, home, CONFIG)

    home.chmod(0o700)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {home}/state.json: not readable by this user: run as its owner (sudo), "
        "or set DEPLOY_HOME to a copy you can read\n"
    )
    assert result.stdout == ""


def test_an_ordinary_user_gets_the_destroy_plan_too(readable):
    home = readable / "home"
    home.mkdir(mode=0o700)
    (home / "state.json").write_text(json.dumps(recorded_state(SUBNET)))
    give(home)
    give(home / "state.json")

    result = plan_as_user(readable, home, CONFIG, "destroy", "--dry")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "- destroy pnr-backend-a  (backend, 10.251.7.20)",
        "- destroy pnr-db  (db, 10.251.7.10)",
        "- remove bridge br-pnr and its NAT rule",
        "Plan: 2 to destroy.",
        "(dry run: nothing was changed)",
    ]
