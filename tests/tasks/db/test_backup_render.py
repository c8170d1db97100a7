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

# The migration history's schema (sprint2_deploy, the deploy-only role's) goes into a file of its
# own: the app's objects are restored as the app role, which may not own that schema, and the
# history (text rows, no code) as postgres. Both from one snapshot would need one pg_dump; two
# seconds apart they can differ only by a deploy's setup. The app's file is written last: the newest.
history="$directory/history-dispatch_db-$stamp.sql.gz"

# Written under a temporary name and renamed when complete: a failed dump never
# counts as a backup, and never pushes a good one out of the rotation.
pg_dump --no-password --schema=sprint2_deploy dispatch_db | gzip -9 > "$history.partial"
pg_dump --no-password --exclude-schema=sprint2_deploy dispatch_db | gzip -9 > "$target.partial"
mv "$history.partial" "$history"
mv "$target.partial" "$target"
echo "backup written: $target ($(stat -c %s "$target") bytes), the migration history in $history"

for pattern in "dispatch_db-*.sql.gz" "history-dispatch_db-*.sql.gz"; do
    ls -1t "$directory"/$pattern 2>/dev/null | tail -n +8 | while read -r old; do
        rm -f -- "$old"
        echo "old backup removed: $old"
    done
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
echo "backup written: $target ($(stat -c %s "$target") bytes), the migration history in $history"
# Off-host copy (backup_bucket), with the credentials of the instance's role (instance profile).
/usr/bin/python3 /usr/local/sbin/sprint2-db-upload "$target" des-backups "des/$(basename "$target")" us-east-1
/usr/bin/python3 /usr/local/sbin/sprint2-db-upload "$history" des-backups "des/$(basename "$history")" us-east-1

for pattern"""
        in script
    )
    assert "sprint2-db-upload" not in backup_script("dispatch_db", 7)
