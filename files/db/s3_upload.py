"""Copy one backup to S3 (setting backup_bucket); run by the daily backup on the database host.

    python3 s3_upload.py FILE BUCKET KEY REGION

Credentials come from the instance's role (an instance profile; on Learner Lab LabInstanceProfile):
no key is ever stored on the host. Encrypted at rest (SSE-S3). A failure is one line and exit 1,
so the backup service fails visibly (`systemctl status sprint2-db-backup`) while the local copy stays.
"""

import sys

import boto3
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

HINT = {
    "NoCredentialsError": " (attach an instance profile that may s3:PutObject to the database host; "
    "Learner Lab: LabInstanceProfile)"
}


def main(argv: list[str]) -> int:
    path, bucket, key, region = argv
    try:
        boto3.client("s3", region_name=region).upload_file(
            path, bucket, key, ExtraArgs={"ServerSideEncryption": "AES256"}
        )
    except (Boto3Error, BotoCoreError, ClientError, OSError) as error:
        reason = " ".join(str(error).split())
        print(
            f"upload of {path} to s3://{bucket}/{key} failed: {reason}{HINT.get(type(error).__name__, '')}",
            file=sys.stderr,
        )
        return 1
    print(f"uploaded {path} to s3://{bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
