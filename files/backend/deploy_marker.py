"""The deploy's records in the application's database (installed by tasks/backend/deploy.py).

As the app (the run helper: the app user, the app's role, its Django settings, the release as
working directory):

    python deploy_marker.py list                    every marker as one JSON object
    python deploy_marker.py set NAME VALUE
    python deploy_marker.py once NAME 'python populate.py'
    python deploy_marker.py check-migrations [--allow-destructive] [--adopt-legacy]
    python deploy_marker.py adopt-legacy-migrations the history kept before issue 18, checked
                                                    (--adopt-legacy: first, in the same start)
    python deploy_marker.py setup-done COMMIT       the database is set up for COMMIT

As root, with the system's Python and psycopg2 only (no Django, no code of the app), for the
migration history that `makemigrations` generates (the app commits none):

    python3 -I deploy_marker.py save-migrations RELEASE CREDENTIALS USER
    python3 -I deploy_marker.py restore-migrations RELEASE CREDENTIALS USER

The history is code: whoever writes it runs Python as the app user on the setup backend (the
files are imported by makemigrations and migrate). So it is kept where the app's role can neither
write nor alter it: the table sprint2_deploy.migrations, in a schema owned by a deploy-only role
(tasks/db/history.py) whose password reaches only the setup backend, in a root-only file
(CREDENTIALS), for the duration of a setup. Root only talks to the database; every file is read
and written by a child running as the app USER (the release is the app's), and only files named
<app>/migrations/<NNNN>_<name>.py, each folder opened without following links.

Kept in the database, not on a backend, so that what ran once for a database (its populate
scripts) never runs again from another or a new backend, every backend agrees which commit the
database was migrated to, and the generated migration files outlive the backend that wrote them.
"""

import importlib
import json
import os
import re
import runpy
import shlex
import stat
import subprocess
import sys
import traceback

MARKERS = "sprint2_deploy_marker"
# The history before issue 18: in the public schema, the app role's to write. Never trusted.
LEGACY_MIGRATIONS = "sprint2_deploy_migrations"
HISTORY_SCHEMA = "sprint2_deploy"
HISTORY = f"{HISTORY_SCHEMA}.migrations"
# The marker saying the database's history is kept in HISTORY (tasks/backend/setup.py reads it).
HISTORY_MARKER = "history"
# pg_advisory_xact_lock key: one populate at a time, whichever backend runs it.
LOCK = 720_250_017
# The only files the history holds: a migration of an app at the release's top level.
MIGRATION_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}/migrations/[0-9]{4}_[A-Za-z0-9_]{1,100}\.py")
MAX_FILE = 1 << 20  # bytes a generated migration may have
MAX_FILES = 1000


def fail(message):
    """One line naming what is wrong, exit status 1 (SystemExit prints it to stderr)."""
    raise SystemExit(message)


# --- markers and populate scripts (as the app) ---------------------------------------------------


def table_exists(cursor, table):
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
    return cursor.fetchone()[0]


def create_tables(cursor):
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {MARKERS} ("
        "name varchar(64) PRIMARY KEY, value text NOT NULL, updated timestamptz NOT NULL DEFAULT now())"
    )


def markers(cursor):
    # Reads only (pyinfra --dry asks too): no table yet means no marker.
    if not table_exists(cursor, MARKERS):
        return {}
    cursor.execute(f"SELECT name, value FROM {MARKERS}")
    return dict(cursor.fetchall())


def read_markers():
    """The markers, read through psycopg2 with the deploy's own DATABASES entry (its settings
    module, tasks/backend/render.py) and no Django: ~0.07 s instead of ~0.27 s, asked on every
    deploy (issue 22). Through Django's connection when psycopg2 is not there (an app on psycopg 3)."""
    try:
        import psycopg2
    except ImportError:
        from django.db import connection

        with connection.cursor() as cursor:
            return markers(cursor)
    database = importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"]).DATABASES["default"]
    login = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST", "port": "PORT"}
    options = {key: database[name] for key, name in login.items() if database.get(name)}
    connection = psycopg2.connect(**options, **database.get("OPTIONS", {}))
    try:
        with connection.cursor() as cursor:
            return markers(cursor)
    finally:
        connection.close()


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
    from django.db import connection, transaction

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


def setup_done(commit):
    """The database is set up for `commit`, its history kept in HISTORY: the history of before
    (LEGACY_MIGRATIONS, adopted or ignored by now) is dropped, so it is never looked at again."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS public.{LEGACY_MIGRATIONS}")
        set_marker(cursor, HISTORY_MARKER, HISTORY)
        set_marker(cursor, "setup", commit)


# --- the history of before issue 18 (as the app) -------------------------------------------------

GENERATED_HEADER = re.compile(r"# Generated by Django [^\n]* on [^\n]*\n")


def without_header(text):
    """A migration file's text without makemigrations' first line (its Django version and time)."""
    match = GENERATED_HEADER.match(text)
    return text[match.end() :] if match else text


def legacy_mismatches(legacy, regenerated):
    """The paths where the old history (path -> text) and what makemigrations writes from no
    history at all (path -> text) differ, header lines aside: [] when they are the same files."""
    paths = sorted(set(legacy) | set(regenerated))
    return [path for path in paths if without_header(legacy.get(path, "")) != without_header(regenerated.get(path, ""))]


def regenerated_migrations():
    """path -> text of what `makemigrations --noinput` would write now, in this release."""
    from django.db.migrations.writer import MigrationWriter

    return {
        os.path.relpath(MigrationWriter(migration).path): MigrationWriter(migration).as_string()
        for migrations in autodetected_changes().values()
        for migration in migrations
    }


def adopt_legacy_migrations():
    """The database was set up by a deploy from before issue 18, which kept the history in the
    public schema, where the app's role can write: its rows are never written to disk. They are
    adopted only when they are exactly what makemigrations writes from no history here (then
    makemigrations writes those very files, and the next save keeps them); any other difference
    (a planted row, a second migration of an app, models changed since) stops the setup."""
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    with connection.cursor() as cursor:
        if not table_exists(cursor, f"public.{LEGACY_MIGRATIONS}"):
            return print("no history from before issue 18")
        if generated_files():
            # restore-migrations wrote the deploy-only history: the old table is not looked at.
            return print(f"public.{LEGACY_MIGRATIONS} ignored: the history is kept in {HISTORY}")
        if not MigrationRecorder(connection).applied_migrations():
            return print(f"public.{LEGACY_MIGRATIONS} ignored: nothing is migrated yet")
        cursor.execute(f"SELECT path, content FROM public.{LEGACY_MIGRATIONS}")
        legacy = dict(cursor.fetchall())
    differ = legacy_mismatches(legacy, regenerated_migrations())
    if differ:
        fail(
            f"the migration history kept by deploys before issue 18 (public.{LEGACY_MIGRATIONS}, which the "
            f"app's database role can write) is not what makemigrations writes here ({', '.join(differ[:5])}), so "
            "it is not used: deploy the commit the database was last set up with first (the history is adopted "
            f"then), or check the rows and copy them into {HISTORY} as the database superuser "
            "(docs/deploying.md: Migration history)"
        )
    print(f"public.{LEGACY_MIGRATIONS} adopted: {len(legacy)} files, the same as makemigrations writes")


# --- which migrations keep the data (as the app) -------------------------------------------------

# Operations that keep every row and column as they are. Matched by exact class (a subclass, such
# as contrib.postgres's AddIndexConcurrently, may do anything): index, constraint, option and
# comment changes (a constraint the rows break fails the migration, which PostgreSQL rolls back
# whole), new models. AddField and AlterField are judged field by field (added_field_keeps,
# altered_field_keeps). Everything else needs allow_destructive_migrations: RemoveField,
# DeleteModel, renames (of a field, a model, a table: the release still serving reads the old
# names), AlterOrderWithRespectTo, and the ones whose effect the check cannot see: RunSQL,
# RunPython, SeparateDatabaseAndState and any operation not of django.db.migrations.
KEEPS_DATA = {
    "CreateModel",
    "AddIndex",
    "RemoveIndex",
    "RenameIndex",
    "AddConstraint",
    "RemoveConstraint",
    "AlterUniqueTogether",
    "AlterIndexTogether",
    "AlterModelOptions",
    "AlterModelManagers",
    "AlterModelTableComment",
}
# Run code the check cannot read: never passed without the setting, even for an app new here.
RUNS_CODE = {"RunSQL", "RunPython", "SeparateDatabaseAndState"}
# Column types that hold every value of the type on the left.
WIDER = {
    ("SmallIntegerField", "IntegerField"),
    ("SmallIntegerField", "BigIntegerField"),
    ("IntegerField", "BigIntegerField"),
    ("PositiveSmallIntegerField", "PositiveIntegerField"),
    ("PositiveSmallIntegerField", "PositiveBigIntegerField"),
    ("PositiveIntegerField", "PositiveBigIntegerField"),
    ("PositiveSmallIntegerField", "SmallIntegerField"),
    ("PositiveSmallIntegerField", "IntegerField"),
    ("PositiveIntegerField", "IntegerField"),
    ("PositiveIntegerField", "BigIntegerField"),
    ("PositiveBigIntegerField", "BigIntegerField"),
    ("SmallAutoField", "AutoField"),
    ("SmallAutoField", "BigAutoField"),
    ("AutoField", "BigAutoField"),
    ("CharField", "TextField"),
}


def django_operation(operation):
    return type(operation).__module__.startswith("django.db.migrations.operations.")


def added_field_keeps(field):
    """A new column the existing rows can have: nullable, with a default, or a many-to-many table."""
    from django.db.models import NOT_PROVIDED

    return bool(
        field.null
        or field.has_default()
        or field.many_to_many
        or getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
    )


def _related(field):
    remote = getattr(field, "remote_field", None)
    if remote is None:
        return None
    model = remote.model if isinstance(remote.model, str) else remote.model._meta.label
    return model.lower(), getattr(remote, "field_name", None)


def altered_field_keeps(old, new):
    """Whether the column of `new` holds every value `old` holds: the same column (name, key),
    no NOT NULL added, a type at least as wide (same type or WIDER; lengths, digits and decimal
    places not smaller; a foreign key to the same model)."""
    if old is None:
        return False
    if (old.null and not new.null) or old.db_column != new.db_column or old.primary_key != new.primary_key:
        return False
    before, after = old.get_internal_type(), new.get_internal_type()
    if before != after and (before, after) not in WIDER:
        return False
    if _related(old) != _related(new):
        return False
    if before == after and old.max_length is not None and (new.max_length or float("inf")) < old.max_length:
        return False
    if before == after and old.max_length is None and new.max_length is not None and before != "ForeignKey":
        return False
    if before == after == "DecimalField":
        old_whole, new_whole = old.max_digits - old.decimal_places, new.max_digits - new.decimal_places
        if new.decimal_places < old.decimal_places or new_whole < old_whole:
            return False
    return True


def operation_keeps_data(operation, app, state):
    """Whether `operation` (of `app`, on the project `state` just before it) keeps the data."""
    name = type(operation).__name__
    if not django_operation(operation):
        return False
    if name in KEEPS_DATA:
        return True
    if name == "AddField":
        return added_field_keeps(operation.field)
    if name == "AlterField":
        model = state.models.get((app, operation.model_name_lower))
        old = dict(model.fields).get(operation.name) if model else None
        return altered_field_keeps(old, operation.field)
    return False


def losses(migrations, state, migrated_apps, anything_migrated):
    """'app.name: description' of each operation of `migrations` ([(app, name, operations)], in
    the order they apply, from `state`) that is not known to keep the data. On a database with
    nothing migrated nothing can be lost; an app with nothing migrated has no tables to lose, but
    code it runs (RunPython, RunSQL) can reach any table."""
    found = []
    for app, name, operations in migrations:
        for operation in operations:
            new_app = app not in migrated_apps and django_operation(operation)
            if not anything_migrated or (new_app and type(operation).__name__ not in RUNS_CODE):
                pass
            elif not operation_keeps_data(operation, app, state):
                found.append(f"{app}.{name}: {operation.describe()}")
            operation.state_forwards(app, state)
    return found


def pending_migrations(loader):
    plan = []
    for leaf in loader.graph.leaf_nodes():
        for key in loader.graph.forwards_plan(leaf):
            if key not in loader.applied_migrations and key not in plan:
                plan.append(key)
    return plan


def autodetected_changes(loader=None):
    """{app: [Migration]} that `makemigrations --noinput` would write now (none when it would
    stop, e.g. for a new non-nullable field without a default: makemigrations then fails itself)."""
    from django.apps import apps
    from django.db.migrations.autodetector import MigrationAutodetector
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.questioner import NonInteractiveMigrationQuestioner
    from django.db.migrations.state import ProjectState

    loader = loader or MigrationLoader(None, ignore_no_migrations=True)
    questioner = NonInteractiveMigrationQuestioner(specified_apps=None, dry_run=True, verbosity=0)
    detector = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps), questioner)
    try:
        return detector.changes(graph=loader.graph)
    except SystemExit:
        return {}


def migration_losses(connection):
    """What check_migrations refuses: the migrations not applied yet (written, then those
    makemigrations would write), each operation judged on the models as they are just before it."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    migrated_apps = {app for app, _ in loader.applied_migrations}
    pending = pending_migrations(loader)
    found = []
    for app, name in pending:
        state = loader.project_state((app, name), at_end=False)
        operations = loader.graph.nodes[(app, name)].operations
        found += losses([(app, name, operations)], state, migrated_apps, bool(migrated_apps))
    state = loader.project_state()
    made = [
        (app, f"{migration.name} (to be made by makemigrations)", migration.operations)
        for app, migrations in autodetected_changes(loader).items()
        for migration in migrations
    ]
    found += losses(made, state, migrated_apps, bool(migrated_apps))
    return len(pending) + len(made), found


def check_migrations(allow_destructive):
    """Refuse, before anything is applied, migrations not known to keep the data (KEEPS_DATA):
    run before every setup command, whatever it is (a `sh -c '... migrate'` too), and it also
    judges what makemigrations would write, so a command that makes and applies them at once is
    judged before it runs."""
    from django.db import connection

    count, found = migration_losses(connection)
    if found and not allow_destructive:
        fail(
            f"the new migrations are not known to keep the data ({'; '.join(found)}): makemigrations --noinput "
            "turns a renamed field into a removal plus an addition; check them, commit migrations in the app "
            "that keep the data, start from an empty database, or set allow_destructive_migrations: true"
        )
    print(f"{count} migrations to apply" + (f", allowed to lose data: {'; '.join(found)}" if found else ""))


# --- the migration history (as root; its files as the app user) ----------------------------------


def generated_files():
    """Migration files in this checkout that git does not track: the ones makemigrations wrote."""
    listed = subprocess.run(
        ["git", "ls-files", "--others", "-z", "--", "*/migrations/*.py"], check=True, stdout=subprocess.PIPE
    ).stdout.decode()
    return sorted(path for path in listed.split("\0") if path)


def open_folder(release_fd, path):
    """The folder of `path` (app/migrations), opened below the release without following a link;
    None when it is not there (an app that does not exist at this commit)."""
    folder_fd = release_fd
    for part in path.split("/")[:-1]:
        try:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
        except OSError as error:  # ENOTDIR or ELOOP for a link, ENOENT for nothing there
            if os.path.islink(os.path.join(f"/proc/self/fd/{folder_fd}", part)):
                fail(f"{path}: {part} is a link: its folders must be real folders of the release, not links")
            if isinstance(error, (FileNotFoundError, NotADirectoryError)):
                return None
            raise
        if folder_fd != release_fd:
            os.close(folder_fd)
        folder_fd = next_fd
    return folder_fd


def read_generated(release):
    """{path: text} of the generated migration files (as the app user), size-capped, no link followed."""
    os.chdir(release)
    files = {}
    release_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    for path in [path for path in generated_files() if MIGRATION_PATH.fullmatch(path)][:MAX_FILES]:
        folder_fd = open_folder(release_fd, path)
        if folder_fd is None:
            continue
        try:
            fd = os.open(os.path.basename(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
        except OSError as error:
            fail(f"{path}: {error.strerror}: a generated migration must be a plain file")
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                fail(f"{path}: not a plain file")
            content = handle.read(MAX_FILE + 1)
        os.close(folder_fd)
        if len(content) > MAX_FILE:
            fail(f"{path}: larger than {MAX_FILE} bytes: not a migration makemigrations wrote")
        files[path] = content.decode("utf-8")
    return files


def write_saved(release, saved):
    """Make the release's generated migration files the saved set (as the app user): remove the
    other generated ones (of a database that was dropped, say), write each saved file created
    anew (O_EXCL, no link followed), never over a file the app tracks."""
    os.chdir(release)
    release_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    generated = set(generated_files())
    for path in sorted(generated - set(saved)):
        if MIGRATION_PATH.fullmatch(path):
            folder_fd = open_folder(release_fd, path)
            if folder_fd is not None:
                os.unlink(os.path.basename(path), dir_fd=folder_fd)
                os.close(folder_fd)
    for path, content in sorted(saved.items()):
        folder_fd = open_folder(release_fd, path)
        if folder_fd is None:
            continue  # an app that no longer exists at this commit
        name = os.path.basename(path)
        try:
            os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            if path not in generated:
                continue  # the app tracks this file: its own wins
            os.unlink(name, dir_fd=folder_fd)
        except FileNotFoundError:
            pass
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder_fd)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.close(folder_fd)


def as_app_user(user, action, release, data=None):
    """Run this script's `action` on `release` in a child as `user` (no supplementary groups, a
    clean environment): JSON in on stdin, JSON out on stdout; its one-line failure is ours."""
    import pwd

    account = pwd.getpwnam(user)
    child = subprocess.run(
        [sys.executable, "-I", os.path.abspath(__file__), action, release],
        input=json.dumps(data).encode(),
        capture_output=True,
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": account.pw_dir, "LANG": "C.UTF-8"},
    )
    if child.returncode != 0:
        lines = child.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        fail(lines[-1])
    return json.loads(child.stdout or b"null")


def valid_saved(saved):
    """The saved set as rows of the deploy-only table: only migration paths (anything else means
    someone wrote into it besides the deploy: stop)."""
    bad = sorted(path for path in saved if not MIGRATION_PATH.fullmatch(path))
    if bad:
        fail(f"{HISTORY} holds files that are not migrations ({', '.join(bad[:3])}): the deploy never writes such rows")
    return saved


def connect(credentials):
    """A connection as the deploy-only role, its session's settings fixed before any statement:
    the app's role owns the database and can give it settings (ALTER DATABASE ... SET)."""
    try:
        import psycopg2
    except ImportError:
        fail("python3-psycopg2 is not installed on this backend (the deploy installs it)")
    with open(credentials, encoding="utf-8") as handle:
        login = json.load(handle)
    try:
        connection = psycopg2.connect(
            host=login["host"],
            port=login["port"],
            dbname=login["dbname"],
            user=login["user"],
            password=login["password"],
            connect_timeout=10,
            application_name="sprint2-deploy-history",
            options="-c search_path=pg_catalog",
            # A managed database: TLS, its certificate checked against the CA bundle (tasks/rds).
            **{key: login[key] for key in ("sslmode", "sslrootcert") if key in login},
        )
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE; SET search_path = pg_catalog; SELECT current_user")
            (who,) = cursor.fetchone()
    except psycopg2.Error as error:
        fail(f"cannot reach {HISTORY} as {login['user']}: {str(error).strip().splitlines()[0]}")
    if who != login["user"]:
        fail(f"the history's session runs as {who}, not {login['user']}")
    return connection, login


def history_table(cursor, role, database):
    """Make the schema and its table, owned by `role`; refuse a schema someone else made first
    (the app's role may create schemas in its database)."""
    cursor.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", [HISTORY_SCHEMA])
    owner = cursor.fetchone()
    if owner is None:
        cursor.execute(f"CREATE SCHEMA {HISTORY_SCHEMA}")
    elif owner[0] != role:
        fail(
            f"the schema {HISTORY_SCHEMA} in {database} belongs to {owner[0]}, not {role}: the deploy did not make "
            f"it; look at what it holds, drop it as the database superuser (DROP SCHEMA {HISTORY_SCHEMA} CASCADE) "
            "and deploy again"
        )
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {HISTORY} ("
        "path text PRIMARY KEY, content text NOT NULL, updated timestamptz NOT NULL DEFAULT now())"
    )


def history(action, release, credentials, user):
    """save-migrations / restore-migrations, as root: the database side here, the files in a child."""
    saving = action == "save-migrations"
    files = valid_saved(as_app_user(user, "read-generated", release)) if saving else {}
    saved: dict = {}
    connection, login = connect(credentials)
    import psycopg2  # there: connect() said so in one line otherwise

    try:
        with connection, connection.cursor() as cursor:
            history_table(cursor, login["user"], login["dbname"])
            if saving:
                for path, content in sorted(files.items()):
                    cursor.execute(
                        f"INSERT INTO {HISTORY} (path, content) VALUES (%s, %s) ON CONFLICT (path) "
                        "DO UPDATE SET content = EXCLUDED.content, updated = now() "
                        f"WHERE {HISTORY}.content IS DISTINCT FROM EXCLUDED.content",
                        [path, content],
                    )
            else:
                cursor.execute(f"SELECT path, content FROM {HISTORY} ORDER BY path")
                saved = valid_saved(dict(cursor.fetchall()))
    except psycopg2.Error as error:
        fail(f"{HISTORY}: {str(error).strip().splitlines()[0]}")
    finally:
        connection.close()
    if not saving:
        as_app_user(user, "write-saved", release, saved)


# --- entry points -------------------------------------------------------------------------------


def child(action, release):
    """The app user's half of save/restore: JSON on stdin, JSON on stdout."""
    data = json.loads(sys.stdin.read() or "null")
    if action == "read-generated":
        print(json.dumps(read_generated(release)))
    else:
        write_saved(release, {path: text for path, text in data.items() if MIGRATION_PATH.fullmatch(path)})
        print("null")


ROOT_ACTIONS = ("save-migrations", "restore-migrations")
CHILD_ACTIONS = ("read-generated", "write-saved")


def main(arguments):
    action = arguments[0] if arguments else ""
    if action in ROOT_ACTIONS and len(arguments) == 4:
        return history(action, *arguments[1:])
    if action in CHILD_ACTIONS and len(arguments) == 2:
        return child(action, arguments[1])
    if action == "list":
        return print(json.dumps(read_markers(), sort_keys=True))
    import django
    from django.db import connection

    if action not in ("set", "setup-done"):
        # These write the deploy's own tables through the connection alone (loading every app
        # and model costs ~0.15 s); the others run the app's own code (populate scripts, migrations).
        django.setup()
    if action == "set":
        with connection.cursor() as cursor:
            set_marker(cursor, arguments[1], arguments[2])
    elif action == "once":
        once(arguments[1], arguments[2])
    elif action == "check-migrations":
        # One start of Django for both (each costs ~0.35 s of a setup).
        if "--adopt-legacy" in arguments[1:]:
            adopt_legacy_migrations()
        check_migrations("--allow-destructive" in arguments[1:])
    elif action == "adopt-legacy-migrations":
        adopt_legacy_migrations()
    elif action == "setup-done":
        setup_done(arguments[1])
    else:
        fail(
            f"unknown action {action!r}: expected list, set, once, check-migrations, adopt-legacy-migrations, "
            "setup-done, or (as root) save-migrations / restore-migrations RELEASE CREDENTIALS USER"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
