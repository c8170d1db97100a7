"""What the end-to-end tests read on the hosts: the backends' HTTP answers, the database through
psql, the release a backend runs; and a table lock that stops a writer mid-way.

get(address, path, host_header=None) -> (status, body) from a backend's app port.
counts(platform) -> the row counts every backend reads from PostgreSQL (they must agree).
wait_for_health(platform, name, seconds=60): until the backend's /health-check/ answers 200.
RUNNING: a command printing the release a backend's gunicorn runs.
pip_freeze(ssh, name) -> `pip freeze` of the virtualenv a backend's `current` release uses.
sql(ssh, db, query) -> the query's output, as postgres on the db host.
TableLock(platform, ssh, table): holds a table's ACCESS EXCLUSIVE lock on the db host.
deploy_lock(ssh, db) -> {"host": holder or None, "advisory": holder or None}: who holds the deploy lock.
DeployLockHolder(platform, db, line, place): a session holding the deploy lock, as a run would.
"""

import http.client
import json
import shlex
import subprocess
import time

import pytest

from stack.deploy_lock_scripts import LOCK_FOLDER, LockPlace, hold_script, holder_sql

APP_PORT = 8080
COUNTS_PATH = "/despachos/reporte/"


def get(address: str, path: str, host_header: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection(address, APP_PORT, timeout=15)
    connection.request("GET", path, headers={"Host": host_header or address})
    response = connection.getresponse()
    return response.status, response.read().decode()


def counts(platform) -> dict:
    """The row counts every backend reads from PostgreSQL (they must agree)."""
    answers = {}
    for name in platform.names("backend"):
        status, body = get(platform.address(name), COUNTS_PATH)
        assert status == 200, f"{name}: {COUNTS_PATH} answered {status}: {body[:300]}"
        answers[name] = json.loads(body)
    assert len({json.dumps(value, sort_keys=True) for value in answers.values()}) == 1, answers
    return next(iter(answers.values()))


def wait_for_health(platform, name, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if get(platform.address(name), "/health-check/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name}: /health-check/ does not answer 200 within {seconds} s")


# The release the running gunicorn was started in (its working directory): what the backend serves.
RUNNING = 'basename "$(readlink /proc/$(systemctl show -p MainPID --value sprint2-app)/cwd)"'


def pip_freeze(ssh, name: str) -> str:
    """The packages of the virtualenv `current` uses on backend `name`, read as the app user."""
    from tasks.backend.layout import LAYOUT
    from tasks.backend.lock import uv_env

    freeze = f"runuser -u sprint2 -- {uv_env(LAYOUT)} pip freeze --quiet --python {LAYOUT.venv}/bin/python 2>/dev/null"
    code, out = ssh(name, freeze)
    assert code == 0, f"{name}: pip freeze failed: {out}"
    return out


def sql(ssh, db: str, query: str) -> str:
    code, out = ssh(db, f'cd / && runuser -u postgres -- psql -X -d dispatch_db -tAc "{query}"')
    assert code == 0, out
    return out.strip()


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by a psql session on the db host: a populate that
    reaches its first write to that table waits there, mid-way, its earlier rows not yet committed."""

    def __init__(self, platform, ssh, table):
        self.platform, self.ssh, self.table = platform, ssh, table
        self.db = platform.names("db")[0]

    def __enter__(self):
        query = f"BEGIN; LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);"
        # A transient unit: the session outlives this ssh command, which returns at once.
        command = (
            f"systemd-run --quiet --collect --unit=e2e-table-lock --working-directory=/ "
            f'runuser -u postgres -- psql -X -d dispatch_db -c "{query}"'
        )
        assert self.ssh(self.db, command)[0] == 0
        self.wait_for(
            f"SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            f"WHERE c.relname = '{self.table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        )
        return self

    def wait_for(self, query, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sql(self.ssh, self.db, query) not in ("", "0"):
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for: {query}")

    def wait_for_a_blocked_writer(self):
        """Until the app's session waits on this lock: the populate is mid-way."""
        self.wait_for(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'dispatch_user' AND wait_event_type = 'Lock'"
        )

    def __exit__(self, *problem):
        self.ssh(self.db, "systemctl stop e2e-table-lock; true")
        sql(
            self.ssh,
            self.db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' "
            "AND pid <> pg_backend_pid()",
        )


def deploy_lock(ssh, db: str) -> dict:
    """Who holds the deploy lock on the db host: its host lock (flock) and PostgreSQL's advisory lock."""
    lock = f"{LOCK_FOLDER}/lock"
    code, out = ssh(
        db,
        f'if [ -e {lock} ] && ! flock -n {lock} true; then echo "host $(head -n 1 {LOCK_FOLDER}/holder)"; fi; '
        f"cd / && runuser -u postgres -- psql -X -At -d postgres -c {shlex.quote(holder_sql())} | sed 's/^/advisory /'",
    )
    assert code == 0, out
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {"host": found.get("host"), "advisory": found.get("advisory")}


class DeployLockHolder:
    """A session holding the deploy lock on the db host (stack/deploy_lock_scripts.py's script
    over this test's own ssh), as a run would; `place` as another provider would hold it."""

    def __init__(self, platform, db: str, line: str, place: LockPlace | None = None):
        argv = platform.ssh_argv(db, f"sh -c {shlex.quote(hold_script(line, place))}")
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.answer = self.process.stdout.readline().strip()

    def end(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=60)
