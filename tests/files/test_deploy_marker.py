"""files/deploy_marker.py with a recording stand-in for Django's connection (Django is a host-side
dependency): `get` only reads, so pyinfra --dry never writes to the app database."""

import runpy
import sys
import types

import pytest

from stack.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "files" / "deploy_marker.py"


class Database:
    """Answers the script's SQL like PostgreSQL would, and records it."""

    def __init__(self, table_exists: bool, rows: dict):
        self.table_exists, self.rows, self.statements = table_exists, rows, []

    def cursor(self):
        return Cursor(self)


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
            self.answer = (self.database.table_exists,)
        elif sql.startswith("SELECT value"):
            value = self.database.rows.get(parameters[0])
            self.answer = (value,) if value is not None else None
        elif sql.startswith("CREATE"):
            self.database.table_exists = True
        elif sql.startswith("INSERT"):
            self.database.rows[parameters[0]] = parameters[1]

    def fetchone(self):
        return self.answer


@pytest.fixture
def run(monkeypatch, capsys):
    def run(database, *arguments):
        django = types.ModuleType("django")
        django.setup = lambda: None
        db = types.ModuleType("django.db")
        db.connection = database
        monkeypatch.setitem(sys.modules, "django", django)
        monkeypatch.setitem(sys.modules, "django.db", db)
        monkeypatch.setattr(sys, "argv", [str(SCRIPT), *arguments])
        runpy.run_path(str(SCRIPT), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_get_without_the_table_prints_nothing_and_writes_nothing(run):
    database = Database(table_exists=False, rows={})
    assert run(database, "get", "setup") == ""
    assert database.statements == ["SELECT"] and not database.table_exists


def test_set_creates_the_table_then_get_reads_the_value(run):
    database = Database(table_exists=False, rows={})
    assert run(database, "set", "populated", "by-des-backend-a") == ""
    assert database.statements == ["CREATE", "INSERT"]
    database.statements.clear()
    assert run(database, "get", "populated") == "by-des-backend-a\n"
    assert database.statements == ["SELECT", "SELECT"]
    assert run(database, "get", "setup") == ""
