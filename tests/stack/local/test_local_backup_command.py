"""`provision.py --provider local backup [PATH]`, its ssh replaced by a local stand-in."""

import re
import stat

import pytest

from stack.errors import UserError
from stack.local import provider
from stack.settings import defaults
from stack.state import Host, State, save_state


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    save_state(State("local", "des", hosts={"des-db": Host("db", "10.77.0.10", "10.77.0.10", "root", ssh_key="/k")}))


def stand_in(monkeypatch, script):
    real_run = provider.subprocess.run
    monkeypatch.setattr("stack.dump.subprocess.run", lambda command, **kwargs: real_run(["sh", "-c", script], **kwargs))


def test_backup_writes_a_private_dump_and_never_overwrites(recorded, tmp_path, monkeypatch, capsys):
    stand_in(monkeypatch, "printf PGDMP-local")
    target = tmp_path / "db.dump"
    assert provider.backup(defaults(), str(target)) == 0
    assert target.read_text() == "PGDMP-local" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "pg_restore --no-owner" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"^backup .*db.dump: the file exists; choose a new name"):
        provider.backup(defaults(), str(target))


def test_backup_without_a_path_goes_to_the_private_backups_folder(recorded, tmp_path, monkeypatch):
    stand_in(monkeypatch, "printf PGDMP-local")
    assert provider.backup(defaults(), None) == 0
    assert len(list((tmp_path / "home" / "backups").glob("dispatch_db-*.dump"))) == 1


def test_a_failed_dump_is_one_line_and_leaves_no_file(recorded, tmp_path, monkeypatch):
    stand_in(monkeypatch, "echo 'ssh: connect to host 10.77.0.10 port 22: No route to host' >&2; exit 255")
    with pytest.raises(UserError) as error:
        provider.backup(defaults(), str(tmp_path / "db.dump"))
    assert str(error.value) == "backup of des-db failed (ssh: connect to host 10.77.0.10 port 22: No route to host)"
    assert not (tmp_path / "db.dump").exists()


def test_without_hosts_the_backup_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    with pytest.raises(
        UserError, match="^" + re.escape("backup: no database host is recorded: run python provision.py")
    ):
        provider.backup(defaults(), None)
