"""AWS failures as one line: the operation, AWS's code and message, and what to do about it.

`aws_errors()` wraps a whole provision.py run; anything botocore raises leaves it as a UserError
(exit status 1, no traceback). What was created before the failure is already in the state file.
"""

from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from stack.errors import UserError

_EXPIRED = (
    "re-new the credentials: in Learner Lab press Start Lab, open AWS Details and copy the new "
    "aws_access_key_id, aws_secret_access_key and aws_session_token into ~/.aws/credentials"
)

HINTS = {
    "ExpiredToken": _EXPIRED,
    "ExpiredTokenException": _EXPIRED,
    "RequestExpired": _EXPIRED + " (or fix this machine's clock)",
    "AuthFailure": _EXPIRED,
    "InvalidClientTokenId": _EXPIRED,
    "UnrecognizedClientException": _EXPIRED,
    "SignatureDoesNotMatch": "the secret key does not match the access key: copy both again into ~/.aws/credentials",
    "UnauthorizedOperation": (
        "this account may not do that (Learner Lab allows nano..large types, "
        "us-east-1/us-west-2, no IAM roles): use an allowed value or ask your admin"
    ),
    "AccessDenied": "this account may not do that: ask your admin, or use an allowed region and type",
    "AccessDeniedException": "this account may not do that: ask your admin, or use an allowed region and type",
    "VcpuLimitExceeded": (
        "the account's vCPU limit is reached (Learner Lab: 32 vCPU, 9 instances per region): "
        "use a smaller instance_type, fewer backends, or destroy other instances"
    ),
    "InstanceLimitExceeded": "the account's instance limit is reached: fewer backends, or destroy other instances",
    "InsufficientInstanceCapacity": (
        "AWS has no capacity for this type in any offered zone right now: re-run later or choose another instance_type"
    ),
    "InvalidParameterCombination": "this instance type does not fit the image or options: choose another instance_type",
    "InvalidInstanceType": "unknown instance type: check instance_type / kong_instance_type (e.g. t2.nano, t3.small)",
    "InvalidAMIID.NotFound": "no such image in this region: AMI ids differ per region; check ami_id or unset it",
    "InvalidAMIID.Malformed": "check ami_id (ami- and 8 or 17 hex digits) or unset it",
    "InvalidKeyPair.NotFound": (
        "no such key pair in this region: check key_name (Learner Lab's vockey exists in us-east-1)"
    ),
    "InvalidKeyPair.Duplicate": "a key pair of that name exists: set key_name to use it",
    "DependencyViolation": (
        "something still uses this resource (instances shutting down?): wait a minute and re-run destroy"
    ),
    "RequestLimitExceeded": "AWS is throttling this account: wait a minute and re-run",
    "OptInRequired": "the account is not subscribed to this service or region: choose another region",
    "InvalidGroup.NotFound": "a security group vanished while working: re-run to converge",
    "InvalidInstanceID.NotFound": "an instance vanished while working: re-run to converge",
}


_RDS_REFUSED = (
    "this account may not create that RDS instance (Learner Lab: classes up to medium, e.g. db.t3.micro, "
    "db.t3.small, db.t3.medium; gp2 up to 100 GB; Multi-AZ may be refused): check rds_instance_class and "
    "rds_storage_gb, set rds_multi_az: false, and re-run"
)
# The RDS operations' own hints (the same codes mean other things for EC2).
RDS_HINTS = {
    "AccessDenied": _RDS_REFUSED,
    "AccessDeniedException": _RDS_REFUSED,
    "UnauthorizedOperation": _RDS_REFUSED,
    "InvalidParameterCombination": (
        "RDS does not offer rds_instance_class with PostgreSQL rds_engine_version (or with Multi-AZ) here: "
        "try db.t3.micro or db.t4g.micro, another rds_engine_version, or rds_multi_az: false"
    ),
    "InvalidParameterValue": "check rds_instance_class (db.t3.micro ...), rds_storage_gb and rds_engine_version",
    "InstanceQuotaExceeded": "the account's RDS instance quota is reached: delete unused RDS instances and re-run",
    "StorageQuotaExceeded": (
        "the account's RDS storage quota is reached: a smaller rds_storage_gb, or delete unused instances "
        "and snapshots (aws rds describe-db-snapshots)"
    ),
    "SnapshotQuotaExceeded": (
        "the account's RDS snapshot quota is reached: delete old snapshots (aws rds delete-db-snapshot), "
        "or destroy --skip-final-snapshot if the data is saved elsewhere"
    ),
    "DBSubnetGroupQuotaExceeded": "the account's DB subnet group quota is reached: delete unused ones and re-run",
    "InsufficientDBInstanceCapacity": (
        "AWS has no capacity for rds_instance_class right now: re-run later or choose another class"
    ),
    "StorageTypeNotSupported": "this class does not take gp2 storage: choose another rds_instance_class",
    "DBSubnetGroupDoesNotCoverEnoughAZs": (
        "the DB subnet group needs subnets in two zones: aws ec2 create-default-subnet --availability-zone ..."
    ),
    "InvalidDBInstanceState": "the RDS instance is busy (modifying, backing up...): wait a few minutes and re-run",
    "InvalidDBInstanceStateFault": "the RDS instance is busy (modifying, backing up...): wait a few minutes and re-run",
    "InvalidDBSubnetGroupStateFault": "the RDS instance still uses the subnet group: wait a minute and re-run destroy",
    "DBSnapshotAlreadyExists": "a snapshot of that name exists: re-run destroy (the name has the time)",
    "DBInstanceAlreadyExists": "an RDS instance of that name exists: set another project_prefix, or remove it",
}


def _hint(operation: str, code: str) -> str | None:
    if "DB" in operation and code in RDS_HINTS:  # CreateDBInstance, ModifyDBInstance, CreateDBSubnetGroup...
        return RDS_HINTS[code]
    return HINTS.get(code)


def explain(error: Exception) -> str:
    """The one line for an exception from boto3 (without the leading 'error: ')."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "Unknown")
        message = (info.get("Message") or "").strip().rstrip(".")
        line = (
            f"{error.operation_name} failed: {code}: {message}" if message else f"{error.operation_name} failed: {code}"
        )
        hint = _hint(error.operation_name, code)
        if hint is None and code.startswith("InvalidParameterValue") and "instance type" in message.lower():
            hint = HINTS["InvalidInstanceType"]
        return f"{line} (hint: {hint})" if hint else line
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return (
            f"AWS credentials not found ({error}) (hint: run aws configure, or write "
            "aws_access_key_id, aws_secret_access_key and aws_session_token under [default] in "
            "~/.aws/credentials; Learner Lab: AWS Details > AWS CLI)"
        )
    if isinstance(error, NoRegionError):
        return f"{error} (hint: set region in config.yml)"
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return f"cannot reach AWS: {error} (hint: check the network, the region and AWS_ENDPOINT_URL if set)"
    if isinstance(error, ResponseParserError):
        # Not botocore's error class: an answer that is not AWS's (a proxy or captive portal page).
        return (
            "the AWS endpoint answered something that is not an AWS response (hint: check the network, "
            "a proxy, and AWS_ENDPOINT_URL if set)"
        )
    return f"AWS call failed: {error}"


@contextmanager
def aws_errors():
    """Turn botocore exceptions raised inside the block into a UserError line."""
    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        raise UserError(explain(error)) from None
