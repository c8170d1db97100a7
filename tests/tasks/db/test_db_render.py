"""PostgreSQL's files, by exact output."""

from tasks.db.render import pg_hba_conf, pg_ident_conf, postgresql_conf


def test_conf_snippet_listens_privately_and_fits_2000_connections_in_512_mb():
    assert (
        postgresql_conf("10.0.1.10", 2000)
        == """\
# Managed by the deploy (tasks/db/); edits here are overwritten.
# Loaded after postgresql.conf through its include_dir = 'conf.d'.

# The backends connect over the private network; the admin uses the local socket.
listen_addresses = 'localhost,10.0.1.10'
port = 5432
max_connections = 2000

# Sized so that 2000 connection slots still fit a 512 MB host (t2.nano):
# shared memory stays small and per-query memory is modest, since every slot may use it.
shared_buffers = 64MB
work_mem = 1MB
maintenance_work_mem = 32MB
effective_cache_size = 256MB
huge_pages = off

password_encryption = scram-sha-256
log_connections = on
log_disconnections = off
"""
    )


def test_pg_hba_allows_the_app_user_only_from_each_backend_with_scram():
    assert (
        pg_hba_conf("dispatch_db", "dispatch_user", ["10.0.1.12", "10.0.1.9", "10.0.1.12"])
        == """\
# Managed by the deploy (tasks/db/); edits here are overwritten.
# TYPE  DATABASE        USER            ADDRESS                 METHOD

# Administration: only through the local socket, as the matching system user.
local   all             postgres                                peer
# provision.py psql and restores: the app role itself, for the system users pg_ident.conf maps to it.
local   all             dispatch_user                           peer map=sprint2-psql
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256

# The application database, only from each backend's private address.
host    dispatch_db     dispatch_user   10.0.1.9/32             scram-sha-256
host    dispatch_db     dispatch_user   10.0.1.12/32            scram-sha-256
"""
    )


def test_pg_hba_lets_the_history_role_in_from_each_backend_too_with_scram():
    text = pg_hba_conf("dispatch_db", "dispatch_user", ["10.0.1.12", "10.0.1.9"], "sprint2_deploy")
    assert text == pg_hba_conf("dispatch_db", "dispatch_user", ["10.0.1.12", "10.0.1.9"]) + (
        "\n"
        "# The migration history's deploy-only role (tasks/db/history.py), from the backends too.\n"
        "host    dispatch_db     sprint2_deploy  10.0.1.9/32             scram-sha-256\n"
        "host    dispatch_db     sprint2_deploy  10.0.1.12/32            scram-sha-256\n"
    )
    assert "sprint2_deploy" not in pg_hba_conf("dispatch_db", "dispatch_user", [], "sprint2_deploy")


def test_pg_hba_never_trusts_and_never_opens_to_everyone():
    text = pg_hba_conf("db", "user", ["10.0.0.5"])
    assert "trust" not in text and "0.0.0.0/0" not in text and "md5" not in text


def test_pg_hba_without_backends_lets_nobody_in_over_the_network():
    text = pg_hba_conf("dispatch_db", "dispatch_user", [])
    assert "dispatch_db" not in text


def test_pg_ident_maps_only_the_postgres_system_user_to_the_app_role():
    assert (
        pg_ident_conf("dispatch_user")
        == """\
# Managed by the deploy (tasks/db/); edits here are overwritten.
# MAPNAME       SYSTEM-USERNAME         PG-USERNAME

# `provision.py psql`: the postgres system user (superuser anyway) logs in as the app role itself,
# so the operator's session has the app's rights and no more (pg_hba.conf's map=sprint2-psql line).
sprint2-psql    postgres                dispatch_user
"""
    )
