"""db_service rds: the boto3 calls on the RDS instance and its DB subnet group (plans: rds_plan.py).

Both are found by name (names are unique per account and region) and owned by their tags: a
resource of that name without the project's tags is someone else's, and provision.py refuses to
touch it. The master password goes to AWS in the request body only: never printed, never on a
command line.
"""

import time

from botocore.exceptions import ClientError

from stack.aws.rds_model import Database, RdsActual
from stack.aws.rds_plan import (
    BROKEN,
    CA_CERTIFICATE,
    MASTER_USER,
    READY,
    STORAGE_TYPE,
    instance_name,
    subnet_group_name,
)
from stack.aws.retry import retry_while_busy
from stack.aws.tags import MANAGED_BY, tag_map, tags
from stack.errors import UserError
from stack.secrets import load_secrets
from stack.settings import Settings

POLL_SECONDS = 10
PROGRESS_SECONDS = 30  # a line at least this often while RDS works (creating takes 5-15 minutes)
CREATE_TIMEOUT = 45 * 60  # Multi-AZ with a large volume can take half an hour
DELETE_TIMEOUT = 45 * 60  # the final snapshot comes first
BUSY_SECONDS = 300  # how long a deletion RDS refuses as busy is retried
# RDS's rule for a master password (PostgreSQL): 8-128 printable ASCII characters but / " @ and space.
FORBIDDEN_IN_PASSWORD = set('/"@ ')


def _database(raw: dict) -> Database:
    endpoint = raw.get("Endpoint") or {}
    return Database(
        identifier=raw["DBInstanceIdentifier"],
        status=raw["DBInstanceStatus"],
        engine=raw.get("Engine", ""),
        engine_version=raw.get("EngineVersion", ""),
        instance_class=raw.get("DBInstanceClass", ""),
        storage_gb=raw.get("AllocatedStorage", 0),
        storage_type=raw.get("StorageType", ""),
        encrypted=bool(raw.get("StorageEncrypted")),
        public=bool(raw.get("PubliclyAccessible")),
        multi_az=bool(raw.get("MultiAZ")),
        backup_days=raw.get("BackupRetentionPeriod", 0),
        deletion_protection=bool(raw.get("DeletionProtection")),
        groups=tuple(group["VpcSecurityGroupId"] for group in raw.get("VpcSecurityGroups", [])),
        address=endpoint.get("Address"),
        port=endpoint.get("Port"),
        tags={tag["Key"]: tag["Value"] for tag in raw.get("TagList", [])},
    )


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _check_owner(settings: Settings, what: str, name: str, found: dict[str, str]) -> None:
    prefix = settings.project_prefix
    if found.get("Project") != prefix or found.get("ManagedBy") != MANAGED_BY:
        raise UserError(
            f"an RDS {what} named {name} exists that provision.py did not create for project {prefix} "
            f"(no tags Project={prefix}, ManagedBy={MANAGED_BY}): set another project_prefix, or remove it"
        )


def describe_instance(rds, name: str) -> Database | None:
    try:
        raw = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"]
    except ClientError as error:
        if _code(error) in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return None
        raise
    return _database(raw[0]) if raw else None


def find_rds(rds, settings: Settings) -> RdsActual:
    """The project's instance and subnet group (read-only calls; refuses what is not the project's)."""
    actual = RdsActual(instance=describe_instance(rds, instance_name(settings)))
    if actual.instance:
        _check_owner(settings, "instance", actual.instance.identifier, actual.instance.tags)
    name = subnet_group_name(settings)
    try:
        group = rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"][0]
    except ClientError as error:
        if _code(error) not in ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"):
            raise
        return actual
    # describe_db_subnet_groups carries no tags: they are asked by the group's ARN.
    found = rds.list_tags_for_resource(ResourceName=group["DBSubnetGroupArn"])["TagList"]
    _check_owner(settings, "DB subnet group", name, tag_map({"Tags": found}))
    actual.subnet_group = name
    return actual


def master_password() -> str:
    password = load_secrets()["rds_master_password"]
    if len(password) > 128 or FORBIDDEN_IN_PASSWORD & set(password):
        raise UserError(
            "rds_master_password (DEPLOY_RDS_MASTER_PASSWORD or secrets.yml): RDS takes at most 128 "
            'characters and none of / " @ or space: choose another'
        )
    return password


def create_subnet_group(rds, settings: Settings, subnet_ids: list[str]) -> None:
    name = subnet_group_name(settings)
    rds.create_db_subnet_group(
        DBSubnetGroupName=name,
        DBSubnetGroupDescription=f"{settings.project_prefix} database subnets (managed by provision.py)",
        SubnetIds=subnet_ids,
        Tags=tags(settings.project_prefix, name, "db"),
    )


def create_instance(rds, settings: Settings, group_id: str) -> Database:
    name = instance_name(settings)
    raw = rds.create_db_instance(
        DBInstanceIdentifier=name,
        Engine="postgres",
        EngineVersion=str(settings.rds_engine_version),  # a major: RDS picks its newest minor
        DBInstanceClass=settings.rds_instance_class,
        AllocatedStorage=settings.rds_storage_gb,
        StorageType=STORAGE_TYPE,
        StorageEncrypted=True,
        PubliclyAccessible=False,
        MultiAZ=settings.rds_multi_az,
        BackupRetentionPeriod=settings.backup_keep,
        DeletionProtection=True,
        MasterUsername=MASTER_USER,
        MasterUserPassword=master_password(),
        DBSubnetGroupName=subnet_group_name(settings),
        VpcSecurityGroupIds=[group_id],
        CACertificateIdentifier=CA_CERTIFICATE,
        AutoMinorVersionUpgrade=True,
        CopyTagsToSnapshot=True,  # the final snapshot carries the project's tags too
        Tags=tags(settings.project_prefix, name, "db"),
    )["DBInstance"]
    return _database(raw)


def modify_instance(rds, name: str, changes: dict) -> None:
    rds.modify_db_instance(DBInstanceIdentifier=name, ApplyImmediately=True, **changes)


def _patiently(call, busy: tuple[str, ...], progress, what: str, **arguments) -> None:
    """`call(**arguments)`, retried while RDS answers one of the `busy` codes (an instance still
    modifying or backing up, a subnet group whose instance just went), for BUSY_SECONDS."""
    retry_while_busy(
        lambda: call(**arguments),
        busy=busy,
        patience=BUSY_SECONDS,
        pause=POLL_SECONDS,
        waiting=lambda code: f"  {what}: RDS says it is busy ({code}); retrying",
        progress=progress,
        clock=time,
    )


def delete_instance(rds, found: Database, snapshot: str | None, progress) -> None:
    """Deletion protection off, then delete (after a final snapshot `snapshot`, unless None)."""
    name = found.identifier
    if found.deletion_protection:
        rds.modify_db_instance(DBInstanceIdentifier=name, DeletionProtection=False, ApplyImmediately=True)
    final = {"FinalDBSnapshotIdentifier": snapshot} if snapshot else {"SkipFinalSnapshot": True}
    busy = ("InvalidDBInstanceState", "InvalidDBInstanceStateFault")
    _patiently(rds.delete_db_instance, busy, progress, f"deleting {name}", DBInstanceIdentifier=name, **final)


def delete_subnet_group(rds, name: str, progress) -> None:
    try:
        busy = ("InvalidDBSubnetGroupStateFault", "InvalidDBSubnetGroupState")
        _patiently(rds.delete_db_subnet_group, busy, progress, f"deleting {name}", DBSubnetGroupName=name)
    except ClientError as error:
        if _code(error) not in ("DBSubnetGroupNotFoundFault", "DBSubnetGroupNotFound"):
            raise


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def wait_until_ready(rds, name: str, progress, timeout: float = CREATE_TIMEOUT) -> Database:
    """Poll until the instance serves connections, a line every PROGRESS_SECONDS or status change."""
    start = time.monotonic()
    said_at: float = -PROGRESS_SECONDS
    said = ""
    while True:
        found = describe_instance(rds, name)
        waited = time.monotonic() - start
        if found is None:
            raise UserError(f"RDS instance {name} vanished while waiting for it (deleted?): re-run provision.py")
        if found.status in READY:
            progress(f"  RDS {name} is {found.status} at {found.address}:{found.port} after {_elapsed(waited)}")
            return found
        if found.status in BROKEN:
            raise UserError(
                f"RDS instance {name} is {found.status}: see why with aws rds describe-events "
                f"--source-type db-instance --source-identifier {name}, fix it, or destroy and re-create it"
            )
        if waited > timeout:
            raise UserError(
                f"RDS instance {name} is still {found.status} after {_elapsed(waited)}: re-run provision.py "
                f"to keep waiting (nothing is created twice)"
            )
        if found.status != said or waited - said_at >= PROGRESS_SECONDS:
            progress(f"  waiting for RDS {name}: {found.status} ({_elapsed(waited)}; RDS takes 5-15 minutes)")
            said_at, said = waited, found.status
        time.sleep(POLL_SECONDS)


def wait_until_gone(rds, name: str, progress, timeout: float = DELETE_TIMEOUT) -> None:
    start = time.monotonic()
    said_at: float = -PROGRESS_SECONDS
    while True:
        found = describe_instance(rds, name)
        waited = time.monotonic() - start
        if found is None:
            progress(f"  deleted RDS instance {name} after {_elapsed(waited)}")
            return
        if waited > timeout:
            raise UserError(
                f"RDS instance {name} is still {found.status} after {_elapsed(waited)}: re-run destroy to finish"
            )
        if waited - said_at >= PROGRESS_SECONDS:
            progress(f"  waiting for RDS {name} to go: {found.status} ({_elapsed(waited)})")
            said_at = waited
        time.sleep(POLL_SECONDS)
