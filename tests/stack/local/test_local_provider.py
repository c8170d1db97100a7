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
