"""Daily backup of the application database on the db host.

A systemd timer starts a oneshot service (as postgres) that writes
/var/backups/postgresql/<db_name>-<UTC time>.sql.gz (plain SQL, gzip) and keeps the newest
`backup_keep` files. The folder is postgres-only (0700) and every file 0600: only root and
postgres can read a backup. Restore: gunzip -c FILE | psql -d <empty database>.
With `backup_bucket` set, each dump is also uploaded to s3://<bucket>/<prefix>/ by
files/db/s3_upload.py (python3-boto3), with the credentials of the instance's role.
"""

from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from stack.settings import PROJECT_ROOT, Settings
from tasks import uploads
from tasks.db.backup_render import (
    BACKUP_DIRECTORY,
    BACKUP_SCRIPT,
    BACKUP_SERVICE,
    BACKUP_TIMER,
    UPLOAD_SCRIPT,
    backup_script,
    backup_service,
    backup_timer,
)
from tasks.packages import packages_installed
from tasks.units import units_running


@deploy("Set up the daily database backup")
def deploy_backup(settings: Settings):
    files.directory(
        name="Ensure the backup folder is private to postgres",
        path=BACKUP_DIRECTORY,
        user="postgres",
        group="postgres",
        mode="700",
    )
    if settings.backup_bucket:
        packages_installed(name="Ensure boto3 is installed for the S3 copies", packages=["python3-boto3"])
        uploads.put(
            name="Install the S3 upload of each backup",
            src=str(PROJECT_ROOT / "files" / "db" / "s3_upload.py"),
            dest=UPLOAD_SCRIPT,
            user="root",
            group="root",
            mode="755",
        )
    uploads.put(
        name="Install the backup script",
        src=StringIO(
            backup_script(
                settings.db_name, settings.backup_keep, settings.backup_bucket, settings.region, settings.project_prefix
            )
        ),
        dest=BACKUP_SCRIPT,
        user="root",
        group="root",
        mode="755",
    )
    service = uploads.put(
        name="Install the backup service",
        src=StringIO(backup_service(settings.db_name)),
        dest=f"/etc/systemd/system/{BACKUP_SERVICE}",
        user="root",
        group="root",
        mode="644",
    )
    timer = uploads.put(
        name="Install the daily backup timer",
        src=StringIO(backup_timer(settings.db_name)),
        dest=f"/etc/systemd/system/{BACKUP_TIMER}",
        user="root",
        group="root",
        mode="644",
    )
    systemd.daemon_reload(name="Reload systemd for the backup units", _if=any_changed(service, timer))
    units_running(name="Ensure the daily backup timer is enabled and running", units=[BACKUP_TIMER])
