"""Issue 18, parts 4 and 7: the migration history is not code the app's database role can write, and
the destructive-migration check cannot be stepped around.

The attacker holds what a SQL injection (or code execution) in the app gives: the app's role
`dispatch_user`. Here that SQL goes through the app's own Django connection on a backend (the run
helper, as the app user), as the app would send it. Planted rows name `./sitecustomize.py`, a
`.pth` file through the release's `.venv` link into the shared virtualenv, and a migration-looking
file with code at its top: each would create a file under /srv/sprint2 if it ever ran. A normal
deploy of a new commit must write none of them and run none of them.
"""

import json
import re

import pytest

from tests.e2e.host_checks import RUNNING
from tests.e2e.local_platform import deploy_ok

pytestmark = pytest.mark.e2e

RUN = "/usr/local/sbin/sprint2-run --quiet"
HOME = "/srv/sprint2"
PLANTED = {
    "sitecustomize": f"{HOME}/planted-sitecustomize",
    "pth": f"{HOME}/planted-pth",
    "migration": f"{HOME}/planted-migration",
}
MIGRATION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*/migrations/[0-9]{4}_[A-Za-z0-9_]+[.]py")
PLANTED_MIGRATION = f"""\
open({PLANTED["migration"]!r}, "w").write("ran")
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("pedidos", "0001_initial")]
    operations = []
"""


def as_app_role(ssh, backend: str, script: str) -> tuple[int, str]:
    """Run `script` (Python, with `cursor` on the app's own database connection) as the app user on
    `backend`: what code execution in the app, or SQL injection through it, can do."""
    program = "from django.db import connection\nwith connection.cursor() as cursor:\n" + "".join(
        f"    {line}\n" for line in script.splitlines()
    )
    assert ssh(backend, f"cat > /tmp/attack.py <<'EOF'\n{program}EOF\nchmod 644 /tmp/attack.py")[0] == 0
    return ssh(backend, f"{RUN} 'python manage.py shell < /tmp/attack.py' 2>&1")


def planted_traces(ssh, backend: str) -> str:
    """Every planted file and every file the planted code would have made, as `ls` lists them."""
    names = " ".join(PLANTED.values())
    patterns = (
        f"{names} {HOME}/releases/*/sitecustomize.py {HOME}/venvs/*/lib/python3*/site-packages/zz_planted.pth "
        f"{HOME}/releases/*/pedidos/migrations/0002_planted.py"
    )
    return ssh(backend, f"ls -d {patterns} 2>/dev/null; true")[1].strip()


def test_migration_rows_planted_by_the_app_role_are_never_written_or_run(platform, run_deploy, app_repo, deployed, ssh):
    backends = platform.names("backend")
    setup = backends[0]
    python = ssh(setup, f"ls {HOME}/current/.venv/lib/")[1].split()[0]  # python3.11 on Debian 12
    rows = {
        "sitecustomize.py": f"open({PLANTED['sitecustomize']!r}, 'w').write('ran')\n",
        f".venv/lib/{python}/site-packages/zz_planted.pth": (
            f"import os; open({PLANTED['pth']!r}, 'w').write('ran')\n"
        ),
        "pedidos/migrations/0002_planted.py": PLANTED_MIGRATION,
    }
    # The table deploys before this change kept the history in (public, the app role's): made if
    # it is not there, as the attacker can.
    inserts = "".join(
        f"cursor.execute('INSERT INTO sprint2_deploy_migrations (path, content) VALUES (%s, %s) "
        f"ON CONFLICT (path) DO UPDATE SET content = EXCLUDED.content', [{path!r}, {content!r}])\n"
        for path, content in rows.items()
    )
    code, out = as_app_role(
        ssh,
        setup,
        "cursor.execute('SELECT current_user')\n"
        "assert cursor.fetchone()[0] == 'dispatch_user'\n"
        "cursor.execute('CREATE TABLE IF NOT EXISTS sprint2_deploy_migrations (path text PRIMARY KEY, "
        "content text NOT NULL, updated timestamptz NOT NULL DEFAULT now())')\n" + inserts,
    )
    assert code == 0, out
    views = (app_repo.work / "despachos" / "views.py").read_text()
    sha = app_repo.push_commit("views: a comment", {"despachos/views.py": views + "\n# planted rows test\n"})
    try:
        result = run_deploy()
        # Kong's image cannot be pulled here: the Kong host fails whatever happens.
        failed = [name for name in result.failed_hosts if name not in platform.names("kong")]
        refused = [line for line in result.stderr.splitlines() if "sprint2_deploy_migrations" in line]
        assert not failed or len(refused) == 1, result.output[-4000:]
        for name in backends:
            assert planted_traces(ssh, name) == "", f"{name}: planted files written or run"
            # The deploy-only role's login was on the setup backend only while the setup ran.
            assert "migration-history.json" not in ssh(name, "ls /etc/sprint2/")[1].split(), name
            if not failed:
                assert ssh(name, RUNNING)[1].strip() == sha
    finally:
        as_app_role(ssh, setup, "cursor.execute('DROP TABLE IF EXISTS sprint2_deploy_migrations')")
        for name in backends:
            ssh(
                name,
                f"rm -f {' '.join(PLANTED.values())} {HOME}/releases/*/sitecustomize.py "
                f"{HOME}/venvs/*/lib/python3*/site-packages/zz_planted.pth "
                f"{HOME}/releases/*/pedidos/migrations/0002_planted.py; true",
            )
    deploy_ok(platform, run_deploy)


def test_the_app_role_can_neither_write_nor_take_over_the_migration_history(platform, deployed, ssh):
    setup = platform.names("backend")[0]
    for statement in (
        "INSERT INTO sprint2_deploy.migrations (path, content) VALUES ('sitecustomize.py', 'x')",
        "UPDATE sprint2_deploy.migrations SET content = 'x'",
        "CREATE TABLE sprint2_deploy.planted (x int)",
        "ALTER SCHEMA sprint2_deploy OWNER TO dispatch_user",
        "DROP SCHEMA sprint2_deploy CASCADE",
    ):
        code, out = as_app_role(ssh, setup, f"cursor.execute({statement!r})")
        assert code != 0 and ("permission denied" in out or "must be owner" in out), f"{statement}: {out[-600:]}"


def history_rows(ssh, db: str) -> dict[str, str]:
    out = ssh(
        db,
        "cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "
        '"SELECT json_object_agg(path, content) FROM sprint2_deploy.migrations"',
    )[1]
    return json.loads(out.strip() or "null") or {}


def without_headers(files: dict[str, str]) -> dict[str, str]:
    """makemigrations' first line names its Django version and the time it ran."""
    return {path: re.sub(r"\A# Generated by Django .*\n", "", text) for path, text in files.items()}


def test_the_history_of_before_is_adopted_only_when_makemigrations_writes_the_same(platform, run_deploy, deployed, ssh):
    """A database set up before this change: its history in the app role's public table, no
    deploy-only schema, no history marker. A planted extra row: refused in one line, nothing
    written or run; without it, the next deploy (same commit) adopts the rows and drops the table."""
    backends = platform.names("backend")
    setup = backends[0]
    (db,) = platform.names("db")
    kept = history_rows(ssh, db)
    assert kept and all(MIGRATION.fullmatch(path) for path in kept), kept
    rows = {**kept, "pedidos/migrations/0002_planted.py": PLANTED_MIGRATION}
    inserts = "".join(
        f"cursor.execute('INSERT INTO sprint2_deploy_migrations (path, content) VALUES (%s, %s)', [{path!r}, {text!r}])\n"
        for path, text in rows.items()
    )
    code, out = as_app_role(
        ssh,
        setup,
        "cursor.execute('CREATE TABLE sprint2_deploy_migrations (path text PRIMARY KEY, "
        "content text NOT NULL, updated timestamptz NOT NULL DEFAULT now())')\n"
        + inserts
        + "cursor.execute(\"DELETE FROM sprint2_deploy_marker WHERE name = 'history'\")\n",
    )
    assert code == 0, out
    drop = "cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c 'DROP SCHEMA sprint2_deploy CASCADE'"
    assert ssh(db, drop)[0] == 0
    before = {name: ssh(name, RUNNING)[1].strip() for name in backends}
    try:
        result = run_deploy()
        lines = [line for line in result.stderr.splitlines() if "cannot set the database up" in line]
        assert len(lines) == 1 and "pedidos/migrations/0002_planted.py" in lines[0], result.output[-4000:]
        assert (
            "is not what makemigrations writes here" in lines[0] and "docs/deploying.md: Migration history" in lines[0]
        )
        for name in backends:
            assert planted_traces(ssh, name) == "", f"{name}: planted files written or run"
            assert ssh(name, RUNNING)[1].strip() == before[name]
        code, out = as_app_role(
            ssh, setup, "cursor.execute(\"DELETE FROM sprint2_deploy_migrations WHERE path LIKE '%planted%'\")"
        )
        assert code == 0, out
        deploy_ok(platform, run_deploy)
        assert without_headers(history_rows(ssh, db)) == without_headers(kept)
        code, out = as_app_role(
            ssh,
            setup,
            "cursor.execute(\"SELECT to_regclass('public.sprint2_deploy_migrations')\")\nprint(cursor.fetchone())",
        )
        assert code == 0 and "(None,)" in out, out
    finally:
        as_app_role(ssh, setup, "cursor.execute('DROP TABLE IF EXISTS sprint2_deploy_migrations')")
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + backends)


def test_narrowing_and_code_migrations_are_refused_whatever_command_runs_migrate(
    platform, run_deploy, rewrite_config, app_repo, deployed, ssh
):
    """A field made narrower (makemigrations writes AlterField) and a committed RunPython are
    refused before anything is applied, also when migrate runs inside `sh -c`, until
    allow_destructive_migrations is set; nothing moves meanwhile."""
    backends = platform.names("backend")
    (db,) = platform.names("db")
    models = (app_repo.work / "pedidos" / "models.py").read_text()
    kept = ssh(backends[0], RUNNING)[1].strip()
    length = (
        'cd / && runuser -u postgres -- psql -XtA -d dispatch_db -c "SELECT character_maximum_length FROM '
        "information_schema.columns WHERE table_name = 'pedidos_producto' AND column_name = 'nombre'\""
    )
    assert ssh(db, length)[1].strip() == "100"
    try:
        assert (
            rewrite_config(
                app_setup_commands=[
                    "python manage.py makemigrations --noinput",
                    "sh -c 'python manage.py migrate --noinput'",
                ]
            ).returncode
            == 0
        )
        narrower = models.replace(
            "nombre = models.CharField(max_length=100)", "nombre = models.CharField(max_length=20)"
        )
        sha = app_repo.push_commit("Producto: a shorter name", {"pedidos/models.py": narrower})
        result = run_deploy()
        lines = [line for line in result.stderr.splitlines() if "cannot set the database up" in line]
        assert len(lines) == 1 and f"for {sha[:12]}:" in lines[0], result.output[-4000:]
        assert "not known to keep the data" in lines[0] and "Alter field nombre on producto" in lines[0], lines[0]
        assert "allow_destructive_migrations: true" in lines[0]
        assert ssh(db, length)[1].strip() == "100"
        for name in backends:
            assert ssh(name, RUNNING)[1].strip() == kept, f"{name} moved"

        # Back to the models the database has, and a data migration committed in the app.
        latest = sorted(
            ssh(backends[0], f"ls {HOME}/current/pedidos/migrations/ | grep -E '^[0-9]{{4}}_.*[.]py$'")[1].split()
        )[-1][: -len(".py")]
        data = (
            "from django.db import migrations\n\n\n"
            "def touch(apps, schema_editor):\n    pass\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [('pedidos', '{latest}')]\n"
            "    operations = [migrations.RunPython(touch, migrations.RunPython.noop)]\n"
        )
        # Numbered next, as a migration committed in the app would be (and later ones follow it).
        committed = f"{int(latest[:4]) + 1:04d}_data"
        sha = app_repo.push_commit(
            "pedidos: a data migration", {"pedidos/models.py": models, f"pedidos/migrations/{committed}.py": data}
        )
        result = run_deploy()
        lines = [line for line in result.stderr.splitlines() if "cannot set the database up" in line]
        assert len(lines) == 1 and f"pedidos.{committed}: Raw Python operation" in lines[0], result.output[-4000:]
        for name in backends:
            assert ssh(name, RUNNING)[1].strip() == kept, f"{name} moved"

        assert rewrite_config(allow_destructive_migrations=True).returncode == 0
        deploy_ok(platform, run_deploy)
        for name in backends:
            assert ssh(name, RUNNING)[1].strip() == sha
    finally:
        assert rewrite_config().returncode == 0
    deploy_ok(platform, run_deploy)
