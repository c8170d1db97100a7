"""The deploy lock's scripts, run by a real shell on a scratch folder instead of the db host's."""

import subprocess

import pytest

from stack import deploy_lock


@pytest.fixture
def lock_file(tmp_path, monkeypatch):
    path = tmp_path / "lock-dir" / "lock"
    monkeypatch.setattr(deploy_lock, "LOCK_FILE", str(path))
    return path


def sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_the_first_deploy_takes_the_lock_and_a_second_one_is_told_who_holds_it(lock_file):
    first = "alice@laptop (pid 1, run aaaaaaaaaaaa) deploying main since 2026-11-29T10:00:00Z"
    assert sh(deploy_lock.acquire_script(first)) == "acquired"
    assert lock_file.read_text() == first + "\n"
    assert oct(lock_file.parent.stat().st_mode & 0o777) == "0o700"
    second = "bob@desk (pid 2, run bbbbbbbbbbbb) deploying main since 2026-11-29T10:01:00Z"
    assert sh(deploy_lock.acquire_script(second)) == f"held {first}"
    assert lock_file.read_text() == first + "\n"


def test_an_expired_lock_is_taken_over_and_says_whose_it_was(lock_file):
    sh(deploy_lock.acquire_script("old run"))
    assert sh(deploy_lock.acquire_script("new run", expires_s=-1)) == "expired old run"
    assert lock_file.read_text() == "new run\n"


def test_a_run_gives_back_only_its_own_lock(lock_file):
    sh(deploy_lock.acquire_script("x (pid 3, run other) deploying main since now"))
    sh(deploy_lock.release_script("mine"))
    assert lock_file.exists()
    sh(deploy_lock.release_script("other"))
    assert not lock_file.exists()


def test_unlock_removes_any_lock_and_says_whose(lock_file):
    assert sh(deploy_lock.unlock_script()) == "none"
    sh(deploy_lock.acquire_script("dead run"))
    assert sh(deploy_lock.unlock_script()) == "released dead run"
    assert not lock_file.exists()


def test_the_holder_names_who_where_when_and_what():
    line = deploy_lock.holder("v1.2", now=0)
    assert f"run {deploy_lock.RUN})" in line and line.endswith("deploying v1.2 since 1970-01-01T00:00:00Z")


def test_a_dry_run_takes_no_lock(monkeypatch):
    monkeypatch.setattr(deploy_lock.sys, "argv", ["pyinfra", "inventory.py", "deploy.py", "--dry"])
    monkeypatch.setattr(deploy_lock, "database_host", lambda: pytest.fail("a --dry run asked for the lock"))
    deploy_lock.take("main")


@pytest.fixture
def local_db_run(lock_file, monkeypatch):
    """A pyinfra run whose database host is this machine (@local), connected; OpenSSH is never used."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all

    monkeypatch.setattr(deploy_lock, "_taken", None)
    monkeypatch.setattr(deploy_lock.sys, "argv", ["pyinfra", "inventory.py", "deploy.py"])
    monkeypatch.setattr(deploy_lock, "database_host", lambda: pytest.fail("OpenSSH used beside pyinfra's connection"))
    monkeypatch.setattr(deploy_lock.atexit, "register", lambda function: None)
    state = State(Inventory((["@local"], {}), db=(["@local"], {})), Config())
    connect_all(state)
    return state


def test_a_run_connected_to_the_database_host_gives_the_lock_back_after_its_last_operation(
    local_db_run, lock_file, monkeypatch
):
    deploy_lock.take("v2", local_db_run)
    assert f"run {deploy_lock.RUN}) deploying v2 since" in lock_file.read_text()
    (handler,) = [
        h for h in local_db_run.callback_handlers if isinstance(h, deploy_lock._GiveBackAfterTheLastOperation)
    ]
    monkeypatch.setattr(type(handler), "last", ["the last operation"])

    handler.operation_end(local_db_run, "an operation before it")
    assert lock_file.exists()
    handler.operation_end(local_db_run, "the last operation")
    assert not lock_file.exists()


def test_at_exit_the_lock_is_given_back_through_openssh_whatever_state_pyinfra_is_in(
    local_db_run, lock_file, monkeypatch
):
    deploy_lock.take("v2", local_db_run)
    used = []
    monkeypatch.setattr(deploy_lock, "database_host", lambda: "the db host through OpenSSH")
    monkeypatch.setattr(deploy_lock, "_run_at", lambda where, script: used.append(where) or "")
    deploy_lock.give_back()  # as atexit calls it
    deploy_lock.give_back()  # once only
    assert used == ["the db host through OpenSSH"]


def test_a_run_connected_to_the_database_host_stops_on_a_held_lock_naming_the_holder(local_db_run, lock_file, capsys):
    lock_file.parent.mkdir()
    lock_file.write_text("bob@desk (pid 2, run bbbbbbbbbbbb) deploying main since then\n")

    with pytest.raises(SystemExit) as stopped:
        deploy_lock.take("v2", local_db_run)

    assert stopped.value.code != 0
    assert "another deploy holds the lock on @local: bob@desk" in capsys.readouterr().err
    assert lock_file.read_text().startswith("bob@desk")
