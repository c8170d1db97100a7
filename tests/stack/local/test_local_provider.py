import pytest

from stack.errors import UserError
from stack.local import image, provider


def test_not_root_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(provider.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match=r"^the local provider boots systemd-nspawn hosts and needs root: "
                                        r"run it as root \(sudo\)$"):
        provider.check_requirements()


def test_missing_tools_name_the_packages_to_install(monkeypatch):
    monkeypatch.setattr(provider.os, "geteuid", lambda: 0)
    monkeypatch.setattr(provider.shutil, "which",
                        lambda command: None if command in ("systemd-nspawn", "debootstrap") else f"/usr/bin/{command}")
    with pytest.raises(UserError, match="^the local provider needs debootstrap, systemd-container: "
                                        "apt-get install debootstrap systemd-container$"):
        provider.check_requirements()


def test_debootstrap_command():
    assert image.debootstrap_command(image.CACHE / "x") == [
        "debootstrap", "--variant=minbase",
        "--include=systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,sudo,ca-certificates",
        "bookworm", "/var/cache/sprint2-stack/x", "http://deb.debian.org/debian"]


def _db_state():
    return {"hosts": {"des-db": {"role": "db", "private_ip": "10.77.0.10", "ssh_key": "/k"}}}


def test_backup_is_owner_only_and_never_overwrites(tmp_path, monkeypatch):
    import stat
    from types import SimpleNamespace

    from stack.settings import defaults

    def fake_ssh(command, stdout, **kwargs):
        stdout.write(b"PGDMP dump")
        return SimpleNamespace(returncode=0, stderr=b"")

    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(provider.subprocess, "run", fake_ssh)
    target = tmp_path / "db.dump"
    provider._backup(_db_state(), defaults(), str(target))
    assert target.read_bytes() == b"PGDMP dump"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(UserError, match="the file exists; choose a new name"):
        provider._backup(_db_state(), defaults(), str(target))
    assert target.read_bytes() == b"PGDMP dump"


def test_backup_into_a_missing_folder_is_one_line(tmp_path, monkeypatch):
    from stack.settings import defaults

    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    with pytest.raises(UserError, match=r"^--backup .*: folder .*/nope does not exist$"):
        provider._backup(_db_state(), defaults(), str(tmp_path / "nope" / "db.dump"))
