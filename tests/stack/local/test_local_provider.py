import re

import pytest

from stack.errors import UserError
from stack.local import image, provider


def test_not_root_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(provider.os, "geteuid", lambda: 1000)
    with pytest.raises(
        UserError,
        match=r"^the local provider boots systemd-nspawn hosts and needs root: "
        r"run it as root \(sudo\)$",
    ):
        provider.check_requirements()


def test_missing_tools_name_the_packages_to_install(monkeypatch):
    monkeypatch.setattr(provider.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        provider.shutil,
        "which",
        lambda command: None if command in ("systemd-nspawn", "debootstrap") else f"/usr/bin/{command}",
    )
    with pytest.raises(
        UserError,
        match="^"
        + re.escape(
            "the local provider needs debootstrap, systemd-container: apt-get install debootstrap systemd-container"
        )
        + "$",
    ):
        provider.check_requirements()


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_debootstrap_command(suite):
    assert image.debootstrap_command(image.CACHE / "x", suite) == [
        "debootstrap",
        "--variant=minbase",
        "--include=systemd,systemd-sysv,dbus,openssh-server,python3,iproute2,sudo,ca-certificates,needrestart",
        suite,
        "/var/cache/sprint2-stack/x",
        "http://deb.debian.org/debian",
    ]


def test_each_distribution_has_its_image_named_by_what_goes_into_it(monkeypatch):
    """A changed package list or first-boot file builds a new image beside the old one (which
    running hosts may have mounted), never reuses the old one."""
    bookworm, trixie = image.image_path("bookworm"), image.image_path("trixie")
    assert bookworm.parent == trixie.parent == image.CACHE
    assert bookworm.name.startswith("base-bookworm-") and trixie.name.startswith("base-trixie-")
    monkeypatch.setattr(image, "PACKAGES", (*image.PACKAGES, "vim"))
    assert image.image_path("bookworm") != bookworm


def _db_state():
    from stack.state import Host, State

    return State("local", "des", hosts={"des-db": Host("db", "10.77.0.10", "10.77.0.10", "root", ssh_key="/k")})


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


def test_a_host_that_dies_while_booting_is_started_again_then_given_up(monkeypatch, capsys):
    from stack.local import machines

    alive = {"h-db": {2}, "h-kong": {1}}  # h-db's first nspawn (pid 1) died; its restart (pid 2) lives
    monkeypatch.setattr(machines, "is_running", lambda name, pid: pid in alive[name])
    monkeypatch.setattr(machines, "ssh_answers", lambda address, user, key, known: True)
    monkeypatch.setattr(machines, "console_cause", lambda name: "empty console log")
    started = []

    def restart(name):
        started.append(name)
        return 2

    machines.wait_for_ssh(
        {"h-db": "10.9.0.10", "h-kong": "10.9.0.11"},
        {"h-db": "ubuntu", "h-kong": "ubuntu"},
        "k",
        "kh",
        {"h-db": 1, "h-kong": 1},
        restart=restart,
    )
    assert started == ["h-db"]
    assert "h-db stopped while booting (empty console log); starting it again" in capsys.readouterr().out

    alive["h-db"] = set()  # dies every time: two restarts, then one clear line
    started.clear()
    with pytest.raises(UserError, match=r"^h-db stopped while booting: empty console log \(see "):
        machines.wait_for_ssh({"h-db": "10.9.0.10"}, {"h-db": "ubuntu"}, "k", "kh", {"h-db": 1}, restart=restart)
    assert started == ["h-db", "h-db"]


BUILD_IN_ANOTHER_PROCESS = """
import sys, time
from pathlib import Path
from stack.local import image
image.CACHE = Path(sys.argv[1])
def build(final, suite):
    with open(image.CACHE / "builds.log", "a") as log:
        log.write("build\\n")
    time.sleep(0.5)
    final.mkdir()
    (final / image.COMPLETE_MARK).write_text("x")
    return final
image._build = build
print(image.ensure_image())
"""


def test_two_builds_of_the_base_image_at_once_make_one_image(tmp_path):
    """Another session starting meanwhile waits and uses the image (it used to delete the half-built
    one). Two processes, as two sessions are (and a flock would block threads under gevent)."""
    import subprocess
    import sys

    from stack.local import image
    from stack.settings import PROJECT_ROOT

    runs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_IN_ANOTHER_PROCESS, str(tmp_path)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=30)[0].strip() for run in runs]
    assert (tmp_path / "builds.log").read_text() == "build\n"
    assert outputs == [str(tmp_path / image.image_path().name)] * 2
