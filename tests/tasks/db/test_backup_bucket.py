"""With backup_bucket set, the database host gets boto3, the upload script and a backup script
that uploads each dump; without it, none of that (tests/tasks/test_database.py)."""

from pyinfra.facts.files import Directory, File

from stack.settings import PROJECT_ROOT, settings_from
from tasks.db.backup_render import UPLOAD_SCRIPT, backup_script
from tasks.uploads import FileSummary
from tests.tasks.db.test_db_deploy import converged, deploy


def test_a_bucket_adds_boto3_the_upload_and_the_upload_line():
    settings = settings_from({"backup_bucket": "des-backups"})
    facts = converged(settings)
    facts[File][f"path={UPLOAD_SCRIPT}"] = None
    facts[Directory][f"path={UPLOAD_SCRIPT}"] = None
    facts[FileSummary][f"path={UPLOAD_SCRIPT}"] = None
    run = deploy(facts, settings)
    assert run.changed == [
        "Ensure boto3 is installed for the S3 copies",
        "Install the S3 upload of each backup",
        "Install the backup script",
    ]
    assert "install python3-boto3" in run.op("Ensure boto3 is installed for the S3 copies").commands[-1]
    assert run.op("Install the S3 upload of each backup").uploads == {
        UPLOAD_SCRIPT: (PROJECT_ROOT / "files" / "db" / "s3_upload.py").read_text()
    }
    assert run.op("Install the backup script").uploads == {
        "/usr/local/sbin/sprint2-db-backup": backup_script("dispatch_db", 7, "des-backups", "us-east-1", "des")
    }
