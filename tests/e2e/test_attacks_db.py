"""Attacks on the database host replayed as the attacker would, then the operator's routine work.

(a) The postgres OS user owns PostgreSQL's config folder: it plants links where the deploy
    writes pg_hba.conf, conf.d/90-deploy.conf (and pg_ident.conf), pointing at root's files (a
    systemd unit, a root-only 0600 file). A normal deploy must leave those files exactly as they
    were (bytes, owner, mode) and either refuse in one line or write a regular file of postgres.
(b) The app role (SQL with the app's own password, as code running in the app would) plants
    traps that make it superuser when a superuser session runs them: a view named like a
    report, `now()` shadowed through the database's own search_path, a column default, an
    expression index and a materialized view. Then the operator runs `provision.py psql -c`,
    the deploy, `status` and both backups (`provision.py backup` and the daily timer's script):
    the role must still not be superuser, and no trap may have run in a session of another role.

Superuser checks run in the `postgres` database, where the app role owns nothing.
"""

import shlex

import pytest
import yaml

from tests.e2e.local_platform import deploy_ok

pytestmark = pytest.mark.e2e

APP_ROLE = "dispatch_user"
APP_DB = "dispatch_db"
UNIT = "/etc/systemd/system/attack-target.service"
SECRET = "/etc/attack-secret"
ROOT_FILES = {
    UNIT: ("[Unit]\nDescription=root's own unit, never postgres's\n", "644"),
    SECRET: ("root-only secret\n", "600"),
}


@pytest.fixture(scope="module")
def db(platform):
    platform.ensure_deployed()
    return platform.names("db")[0]


def run(ssh, host, command):
    code, out = ssh(host, command)
    assert code == 0, f"{command}\n{out}"
    return out


def as_postgres(ssh, host, script):
    return ssh(host, f"cd / && runuser -u postgres -- sh -c {shlex.quote(script)}")


def cluster_dir(ssh, host):
    version = run(ssh, host, "pg_lsclusters --no-header | awk '$2 == \"main\" {print $1}'").strip()
    return f"/etc/postgresql/{version}/main"


def state_of(ssh, host, path):
    """Type, owner, group, mode and SHA-256 of `path` itself (a link is not followed)."""
    return run(
        ssh, host, f"stat -c '%F %U %G %a' {path} && if [ -f {path} ] && [ ! -L {path} ]; then sha256sum < {path}; fi"
    )


def operate(platform, *args, timeout=300):
    return platform.operate(*args, timeout=timeout)


def one_line_refusal(result):
    """The lines of ours saying what the deploy refused (and no traceback)."""
    assert "Traceback" not in result.output, result.output[-3000:]
    return [line for line in result.output.splitlines() if "is not a folder that postgres can write" in line]


def test_links_planted_by_postgres_leave_root_files_untouched(platform, ssh, run_deploy, db):
    folder = cluster_dir(ssh, db)
    for path, (text, mode) in ROOT_FILES.items():
        run(ssh, db, f"printf %s {shlex.quote(text)} > {path} && chown root:root {path} && chmod {mode} {path}")
    before = {path: state_of(ssh, db, path) for path in ROOT_FILES}
    planted = {
        f"{folder}/pg_hba.conf": UNIT,
        f"{folder}/conf.d/90-deploy.conf": SECRET,
        f"{folder}/pg_ident.conf": SECRET,
    }
    try:
        # As postgres: keep the real files aside, put links in their place.
        for link, target in planted.items():
            code, out = as_postgres(ssh, db, f"cp -p {link} {link}.saved && ln -sfn {target} {link}")
            assert code == 0, out
        assert state_of(ssh, db, f"{folder}/pg_hba.conf").startswith("symbolic link")

        result = run_deploy("--limit", db)

        after = {path: state_of(ssh, db, path) for path in ROOT_FILES}
        assert after == before, "a root file was changed through a link postgres planted"
        if result.returncode != 0:
            assert one_line_refusal(result), result.output[-3000:]
        else:
            for link in planted:
                assert state_of(ssh, db, link).startswith("regular file postgres postgres"), link
            assert run(ssh, db, "systemctl is-active postgresql").strip() == "active"
            again = deploy_ok(platform, run_deploy, "--limit", db)
            again.assert_no_changes()
    finally:
        for link in planted:
            as_postgres(ssh, db, f"if [ -L {link} ]; then mv -f {link}.saved {link}; else rm -f {link}.saved; fi")
        run(ssh, db, f"rm -f {' '.join(ROOT_FILES)}")


def test_a_config_folder_replaced_by_a_link_is_refused_in_one_line(platform, ssh, run_deploy, db):
    folder = cluster_dir(ssh, db)
    conf_d = f"{folder}/conf.d"
    code, out = as_postgres(ssh, db, f"mv {conf_d} {conf_d}.saved && ln -s /etc/systemd/system {conf_d}")
    assert code == 0, out
    try:
        run(ssh, db, "rm -f /etc/systemd/system/90-deploy.conf")
        # A changed setting: the deploy wants to write conf.d/90-deploy.conf.
        platform.write_config(max_connections=1999)
        result = run_deploy("--limit", db)
        assert (
            run(ssh, db, "ls /etc/systemd/system/90-deploy.conf 2>&1 || true")
            .strip()
            .endswith("No such file or directory")
        ), "the deploy wrote into /etc/systemd/system through postgres's link"
        # (The only host failed: pyinfra stops with "No hosts remaining", without its JSON report.)
        assert result.returncode != 0, "the deploy wrote through a link instead of refusing"
        assert one_line_refusal(result), result.output[-3000:]
    finally:
        platform.write_config()
        as_postgres(ssh, db, f"rm -f {conf_d} && mv {conf_d}.saved {conf_d}")
        run(ssh, db, "rm -f /etc/systemd/system/90-deploy.conf")
    deploy_ok(platform, run_deploy, "--limit", db)


# --- (b) the app role's traps ------------------------------------------------------------------

TRAPS = f"""
CREATE TABLE trap_log (session_role text, current_role_name text, via text);
CREATE FUNCTION trap(via text) RETURNS integer LANGUAGE plpgsql AS $body$
DECLARE
  done boolean := false;
BEGIN
  BEGIN
    INSERT INTO public.trap_log VALUES (session_user, current_user, via);
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  BEGIN
    -- In a superuser's session that took the app's role: back to the superuser.
    SET ROLE NONE;
    ALTER ROLE {APP_ROLE} SUPERUSER;
    done := true;
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  IF NOT done THEN
    BEGIN
      -- Works even in pg_dump's read-only transaction, for a superuser (and would wait forever
      -- for the row lock of an ALTER ROLE this transaction made: hence only when that failed).
      COPY (SELECT 1) TO PROGRAM 'psql -X -d postgres -c "ALTER ROLE {APP_ROLE} SUPERUSER"';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
  END IF;
  RETURN 1;
END
$body$;
CREATE VIEW daily_report AS SELECT trap('view') AS n;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql
  AS $body$ SELECT public.trap('now'); SELECT pg_catalog.now() $body$;
ALTER DATABASE {APP_DB} SET search_path = public, pg_catalog;
CREATE FUNCTION trap_immutable(i integer) RETURNS integer IMMUTABLE LANGUAGE plpgsql
  AS $body$ BEGIN PERFORM public.trap('index'); RETURN i; END $body$;
CREATE TABLE trap_rows (n integer DEFAULT public.trap('default'));
CREATE INDEX trap_rows_index ON trap_rows (trap_immutable(n));
INSERT INTO trap_rows DEFAULT VALUES;
CREATE MATERIALIZED VIEW trap_matview AS SELECT public.trap('matview') AS n;
"""

UNTRAP = f"""
ALTER DATABASE {APP_DB} RESET search_path;
DROP MATERIALIZED VIEW IF EXISTS trap_matview;
DROP TABLE IF EXISTS trap_rows;
DROP FUNCTION IF EXISTS trap_immutable(integer);
DROP VIEW IF EXISTS daily_report;
DROP FUNCTION IF EXISTS public.now();
DROP FUNCTION IF EXISTS trap(text);
DROP TABLE IF EXISTS trap_log;
"""


RESTORE = (
    "cd / && latest=$(runuser -u postgres -- sh -c 'ls -1t /var/backups/postgresql/dispatch_db-*.sql.gz | head -n 1') && "
    "runuser -u postgres -- dropdb --if-exists restored_e2e && "
    f"runuser -u postgres -- createdb -O {APP_ROLE} restored_e2e && "
    f'runuser -u postgres -- sh -c "gunzip -c $latest" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 '
    f"-U {APP_ROLE} -d restored_e2e"
)


def as_app_role(platform, ssh, db, sql):
    """SQL as the app role with its own password, over TCP as the backends connect (the password
    in the environment of this test's command only)."""
    password = yaml.safe_load((platform.home / "secrets.yml").read_text())["db_password"]
    command = (
        f"cd / && PGPASSWORD={shlex.quote(password)} psql -X -v ON_ERROR_STOP=1 -qAt "
        f"-h 127.0.0.1 -U {APP_ROLE} -d {APP_DB} <<'SQL'\n{sql}\nSQL"
    )
    return run(ssh, db, command)


def is_superuser(ssh, db):
    query = f"SELECT rolsuper FROM pg_roles WHERE rolname = '{APP_ROLE}'"
    return run(ssh, db, f'cd / && runuser -u postgres -- psql -X -d postgres -tAc "{query}"').strip() == "t"


def test_the_operators_sessions_never_run_the_app_roles_code_as_superuser(platform, ssh, run_deploy, db, tmp_path):
    assert not is_superuser(ssh, db)
    as_app_role(platform, ssh, db, UNTRAP + TRAPS)
    steps = {
        "psql -c 'select * from daily_report'": lambda: operate(platform, "psql", "-c", "select * from daily_report"),
        "psql -c 'select now()'": lambda: operate(platform, "psql", "-c", "select now()"),
        "the deploy": lambda: run_deploy(),
        "status": lambda: operate(platform, "status"),
        "provision.py backup": lambda: operate(platform, "backup", str(tmp_path / "db.dump")),
        "the daily backup": lambda: ssh(db, "systemctl start sprint2-db-backup.service"),
        # As the README says: restored as the app role (its materialized view is refreshed, its
        # index built: the app's code runs, with the app's rights).
        "a restore of the daily backup": lambda: ssh(db, RESTORE),
    }
    made_superuser, answers = [], {}
    try:
        for step, action in steps.items():
            answers[step] = action()
            if is_superuser(ssh, db):
                made_superuser.append(step)
                run(
                    ssh,
                    db,
                    f"cd / && runuser -u postgres -- psql -X -d postgres -c 'ALTER ROLE {APP_ROLE} NOSUPERUSER'",
                )
        ran_as = as_app_role(platform, ssh, db, "SELECT DISTINCT session_role || ' ' || via FROM trap_log ORDER BY 1")
    finally:
        ssh(db, "cd / && runuser -u postgres -- dropdb --if-exists restored_e2e")
        as_app_role(platform, ssh, db, UNTRAP)
        run(ssh, db, f"cd / && runuser -u postgres -- psql -X -d postgres -c 'ALTER ROLE {APP_ROLE} NOSUPERUSER'")
    assert not made_superuser, f"the app role became superuser after: {', '.join(made_superuser)}"
    foreign = [line for line in ran_as.splitlines() if not line.startswith(f"{APP_ROLE} ")]
    assert not foreign, f"the app role's code ran in sessions of other roles: {foreign}"
    # The operator's commands still work: psql answered as the app role, the backups were written.
    psql = answers["psql -c 'select * from daily_report'"]
    assert psql.returncode == 0 and "(1 row)" in psql.stdout, psql.stdout + psql.stderr
    assert answers["provision.py backup"].returncode == 0, answers["provision.py backup"].stderr
    assert answers["the daily backup"][0] == 0, answers["the daily backup"][1]
    assert answers["a restore of the daily backup"][0] == 0, answers["a restore of the daily backup"][1]
    who = operate(platform, "psql", "-At", "-c", "select session_user, current_user")
    assert who.stdout == f"{APP_ROLE}|{APP_ROLE}\n", who.stdout + who.stderr
