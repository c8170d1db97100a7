"""The state file: atomic, private, and one clear line when it is not what it should be."""

import json
import stat

import pytest

from stack.errors import UserError
from stack.state import Host, State, load_state, private_dir, save_state, state_path
from tests.stack.records import AWS_DATABASE


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_no_state_is_none():
    assert load_state() is None


def test_saved_state_reads_back_and_only_the_owner_can_read_it(home):
    state = State("local", "des")
    state.hosts["des-db"] = Host("db", "10.77.0.10", "10.77.0.10", "root")
    save_state(state)
    assert load_state() == state
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not list(home.glob("*.tmp"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "unreadable state file"),
        ("[]", r"not a state file \(expected a JSON object\)"),
        ('{"version": 99}', "state version 99, expected 1"),
        ('{"version": 1}', r'"hosts" is not a mapping'),
        ('{"version": 1, "hosts": {"x": {}}}', r"host 'x' lacks role"),
        (
            '{"version": 1, "hosts": {"x": {"role": "db", "private_ip": "10.0.0.1", "public_ip": null}}}',
            r"host 'x' lacks role .*ssh_user",
        ),
    ],
)
def test_a_damaged_state_is_one_line(home, text, message):
    home.mkdir()
    state_path().write_text(text)
    with pytest.raises(UserError, match=message):
        load_state()


def test_deploy_home_on_a_file_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "afile"))
    with pytest.raises(UserError, match="exists and is not a folder; point DEPLOY_HOME at a folder"):
        private_dir("ssh")


# Version 1 files as provision.py wrote them before the state had typed records.
AWS_V1 = """{
  "aws": {
    "groups": {
      "des-db-sg": "sg-0a1"
    },
    "key_name": "des-key",
    "region": "us-east-1",
    "topic_arn": null,
    "vpc_id": "vpc-1"
  },
  "hosts": {
    "des-backend-a": {
      "instance_id": "i-0b",
      "instance_type": "t3.micro",
      "key": "a",
      "private_ip": "172.31.0.5",
      "public_ip": "198.51.100.5",
      "role": "backend",
      "ssh_key": "/home/op/.deploy/ssh/des_ed25519",
      "ssh_port": 22,
      "ssh_user": "ubuntu",
      "state": "running",
      "zone": "us-east-1a"
    }
  },
  "prefix": "des",
  "provider": "aws",
  "region": "us-east-1",
  "version": 1
}
"""
LOCAL_V1 = """{
  "hosts": {
    "des-db": {
      "key": null,
      "local": {
        "dir": "/var/lib/sprint2-stack/machines/des-db",
        "pid": 4242,
        "root": "/var/lib/sprint2-stack/machines/des-db/root"
      },
      "private_ip": "10.77.0.10",
      "public_ip": "10.77.0.10",
      "role": "db",
      "ssh_key": "/root/.deploy/ssh/id_ed25519",
      "ssh_port": 22,
      "ssh_user": "root"
    }
  },
  "local": {
    "bridge": "br-des",
    "gateway": "10.77.0.1",
    "image": "/var/cache/sprint2-stack/debian",
    "subnet": "10.77.0.0/24"
  },
  "prefix": "des",
  "provider": "local",
  "region": null,
  "version": 1
}
"""


@pytest.mark.parametrize("text", [AWS_V1, LOCAL_V1], ids=["aws", "local"])
def test_a_version_1_file_loads_and_is_written_back_byte_for_byte(home, text):
    home.mkdir()
    state_path().write_text(text)
    state = load_state()
    save_state(state)
    assert state_path().read_text() == text


def test_a_version_1_file_becomes_typed_records(home):
    home.mkdir()
    state_path().write_text(AWS_V1)
    state = load_state()
    host = state.hosts["des-backend-a"]
    assert (state.provider, state.prefix, state.region, state.aws["vpc_id"]) == ("aws", "des", "us-east-1", "vpc-1")
    assert (host.role, host.key, host.private_ip, host.public_ip, host.ssh_user, host.ssh_port) == (
        "backend",
        "a",
        "172.31.0.5",
        "198.51.100.5",
        "ubuntu",
        22,
    )
    assert host.extra == {"instance_id": "i-0b", "instance_type": "t3.micro", "state": "running", "zone": "us-east-1a"}


def test_records_read_by_key_like_the_json_for_readers_not_converted(home):
    home.mkdir()
    state_path().write_text(LOCAL_V1)
    state = load_state()
    assert state.get("provider") == "local" and state["prefix"] == "des" and state.get("nothing") is None
    host = state.get("hosts")["des-db"]
    assert host["role"] == "db" and host.get("ssh_port") == 22 and host["local"]["pid"] == 4242
    with pytest.raises(KeyError):
        host["nothing"]


def test_a_hand_written_host_gets_the_defaults_it_was_read_with():
    host = Host.from_json({"role": "db", "private_ip": "10.0.0.4", "public_ip": None, "ssh_user": "root"})
    assert (host.key, host.ssh_key, host.ssh_port, host.extra) == (None, None, 22, {})


RDS = AWS_DATABASE


def test_the_database_entry_is_top_level_and_reads_back(home):
    state = State("aws", "des", "us-east-1", database=dict(RDS))
    state.hosts["des-backend-a"] = Host("backend", "172.31.0.5", "203.0.113.5", "ubuntu", key="a")
    save_state(state)
    assert json.loads(state_path().read_text())["database"] == RDS
    assert load_state() == state and load_state().database == RDS


def test_a_host_stack_has_no_database_entry(home):
    save_state(State("local", "des"))
    assert "database" not in json.loads(state_path().read_text())
    assert load_state().database is None


@pytest.mark.parametrize(
    "database",
    [
        "rds",
        {**RDS, "service": "host"},
        {key: value for key, value in RDS.items() if key != "address"},
        {key: value for key, value in RDS.items() if key != "ca_bundle_url"},
    ],
)
def test_a_damaged_database_entry_is_one_line(home, database):
    home.mkdir()
    state_path().write_text(json.dumps({"version": 1, "hosts": {}, "database": database}))
    with pytest.raises(UserError, match=r'"database" lacks service \(rds\), identifier, address, port, master_user'):
        load_state()


def test_a_local_database_entry_may_carry_the_pem_instead(home):
    local = {key: value for key, value in RDS.items() if key != "ca_bundle_url"}
    save_state(State("local", "des", database={**local, "ca_bundle_pem": "-----BEGIN CERTIFICATE-----"}))
    assert load_state().database["ca_bundle_pem"].startswith("-----BEGIN")
