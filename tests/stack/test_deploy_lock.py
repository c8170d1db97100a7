"""The deploy lock's session scripts, run by a real shell on a scratch folder instead of the db
host's /run, as the first deploy runs them (no PostgreSQL yet: the host lock alone); the
advisory lock's SQL is run against the db hosts' PostgreSQL in tests/e2e/test_deploy_lock_e2e.py."""

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from stack import deploy_lock, deploy_lock_scripts
from stack.deploy_lock_scripts import LockPlace, hold_script, managed_place, take_sql, unlock_script


@pytest.fixture
def place(tmp_path, monkeypatch):
    """Today's place with no PostgreSQL on it yet (the very first deploy)."""
    here = LockPlace(folder=str(tmp_path / "run"), ready="false")
    monkeypatch.setattr(deploy_lock_scripts, "PLACE", here)
    return here


def session(line: str, place: LockPlace) -> deploy_lock.ProcessSession:
    return deploy_lock.ProcessSession("here", ["sh", "-c", hold_script(line, place)])


def sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


# A run holding a session (its stdin a pipe only this process writes), until it is killed.
KEEP_A_SESSION = (
    "import subprocess, sys, time; subprocess.Popen(['sh', '-c', sys.argv[1]], stdin=subprocess.PIPE); time.sleep(60)"
)

ALICE = "alice@laptop (pid 1, run aaaaaaaaaaaa) deploying main since 2026-11-29T10:00:00Z"
BOB = "bob@desk (pid 2, run bbbbbbbbbbbb) deploying main since 2026-11-29T10:01:00Z"


def test_the_first_run_holds_the_lock_until_its_input_closes_and_a_second_is_told_who_holds_it(place):
    first = session(ALICE, place)
    assert first.answer() == "acquired\n"
    second = session(BOB, place)
    assert second.answer() == f"held {ALICE}\n"
    second.end(wait=True)
    assert second.process.returncode == 0
    assert oct(os.stat(place.folder).st_mode & 0o777) == "0o700"

    first.end(wait=True)  # given back: the next one takes it
    third = session(BOB, place)
    assert third.answer() == "acquired\n"
    third.end(wait=True)


def test_a_run_killed_outright_leaves_nothing_to_take_over(place):
    """The run's process dies (SIGKILL): the session's input closes with it, and the lock goes."""
    run = subprocess.Popen(
        [sys.executable, "-c", KEEP_A_SESSION, hold_script(ALICE, place)], stdout=subprocess.PIPE, text=True
    )
    assert run.stdout is not None and run.stdout.readline() == "acquired\n"
    run.kill()
    run.wait()
    deadline = time.monotonic() + 5
    while True:
        second = session(BOB, place)
        answer = second.answer()
        second.end(wait=True)
        if answer == "acquired\n" or time.monotonic() > deadline:
            break
    assert answer == "acquired\n"


def test_two_runs_asking_at_once_one_proceeds_every_time(place):
    for _ in range(20):
        racers = [session(ALICE, place), session(BOB, place)]
        answers = [racer.answer() for racer in racers]
        for racer in racers:
            racer.end(wait=True)
        assert sorted(answer.split()[0] for answer in answers) == ["acquired", "held"], answers


def test_unlock_ends_the_holders_session_and_says_whose_it_was(place):
    assert sh(unlock_script(place)) == "none"
    first = session(ALICE, place)
    assert first.answer() == "acquired\n"
    assert sh(unlock_script(place)) == f"released {ALICE}"
    assert first.process.wait(timeout=5) != 0  # its holder was ended
    second = session(BOB, place)
    assert second.answer() == "acquired\n"
    second.end(wait=True)


def test_the_statement_that_takes_the_advisory_lock_carries_its_holder_as_a_literal():
    sql = take_sql("o'neil@box (pid 3, run cccccccccccc) deploying main since then")
    assert sql.startswith("SELECT CASE WHEN pg_catalog.pg_try_advisory_lock(1936749106) THEN 'acquired' ELSE 'held ' ")
    assert sql.endswith(
        "AS answer FROM (SELECT 'o''neil@box (pid 3, run cccccccccccc) deploying main since then' AS holder) AS deploy;"
    )


MANAGED = (
    "host=10.0.1.9 port=5432 user=sprint2_deploy sslmode=verify-full "
    "sslrootcert=/etc/sprint2/database-ca.pem connect_timeout=10"
)


def test_a_managed_database_place_is_the_setup_backend_over_tls_with_the_password_on_stdin():
    place = managed_place("10.0.1.9", 5432, "sprint2_deploy", "/etc/sprint2/database-ca.pem")
    assert (place.role, place.group, place.host_lock, place.password_on_stdin) == ("backend", "backends", False, True)
    psql = f"psql -X -q -At -v ON_ERROR_STOP=1 '{MANAGED} dbname=postgres application_name=sprint2-deploy'"
    assert place.ready == f"[ -r /etc/sprint2/database-ca.pem ] && {psql} -c 'SELECT 1' >/dev/null"
    script = hold_script("x", place)
    assert "flock" not in script and "/run" not in script
    assert script.startswith(
        "cd / && IFS= read -r PGPASSWORD; export PGPASSWORD; if [ -r /etc/sprint2/database-ca.pem ] && "
    )
    assert script.endswith(f"exec cat; }} 9<&- | {psql} 9<&- 2>&1; else echo acquired; exec cat > /dev/null; fi")
    assert "PGPASSWORD=" not in script  # the password is read from the session's input, never written in it
    assert unlock_script(place).startswith('cd / && IFS= read -r PGPASSWORD; export PGPASSWORD; found=""; ')


def test_before_the_first_setup_a_managed_place_goes_on_unlocked_and_reads_its_password_first(tmp_path):
    place = managed_place("10.0.1.9", 5432, "sprint2_deploy", str(tmp_path / "no-bundle-yet.pem"))
    held = deploy_lock.ProcessSession("here", ["sh", "-c", hold_script(ALICE, place)])
    assert held.process.stdin is not None
    held.process.stdin.write("secret-horse\n")
    held.process.stdin.flush()
    assert held.answer().strip() == "acquired"
    held.end(wait=True)
    assert held.process.returncode == 0


def test_the_holder_names_who_where_when_and_what():
    line = deploy_lock.holder("v1.2", now=0)
    assert f"run {deploy_lock.RUN})" in line and line.endswith("deploying v1.2 since 1970-01-01T00:00:00Z")


def test_a_dry_run_takes_no_lock(monkeypatch):
    monkeypatch.setattr(deploy_lock.sys, "argv", ["pyinfra", "inventory.py", "deploy.py", "--dry"])
    monkeypatch.setattr(deploy_lock, "database_host", lambda place=None: pytest.fail("a --dry run asked for the lock"))
    deploy_lock.take("main")


@pytest.fixture
def local_run(place, monkeypatch):
    """take() as deploy.py calls it, its session a local shell instead of the db host's."""
    monkeypatch.setattr(deploy_lock, "_held", None)
    monkeypatch.setattr(deploy_lock.sys, "argv", ["pyinfra", "inventory.py", "deploy.py"])
    monkeypatch.setattr(deploy_lock, "database_host", lambda place=None: SimpleNamespace(name="the db host"))
    monkeypatch.setattr(
        deploy_lock,
        "open_session",
        lambda where, script, password=None: deploy_lock.ProcessSession(where.name, ["sh", "-c", script]),
    )
    registered = []
    monkeypatch.setattr(deploy_lock.atexit, "register", registered.append)
    yield registered
    deploy_lock.give_back(wait=True)


class StateWithCallbacks:
    def __init__(self):
        from pyinfra.api import Config, Inventory

        self.inventory = Inventory((["@local"], {}))  # no db host connected: OpenSSH's way
        self.config = Config()
        self.callback_handlers = []

    def add_callback_handler(self, handler):
        self.callback_handlers.append(handler)

    def get_op_order(self):
        return ["an operation before it", "the last operation"]


def test_the_lock_is_given_back_after_the_runs_last_operation(local_run, place):
    state = StateWithCallbacks()
    deploy_lock.take("v2", state)
    assert local_run == [deploy_lock.give_back_at_exit]
    (handler,) = state.callback_handlers
    type(handler).last.clear()
    holder = session(BOB, place)
    answer = holder.answer()
    assert answer.startswith("held ") and "deploying v2 since" in answer
    holder.end(wait=True)

    handler.operation_end(state, "an operation before it")
    assert deploy_lock._held is not None
    handler.operation_end(state, "the last operation")
    assert deploy_lock._held is None
    after = session(BOB, place)
    assert after.answer() == "acquired\n"
    after.end(wait=True)


def test_a_second_run_stops_in_one_line_naming_the_holder(local_run, place, capsys):
    first = session(ALICE, place)
    assert first.answer() == "acquired\n"
    try:
        with pytest.raises(SystemExit) as stopped:
            deploy_lock.take("v2")
    finally:
        first.end(wait=True)
    assert stopped.value.code != 0
    assert capsys.readouterr().err == (
        f"error: another deploy holds the lock on the db host: {ALICE}; wait for it to end, "
        "or if that run is dead: python provision.py unlock\n"
    )
    assert deploy_lock._held is None


def test_at_exit_the_sessions_input_is_only_closed_without_yielding_to_gevent(local_run, place, monkeypatch):
    deploy_lock.take("v2")
    held = deploy_lock._held
    assert isinstance(held, deploy_lock.ProcessSession)
    monkeypatch.setattr(held, "end", lambda wait: pytest.fail("a wait at exit"))
    deploy_lock.give_back_at_exit()
    deploy_lock.give_back_at_exit()  # once only
    assert held.process.wait(timeout=5) == 0  # the session saw its input end and gave the lock back
    after = session(BOB, place)
    assert after.answer() == "acquired\n"
    after.end(wait=True)
