"""files/backend/deploy_marker.py with a recording stand-in for Django's connection and transactions (Django
is a host-side dependency): `list` only reads, so pyinfra --dry never writes to the app database;
`once` keeps a script's writes and its marker together or neither. The real thing (PostgreSQL,
the real app, interrupted runs) is exercised by tests/e2e/test_real_app.py."""

import contextlib
import json
import re
import runpy
import sys
import types

import pytest

from stack.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "files" / "backend" / "deploy_marker.py"


class Database:
    """Answers the script's SQL like PostgreSQL would, and records it; writes made inside a
    transaction that fails are rolled back."""

    def __init__(self, table_exists: bool, rows: dict):
        self.table_exists, self.rows, self.statements = table_exists, rows, []
        self.django_setups, self.logins, self.closed = 0, [], 0

    def connect(self, **login):
        """psycopg2.connect: this database, logged in with `login`."""
        self.logins.append(login)
        return types.SimpleNamespace(cursor=self.cursor, close=lambda: setattr(self, "closed", self.closed + 1))

    def cursor(self):
        return Cursor(self)

    @contextlib.contextmanager
    def atomic(self):
        saved = dict(self.rows), self.table_exists
        self.statements.append("BEGIN")
        try:
            yield
        except BaseException:
            self.rows, self.table_exists = saved[0], saved[1]
            self.statements.append("ROLLBACK")
            raise
        self.statements.append("COMMIT")


class Cursor:
    def __init__(self, database):
        self.database, self.answer = database, None

    def __enter__(self):
        return self

    def __exit__(self, *problem):
        return False

    def execute(self, sql, parameters=()):
        self.database.statements.append(sql.split()[0].upper())
        if "to_regclass" in sql:
            self.answer = [(self.database.table_exists,)]
        elif sql.startswith("SELECT name, value"):
            self.answer = list(self.database.rows.items())
        elif sql.startswith("CREATE"):
            self.database.table_exists = True
        elif sql.startswith("INSERT"):
            self.database.rows[parameters[0]] = parameters[1]
        elif "pg_advisory_xact_lock" in sql:
            self.answer = [(None,)]

    def fetchone(self):
        return self.answer[0] if self.answer else None

    def fetchall(self):
        return self.answer


# The deploy's DATABASES entry (templates/backend/deploy_settings.py.j2), as a managed database has it.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "dispatch_db",
        "USER": "dispatch_user",
        "PASSWORD": "from-the-environment",
        "HOST": "10.0.0.10",
        "PORT": "5432",
        "OPTIONS": {"sslmode": "verify-full", "sslrootcert": "/etc/sprint2/database-ca.pem"},
        "CONN_MAX_AGE": 0,
    }
}


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    def run(database, *arguments, psycopg2=True):
        django = types.ModuleType("django")
        django.setup = lambda: setattr(database, "django_setups", database.django_setups + 1)
        db = types.ModuleType("django.db")
        db.connection = database
        db.transaction = types.SimpleNamespace(atomic=database.atomic)
        monkeypatch.setitem(sys.modules, "django", django)
        monkeypatch.setitem(sys.modules, "django.db", db)
        driver = types.ModuleType("psycopg2")
        driver.connect = database.connect
        monkeypatch.setitem(sys.modules, "psycopg2", driver if psycopg2 else None)  # None: ImportError
        settings = types.ModuleType("deploy_settings")
        settings.DATABASES = DATABASES
        monkeypatch.setitem(sys.modules, "deploy_settings", settings)
        monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "deploy_settings")
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *arguments])
        monkeypatch.chdir(tmp_path)
        runpy.run_path(str(SCRIPT), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_list_without_the_table_prints_no_marker_and_writes_nothing(run):
    database = Database(table_exists=False, rows={})
    assert json.loads(run(database, "list")) == {}
    assert database.statements == ["SELECT"] and not database.table_exists


def test_set_creates_the_table_then_list_reads_every_marker_at_once(run):
    database = Database(table_exists=False, rows={})
    assert run(database, "set", "setup", "abc") == ""
    assert database.statements == ["CREATE", "INSERT"]
    database.statements.clear()
    assert json.loads(run(database, "list")) == {"setup": "abc"}
    assert database.statements == ["SELECT", "SELECT"]


def test_list_logs_in_with_the_deploys_own_database_entry_through_psycopg2_alone(run):
    database = Database(table_exists=True, rows={"setup": "abc"})
    assert json.loads(run(database, "list")) == {"setup": "abc"}
    assert database.logins == [
        {
            "dbname": "dispatch_db",
            "user": "dispatch_user",
            "password": "from-the-environment",
            "host": "10.0.0.10",
            "port": "5432",
            "sslmode": "verify-full",
            "sslrootcert": "/etc/sprint2/database-ca.pem",
        }
    ]
    assert database.closed == 1


def test_list_goes_through_django_where_psycopg2_is_not_installed(run):
    database = Database(table_exists=True, rows={"setup": "abc"})
    assert json.loads(run(database, "list", psycopg2=False)) == {"setup": "abc"}
    assert database.logins == [] and database.django_setups == 0


def test_only_the_deploys_own_tables_are_read_and_written_without_loading_the_apps(run, tmp_path):
    database = Database(table_exists=True, rows={"setup": "abc"})
    run(database, "list")
    run(database, "set", "setup", "def")
    run(database, "setup-done", "def")
    assert database.django_setups == 0
    script(tmp_path, POPULATE)
    run(database, "once", "populate:1", "python populate.py")
    assert database.django_setups == 1  # the app's own code runs: its apps are loaded first


def script(tmp_path, text):
    (tmp_path / "populate.py").write_text(text)


POPULATE = (
    "import sys\n"
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    "    cursor.execute('INSERT INTO pedidos', ['row', sys.argv[1:]])\n"
)


def test_once_runs_the_script_and_writes_its_marker_in_one_transaction(run, tmp_path):
    script(tmp_path, POPULATE)
    database = Database(table_exists=True, rows={})
    run(database, "once", "populate:1", "python populate.py --fast")
    assert database.rows == {"row": ["--fast"], "populate:1": "python populate.py --fast"}
    assert database.statements[0] == "BEGIN" and database.statements[-1] == "COMMIT"
    assert database.statements.count("BEGIN") == 1  # the script's INSERT and the marker's: one transaction
    assert "SELECT" in database.statements[:3]  # the advisory lock before anything is read


def test_once_with_its_marker_present_runs_nothing(run, tmp_path):
    script(tmp_path, "raise SystemExit('must not run')\n")
    database = Database(table_exists=True, rows={"populate:1": "python populate.py"})
    assert "already done: python populate.py" in run(database, "once", "populate:1", "python populate.py")


def test_a_failing_script_leaves_neither_its_rows_nor_its_marker_and_says_why_in_one_line(run, tmp_path, capsys):
    script(tmp_path, POPULATE + "raise KeyError('estado')\n")
    database = Database(table_exists=True, rows={})
    with pytest.raises(SystemExit) as stopped:
        run(database, "once", "populate:1", "python populate.py")
    assert str(stopped.value) == "python populate.py failed: KeyError: 'estado'; nothing it wrote was kept"
    assert database.rows == {} and database.statements[-1] == "ROLLBACK"
    assert "Traceback" in capsys.readouterr().err  # the whole story goes to the deploy log, above the line


def test_a_script_exiting_non_zero_is_a_failure_and_exit_0_a_success(run, tmp_path):
    script(tmp_path, "import sys\nsys.exit(3)\n")
    database = Database(table_exists=True, rows={})
    with pytest.raises(SystemExit, match=re.escape("python populate.py failed: RuntimeError: exited with 3")):
        run(database, "once", "populate:1", "python populate.py")
    script(tmp_path, "import sys\nsys.exit(0)\n")
    run(database, "once", "populate:1", "python populate.py")
    assert database.rows == {"populate:1": "python populate.py"}
