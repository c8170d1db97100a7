"""The deploy's records in the application's database (installed by tasks/backend/deploy.py).

    python deploy_marker.py list                    every marker as one JSON object
    python deploy_marker.py set NAME VALUE
    python deploy_marker.py once NAME 'python populate.py'
    python deploy_marker.py save-migrations         generated migration files -> database
    python deploy_marker.py restore-migrations      database -> this checkout's migration folders
    python deploy_marker.py check-migrations [--allow-destructive]

Kept in the database, not on a backend, so that what ran once for a database (its populate
scripts) never runs again from another or a new backend, every backend agrees which commit the
database was migrated to, and the migration files `makemigrations` generated (the app commits none)
outlive the backend that wrote them. Run by the run helper: the deploy's Django settings, the
checkout as working directory.
"""

import json
import os
import runpy
import shlex
import subprocess
import sys
import traceback

import django
from django.db import connection, transaction

MARKERS = "sprint2_deploy_marker"
MIGRATIONS = "sprint2_deploy_migrations"
# pg_advisory_xact_lock key: one populate (or migrations save) at a time, whichever backend runs it.
LOCK = 720_250_017
# Operations that lose data that exists (a rename is not one: it keeps the column).
DESTRUCTIVE = ("RemoveField", "DeleteModel")


def table_exists(cursor, table):
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return cursor.fetchone()[0]


def create_tables(cursor):
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {MARKERS} ("
        "name varchar(64) PRIMARY KEY, value text NOT NULL, updated timestamptz NOT NULL DEFAULT now())"
    )
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS} ("
        "path text PRIMARY KEY, content text NOT NULL, updated timestamptz NOT NULL DEFAULT now())"
    )


def markers(cursor):
    # Reads only (pyinfra --dry asks too): no table yet means no marker.
    if not table_exists(cursor, MARKERS):
        return {}
    cursor.execute(f"SELECT name, value FROM {MARKERS}")
    return dict(cursor.fetchall())


def set_marker(cursor, name, value):
    create_tables(cursor)
    cursor.execute(
        f"INSERT INTO {MARKERS} (name, value) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated = now()",
        [name, value],
    )


def run_python(command):
    """Run `python FILE [ARGS]` in this process, so that its writes join the caller's transaction."""
    words = shlex.split(command)
    if len(words) < 2 or words[0] not in ("python", "python3"):
        raise SystemExit(f"{command!r}: expected 'python FILE [ARGUMENTS]'")
    path = os.path.abspath(words[1])
    saved = sys.argv, sys.path[:]
    sys.argv, sys.path[:0] = words[1:], [os.path.dirname(path)]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise RuntimeError(f"exited with {stop.code}") from None
    finally:
        sys.argv, sys.path[:] = saved


def once(name, command):
    """Run `command` unless its marker exists: the script's writes and the marker commit together,
    or neither does (an interrupted run, a killed process or a rebooted host leaves nothing)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Waits for a run still going on (e.g. left behind by a killed deploy), then sees its marker.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
            create_tables(cursor)
            done = markers(cursor)
            if name in done:
                print(f"already done: {command} ({done[name]})")
                return
            run_python(command)
            set_marker(cursor, name, command)
    except Exception as error:  # the script's own failure: its traceback, then one line naming it
        traceback.print_exc()
        reason = str(error).strip().splitlines()[-1:] or [""]
        raise SystemExit(f"{command} failed: {type(error).__name__}: {reason[0]}; nothing it wrote was kept") from error


def generated_files():
    """Migration files in this checkout that git does not track: the ones makemigrations wrote."""
    listed = subprocess.run(
        ["git", "ls-files", "--others", "-z", "--", "*/migrations/*.py"], check=True, stdout=subprocess.PIPE
    ).stdout.decode()
    return sorted(path for path in listed.split("\0") if path)


def save_migrations():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        create_tables(cursor)
        for path in generated_files():
            with open(path, encoding="utf-8") as handle:
                cursor.execute(
                    f"INSERT INTO {MIGRATIONS} (path, content) VALUES (%s, %s) ON CONFLICT (path) "
                    "DO UPDATE SET content = EXCLUDED.content, updated = now()",
                    [path, handle.read()],
                )


def restore_migrations():
    """Make this checkout's generated migration files the database's saved set: write each saved
    file (never over a file the app tracks) and remove the other generated ones, such as those of
    a database that was dropped. A database that holds migrations but no saved set (deployed before
    the set was kept) keeps the checkout's files: the next save records them."""
    with connection.cursor() as cursor:
        if table_exists(cursor, MIGRATIONS):
            cursor.execute(f"SELECT path, content FROM {MIGRATIONS} ORDER BY path")
            saved = dict(cursor.fetchall())
        elif table_exists(cursor, "django_migrations"):
            return
        else:
            saved = {}
    generated = set(generated_files())
    for path in generated - set(saved):
        os.remove(path)
    for path, content in saved.items():
        if os.path.isabs(path) or ".." in path.split("/") or not os.path.isdir(os.path.dirname(path)):
            continue  # an app that no longer exists at this commit
        if os.path.exists(path) and path not in generated:
            continue
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)


def pending_migrations(loader):
    plan = []
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key not in loader.applied_migrations and key not in plan:
                plan.append(key)
    return plan


def check_migrations(allow_destructive):
    """Refuse unapplied migrations that drop a field or a model of an app whose tables exist
    (the data there would be lost); an app never migrated yet has nothing to lose."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    migrated_apps = {app for app, _ in loader.applied_migrations}
    pending = pending_migrations(loader)
    losses = [
        f"{app}.{name}: {operation.describe()}"
        for app, name in pending
        if app in migrated_apps
        for operation in loader.graph.nodes[(app, name)].operations
        if type(operation).__name__ in DESTRUCTIVE
    ]
    if losses and not allow_destructive:
        raise SystemExit(
            f"the new migrations would drop data ({'; '.join(losses)}): makemigrations --noinput turns a renamed "
            "field into a removal plus an addition; commit migrations in the app (RenameField), start from an "
            "empty database, or set allow_destructive_migrations: true"
        )
    print(
        f"{len(pending)} migrations to apply"
        + (f", dropping data as allowed: {'; '.join(losses)}" if losses else ", none drops data")
    )


def main(arguments):
    action = arguments[0] if arguments else ""
    if action != "list":
        # `list` reads one table through the connection alone: without loading every app and
        # model it takes ~0.25 s instead of ~0.4 s, on every deploy (issue 12). The others run
        # the app's own code (populate scripts, migrations), which needs them.
        django.setup()
    if action == "list":
        with connection.cursor() as cursor:
            print(json.dumps(markers(cursor), sort_keys=True))
    elif action == "set":
        with connection.cursor() as cursor:
            set_marker(cursor, arguments[1], arguments[2])
    elif action == "once":
        once(arguments[1], arguments[2])
    elif action == "save-migrations":
        save_migrations()
    elif action == "restore-migrations":
        restore_migrations()
    elif action == "check-migrations":
        check_migrations("--allow-destructive" in arguments[1:])
    else:
        raise SystemExit(
            f"unknown action {action!r}: expected list, set, once, save-migrations, "
            "restore-migrations or check-migrations"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
