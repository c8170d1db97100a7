"""The daily backup of the application database: a script, its oneshot service and a timer."""

from tasks.shared import HISTORY_ROLE
from tasks.templating import render_template

BACKUP_DIRECTORY = "/var/backups/postgresql"
BACKUP_SCRIPT = "/usr/local/sbin/sprint2-db-backup"
BACKUP_SERVICE = "sprint2-db-backup.service"
BACKUP_TIMER = "sprint2-db-backup.timer"


UPLOAD_SCRIPT = "/usr/local/sbin/sprint2-db-upload"


def backup_script(db_name: str, keep: int, bucket: str | None = None, region: str = "", key_prefix: str = "") -> str:
    """The dump script; with `bucket`, each complete dump is also uploaded to s3://bucket/key_prefix/."""
    return render_template(
        "db/backup.sh.j2",
        db_name=db_name,
        keep=keep,
        directory=BACKUP_DIRECTORY,
        service=BACKUP_SERVICE,
        bucket=bucket,
        region=region,
        key_prefix=key_prefix,
        upload=UPLOAD_SCRIPT,
        history_schema=HISTORY_ROLE,
    )


def backup_service(db_name: str) -> str:
    return render_template("db/backup.service.j2", db_name=db_name, directory=BACKUP_DIRECTORY, script=BACKUP_SCRIPT)


def backup_timer(db_name: str) -> str:
    return render_template("db/backup.timer.j2", db_name=db_name)
