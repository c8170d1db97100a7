"""Choosing recorded hosts by name or role, and refusing what cannot be reached safely."""

import dataclasses

import pytest

from stack.errors import UserError
from stack.operate.hosts import select, select_one, setup_backend_name, target
from stack.operate.session import explain
from stack.state import Host

HOSTS = {
    "des-db": Host("db", "10.0.0.10", "198.51.100.10", "ubuntu"),
    "des-backend-b": Host("backend", "10.0.0.21", "198.51.100.21", "ubuntu", key="b"),
    "des-backend-a": Host("backend", "10.0.0.20", "198.51.100.20", "ubuntu", key="a"),
    "des-kong": Host("kong", "10.0.0.11", None, "ubuntu"),
}


def test_names_roles_and_names_without_the_prefix():
    assert select(HOSTS, []) == ["des-backend-a", "des-backend-b", "des-db", "des-kong"]
    assert select(HOSTS, ["backend"]) == ["des-backend-a", "des-backend-b"]
    assert select(HOSTS, ["backends", "des-backend-a", "db"]) == ["des-backend-a", "des-backend-b", "des-db"]
    assert select(HOSTS, ["backend-b"], "des") == ["des-backend-b"]
    assert select_one(HOSTS, "db") == "des-db"


def test_an_unknown_name_or_an_ambiguous_role_is_one_line():
    with pytest.raises(
        UserError,
        match=r"^no host or role 'des-web' in the state \(hosts: des-backend-a, "
        r"des-backend-b, des-db, des-kong; roles: db, backend, kong, rds\)$",
    ):
        select(HOSTS, ["des-web"])
    with pytest.raises(UserError, match=r"^backend names 2 hosts \(des-backend-a, des-backend-b\): name one of them$"):
        select_one(HOSTS, "backend")


def test_the_setup_backend_is_the_first_by_name():
    assert setup_backend_name(HOSTS) == "des-backend-a"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path))
    (tmp_path / "ssh").mkdir()
    key = tmp_path / "ssh" / "id_ed25519"
    key.write_text("not read here\n")
    return tmp_path


def recorded(home, **changes):
    host = Host("db", "10.0.0.10", "198.51.100.10", "ubuntu", ssh_key=str(home / "ssh" / "id_ed25519"), ssh_port=22)
    return dataclasses.replace(host, **changes)


def test_a_pinned_host_becomes_a_target(home):
    (home / "ssh" / "known_hosts").write_text(
        "198.51.100.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdF4x6bX0mR3p8k1PZ1eVxqYbqkz7m8Fv1yTn9yH1aA\n"
    )
    found = target("des-db", recorded(home), "aws")
    assert (found.address, found.user, found.key, found.known_hosts) == (
        "198.51.100.10",
        "ubuntu",
        str(home / "ssh" / "id_ed25519"),
        str(home / "ssh" / "known_hosts"),
    )


def test_no_pinned_host_key_is_refused_not_trusted(home):
    (home / "ssh" / "known_hosts").write_text(
        "10.9.9.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdF4x6bX0mR3p8k1PZ1eVxqYbqkz7m8Fv1yTn9yH1aA\n"
    )
    with pytest.raises(
        UserError,
        match=r"known_hosts has no host key for des-db \(198\.51\.100\.10\); nothing is "
        r"trusted on first use here: run python provision.py \(it pins each host's keys from its console\)$",
    ):
        target("des-db", recorded(home), "aws")
    (home / "ssh" / "known_hosts").unlink()
    with pytest.raises(UserError, match=r"re-create it: python provision.py --provider local destroy --only des-db"):
        target("des-db", recorded(home), "local")


def test_a_missing_key_or_address_is_one_line(home):
    with pytest.raises(UserError, match=r"^the SSH key /nowhere/key for des-db is missing: restore it"):
        target("des-db", recorded(home, ssh_key="/nowhere/key"), "aws")
    with pytest.raises(UserError, match=r"^no SSH key is recorded for des-db: set ssh_key_path"):
        target("des-db", recorded(home, ssh_key=None), "aws")
    with pytest.raises(
        UserError, match=r"^des-db has no public address \(stopped\?\): start it with python provision.py$"
    ):
        target("des-db", recorded(home, public_ip=None), "aws")


def test_ssh_failures_become_one_sentence(home):
    (home / "ssh" / "known_hosts").write_text(
        "198.51.100.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdF4x6bX0mR3p8k1PZ1eVxqYbqkz7m8Fv1yTn9yH1aA\n"
    )
    found = target("des-db", recorded(home), "aws")
    where = "des-db (ubuntu@198.51.100.10:22)"
    assert explain(found, "ssh: connect to host 198.51.100.10 port 22: Connection refused\n") == (
        f"{where} does not answer (Connection refused): is it running? (python provision.py starts stopped hosts)"
    )
    assert explain(found, "ubuntu@198.51.100.10: Permission denied (publickey).\n") == (
        f"{where}: the host refused the key {found.key} (is it the key this host was created with?)"
    )
    changed = (
        "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@\n"
        "Host key for 198.51.100.10 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    assert explain(found, changed).startswith(f"{where}: its host key does not match the one pinned in ")
    assert explain(found, "kex_exchange_identification: read: Connection reset by peer\n") == (
        f"{where}: ssh failed: kex_exchange_identification: read: Connection reset by peer"
    )


PINNED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMSFrAi7WodGpvx4XLh5c6PuJRaptHJM5psjLUXoiLy9"


def test_an_aws_host_is_pinned_under_its_instance_id_whatever_its_address(home):
    (home / "ssh" / "known_hosts").write_text(f"i-0abc,198.51.100.99 {PINNED}\n")
    found = target("des-db", recorded(home, extra={"instance_id": "i-0abc"}), "aws")
    assert (found.address, found.host_key_alias, found.known_hosts_name) == ("198.51.100.10", "i-0abc", "i-0abc")
    with pytest.raises(UserError, match=r"has no host key for des-db \(i-0def\)"):
        target("des-db", recorded(home, extra={"instance_id": "i-0def"}), "aws")


def test_a_changed_host_key_is_one_line_with_both_fingerprints(home):
    (home / "ssh" / "known_hosts").write_text(f"i-0abc,198.51.100.10 {PINNED}\n")
    found = target("des-db", recorded(home, extra={"instance_id": "i-0abc"}), "aws")
    # what OpenSSH 9.2 writes (-E) when the host offers another key
    changed = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
        "Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n"
        "It is also possible that a host key has just been changed.\n"
        "The fingerprint for the ED25519 key sent by the remote host is\n"
        "SHA256:Kq0d8mD1zv5i7m8Q0mRw3C1aXn3l9p2tYc6b0eKx3Xk.\n"
        "Please contact your system administrator.\n"
        f"Add correct host key in {home}/ssh/known_hosts to get rid of this message.\n"
        f"Offending ED25519 key in {home}/ssh/known_hosts:1\n"
        "Host key for i-0abc has changed and you have requested strict checking.\n"
        "Host key verification failed.\n"
    )
    assert explain(found, changed) == (
        "des-db (ubuntu@198.51.100.10:22) offered host key SHA256:Kq0d8mD1zv5i7m8Q0mRw3C1aXn3l9p2tYc6b0eKx3Xk "
        f"(ED25519), not the one pinned in {home}/ssh/known_hosts (SHA256:YS9f8lSDoTCtYdIlXv7QmmGbwxHdXDplG5ZF73Ie6Hw "
        "(ED25519)): refused, nothing was sent; someone may be in between; if the host was replaced on purpose, "
        "re-create it with python provision.py (which pins the new host's keys)"
    )
