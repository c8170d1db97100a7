"""inventory.py: the state file becomes pyinfra groups with the host data the deploy reads."""

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stack.errors import UserError
from stack.inventory import groups_from_state
from stack.settings import PROJECT_ROOT
from stack.state import Host, State, save_state
from tests.stack.records import AWS_DATABASE


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEPLOY_CONFIG", str(tmp_path / "config.yml"))
    (tmp_path / "config.yml").write_text("project_prefix: des\n")
    return tmp_path / "home"


def record(hosts: dict, prefix="des"):
    save_state(State("aws", prefix, "us-east-1", hosts=hosts))


def host(role, private_ip, key=None, user="ubuntu"):
    return Host(role, private_ip, "198.51.100." + private_ip.split(".")[-1], user, key=key, ssh_key="/keys/id")


def test_hosts_become_groups_with_their_data(home):
    record(
        {
            "des-kong": host("kong", "172.31.0.9"),
            "des-backend-b": host("backend", "172.31.0.6", "b"),
            "des-backend-a": host("backend", "172.31.0.5", "a"),
            "des-db": host("db", "172.31.0.4"),
        }
    )
    groups = groups_from_state()
    assert [name for name, _ in groups["backends"]] == ["des-backend-a", "des-backend-b"]
    name, data = groups["db"][0]
    assert name == "des-db"
    assert data["ssh_hostname"] == "198.51.100.4"
    assert data["private_ip"] == "172.31.0.4"
    assert data["ssh_user"] == "ubuntu" and data["_sudo"] is True
    assert data["ssh_key"] == "/keys/id"
    assert data["ssh_known_hosts_file"] == str(home.resolve() / "ssh" / "known_hosts")
    assert groups["backends"][1][1]["backend_key"] == "b"
    assert [name for name, _ in groups["kong"]] == ["des-kong"]


def test_root_hosts_need_no_sudo(home):
    record({"des-db": host("db", "10.77.0.10", user="root")})
    assert "_sudo" not in groups_from_state()["db"][0][1]


def test_no_state_says_to_provision_first(home):
    with pytest.raises(UserError, match=re.escape("run python provision.py first")):
        groups_from_state()


def test_a_state_of_another_project_is_refused(home):
    record({"old-db": host("db", "172.31.0.4")}, prefix="old")
    with pytest.raises(UserError, match="the state holds the hosts of project 'old' but project_prefix is 'des'"):
        groups_from_state()


def test_the_pyinfra_cli_prints_one_line_without_state(home):
    pyinfra = str(Path(sys.executable).parent / "pyinfra")
    result = subprocess.run(
        [pyinfra, "-y", "inventory.py", "deploy.py"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "error: no hosts recorded yet: run python provision.py first" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_pyinfras_changed_host_key_hint_names_the_projects_known_hosts(home, caplog):
    # pyinfra says `ssh-keygen -R <host>`, which edits ~/.ssh/known_hosts: not the file it checked.
    record({"des-db": host("db", "10.0.0.4")})
    groups_from_state()  # what pyinfra runs when it loads inventory.py, before it connects
    groups_from_state()  # (twice: one rewrite, not two)
    with caplog.at_level(logging.WARNING, logger="pyinfra"):
        logging.getLogger("pyinfra").warning("If this is expected, you can remove the bad key using:")
        logging.getLogger("pyinfra").warning("    ssh-keygen -R %s", "198.51.100.4")
    assert [r.getMessage() for r in caplog.records] == [
        "If this is expected, you can remove the bad key using:",
        f"    ssh-keygen -R 198.51.100.4 -f {home.resolve()}/ssh/known_hosts",
    ]


def test_every_host_is_checked_strictly_against_its_pin_never_trusted_on_first_use(home):
    aws = host("db", "172.31.0.4")
    aws.extra["instance_id"] = "i-0abc"
    record({"des-db": aws, "des-kong": host("kong", "172.31.0.9")})
    groups = groups_from_state()
    for _, data in groups["db"] + groups["kong"]:
        assert data["ssh_strict_host_key_checking"] == "yes"
    check = groups["db"][0][1]["ssh_paramiko_connect_kwargs"]["transport_factory"]
    assert (check.host, check.pin_name, check.known_hosts) == (
        "des-db (i-0abc, 198.51.100.4)",
        "i-0abc",
        str(home.resolve() / "ssh" / "known_hosts"),
    )
    assert groups["kong"][0][1]["ssh_paramiko_connect_kwargs"]["transport_factory"].pin_name == "198.51.100.9"


DATABASE = AWS_DATABASE


def test_with_rds_there_is_no_db_group_and_every_host_gets_the_database_record(home):
    (home.parent / "config.yml").write_text("project_prefix: des\ndb_service: rds\n")
    save_state(
        State(
            "local",
            "des",
            hosts={
                "des-rds": host("rds", "10.77.0.10"),
                "des-backend-a": host("backend", "10.77.0.20", "a"),
                "des-kong": host("kong", "10.77.0.11"),
            },
            database=DATABASE,
        )
    )
    groups = groups_from_state()
    assert groups["db"] == []  # the stand-in is provision.py's, never the deploy's
    assert [name for name, _ in groups["backends"]] == ["des-backend-a"]
    assert all(data["database"] == DATABASE for group in groups.values() for _, data in group)


def test_with_rds_and_no_database_recorded_it_says_to_provision(home):
    (home.parent / "config.yml").write_text("project_prefix: des\ndb_service: rds\n")
    record({"des-backend-a": host("backend", "10.77.0.20", "a")})
    with pytest.raises(UserError) as error:
        groups_from_state()
    assert str(error.value) == (
        "db_service is rds but no database is recorded in the state: run python provision.py "
        "(it creates the database and records its endpoint), then deploy"
    )
