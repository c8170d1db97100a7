"""Issue 18, parts 4 and 7: the migration history is not code the app's database role can write, and
the destructive-migration check cannot be stepped around.

The attacker holds what a SQL injection (or code execution) in the app gives: the app's role
`dispatch_user`. Here that SQL goes through the app's own Django connection on a backend (the run
helper, as the app user), as the app would send it. Planted rows name `./sitecustomize.py`, a
`.pth` file through the release's `.venv` link into the shared virtualenv, and a migration-looking
file with code at its top: each would create a file under /srv/sprint2 if it ever ran. A normal
deploy of a new commit must write none of them and run none of them.
"""

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
