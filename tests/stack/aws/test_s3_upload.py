"""files/db/s3_upload.py, the database host's upload of each dump to backup_bucket, run here against
the moto server the AWS tests use (real HTTP), as the backup service runs it."""

import os
import subprocess
import sys

import boto3

from stack.settings import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "files" / "db" / "s3_upload.py"


def run_upload(aws, *args):
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEPLOY_")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_dump_is_uploaded_encrypted_under_the_project_prefix(aws, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="des-backups")
    dump = tmp_path / "dispatch_db-20261129T031500Z.sql.gz"
    dump.write_bytes(b"\x1f\x8b fake gzip")
    result = run_upload(aws, str(dump), "des-backups", f"des/{dump.name}", "us-east-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"uploaded {dump} to s3://des-backups/des/{dump.name}"
    stored = s3.get_object(Bucket="des-backups", Key=f"des/{dump.name}")
    assert stored["Body"].read() == b"\x1f\x8b fake gzip"
    assert stored["ServerSideEncryption"] == "AES256"


def test_a_missing_bucket_is_one_line_and_a_failure(aws, tmp_path):
    dump = tmp_path / "d.sql.gz"
    dump.write_bytes(b"x")
    result = run_upload(aws, str(dump), "no-such-bucket", "des/d.sql.gz", "us-east-1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"upload of {dump} to s3://no-such-bucket/des/d.sql.gz failed: ")
    assert "NoSuchBucket" in lines[0]
