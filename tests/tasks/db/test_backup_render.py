"""The daily backup's script and units, by exact output."""

from tasks.db.backup_render import backup_script, backup_service, backup_timer


def test_script_dumps_compressed_renames_when_complete_and_keeps_the_newest():
    assert (
        backup_script("dispatch_db", 7)
        == """\
#!/bin/bash
# Managed by the deploy (tasks/backup.py): a compressed pg_dump of dispatch_db,
# keeping the newest 7. Run by sprint2-db-backup.service as postgres.
set -euo pipefail
umask 077

directory=/var/backups/postgresql
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target="$directory/dispatch_db-$stamp.sql.gz"

# pg_dump runs as the superuser over objects the app role owns, and runs none of their code: it
# reads with an empty search_path in a read-only snapshot, and since PostgreSQL 16.4 / 15.8
# (CVE-2024-7348) it sets restrict_nonsystem_relation_kind, so no view or foreign table of the
# app's expands in its session. A server without that setting is refused, not dumped.
if [ "$(psql -XAtq -d postgres -c "SELECT count(*) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'")" != 1 ]; then
    echo "refused: this PostgreSQL predates restrict_nonsystem_relation_kind (16.4, 15.8): a dump could run the app role's code as superuser; upgrade it (apt-get install --only-upgrade 'postgresql-*')" >&2
    exit 1
fi

# Written under a temporary name and renamed when complete: a failed dump never
# counts as a backup, and never pushes a good one out of the rotation.
pg_dump --no-password dispatch_db | gzip -9 > "$target.partial"
mv "$target.partial" "$target"
echo "backup written: $target ($(stat -c %s "$target") bytes)"

ls -1t "$directory"/dispatch_db-*.sql.gz | tail -n +8 | while read -r old; do
    rm -f -- "$old"
    echo "old backup removed: $old"
done
"""
    )


def test_keep_one_removes_all_but_the_newest():
    assert "| tail -n +2 |" in backup_script("dispatch_db", 1)


def test_service_runs_as_postgres_once():
    assert (
        backup_service("dispatch_db")
        == """\
# Managed by the deploy (tasks/backup.py).
[Unit]
Description=pg_dump of dispatch_db into /var/backups/postgresql
After=postgresql.service
Requires=postgresql.service

[Service]
Type=oneshot
User=postgres
Group=postgres
ExecStart=/usr/local/sbin/sprint2-db-backup
"""
    )


def test_timer_is_daily_and_catches_up_after_downtime():
    assert (
        backup_timer("dispatch_db")
        == """\
# Managed by the deploy (tasks/backup.py).
[Unit]
Description=Daily pg_dump of dispatch_db

[Timer]
OnCalendar=*-*-* 03:15:00
RandomizedDelaySec=15min
# A host that was off at 03:15 backs up when it boots.
Persistent=true

[Install]
WantedBy=timers.target
"""
    )


def test_with_a_bucket_each_dump_is_uploaded_after_it_is_complete():
    script = backup_script("dispatch_db", 7, bucket="des-backups", region="us-east-1", key_prefix="des")
    assert (
        """\
mv "$target.partial" "$target"
echo "backup written: $target ($(stat -c %s "$target") bytes)"
# Off-host copy (backup_bucket), with the credentials of the instance's role (instance profile).
/usr/bin/python3 /usr/local/sbin/sprint2-db-upload "$target" des-backups "des/$(basename "$target")" us-east-1

ls -1t"""
        in script
    )
    assert "sprint2-db-upload" not in backup_script("dispatch_db", 7)
