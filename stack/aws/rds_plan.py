"""db_service rds: the RDS PostgreSQL instance and its DB subnet group as data and plan actions.
No boto3 here (stack/aws/rds.py makes the calls).

  <prefix>-db          the instance: postgres <rds_engine_version>, rds_instance_class, gp2
                       rds_storage_gb, encrypted, not public, Multi-AZ as set, automated backups
                       kept backup_keep days, deletion protection on, in the <prefix>-rds group
  <prefix>-db-subnets  the DB subnet group: the default VPC's default subnets (RDS wants 2+ zones)
"""

from datetime import datetime

from stack.aws.plan import Action
from stack.aws.rds_model import Database, RdsActual
from stack.aws.rules import group_names
from stack.settings import Settings

MASTER_USER = "sprint2admin"  # fixed: the deploy reads it from the state's "database" entry
STORAGE_TYPE = "gp2"  # Learner Lab allows gp2 only
CA_CERTIFICATE = "rds-ca-rsa2048-g1"  # in every regional bundle; rds-ca-2019 expired in 2024
# Statuses in which the instance serves connections: nothing to wait for.
READY = ("available", "backing-up", "storage-optimization", "configuring-enhanced-monitoring")
# Statuses a re-run cannot repair: one line pointing at the RDS events.
BROKEN = (
    "failed",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "restore-error",
    "storage-full",
)


def instance_name(settings: Settings) -> str:
    return f"{settings.project_prefix}-db"


def subnet_group_name(settings: Settings) -> str:
    return f"{settings.project_prefix}-db-subnets"


def rds_group(settings: Settings) -> str:
    return group_names(settings.project_prefix)["rds"]


def ca_bundle_url(region: str) -> str:
    """The regional bundle of the RDS certificate authorities (the backends verify against it)."""
    return f"https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"


def final_snapshot_name(settings: Settings, now: datetime) -> str:
    """<prefix>-db-final-<UTC time>: letters, digits and single hyphens, as RDS wants identifiers."""
    return f"{instance_name(settings)}-final-{now.strftime('%Y%m%d-%H%M%S')}"


def describe_wanted(settings: Settings) -> str:
    zones = "Multi-AZ" if settings.rds_multi_az else "single-AZ"
    return (
        f"postgres {settings.rds_engine_version}, {settings.rds_instance_class}, {settings.rds_storage_gb} GB "
        f"{STORAGE_TYPE} encrypted, {zones}, not public, backups kept {settings.backup_keep} days, "
        f"deletion protection, master user {MASTER_USER}"
    )


def changes(settings: Settings, found: Database, group_id: str | None) -> tuple[dict, list[str], list[str]]:
    """(modify_db_instance arguments, what they change, warnings) to bring `found` to the settings.

    What RDS cannot change in place (encryption, shrinking storage) or what needs care (a major
    upgrade) is a warning, never a replacement: the instance holds the data.
    """
    name = found.identifier
    modify: dict = {}
    said: list[str] = []
    warnings: list[str] = []
    if found.instance_class != settings.rds_instance_class:
        modify["DBInstanceClass"] = settings.rds_instance_class
        downtime = "" if found.multi_az else ": a few minutes of downtime"
        said.append(f"class {found.instance_class} -> {settings.rds_instance_class}{downtime}")
    if found.storage_gb < settings.rds_storage_gb:
        modify["AllocatedStorage"] = settings.rds_storage_gb
        said.append(f"storage {found.storage_gb} -> {settings.rds_storage_gb} GB")
    elif found.storage_gb > settings.rds_storage_gb:
        warnings.append(
            f"{name} has {found.storage_gb} GB, rds_storage_gb says {settings.rds_storage_gb}: RDS storage only "
            f"grows; set rds_storage_gb: {found.storage_gb}"
        )
    if found.storage_type != STORAGE_TYPE:
        modify["StorageType"] = STORAGE_TYPE
        said.append(f"storage type {found.storage_type} -> {STORAGE_TYPE}")
    if found.multi_az != settings.rds_multi_az:
        modify["MultiAZ"] = settings.rds_multi_az
        said.append("Multi-AZ on" if settings.rds_multi_az else "Multi-AZ off")
    if found.backup_days != settings.backup_keep:
        modify["BackupRetentionPeriod"] = settings.backup_keep
        said.append(f"backups kept {found.backup_days} -> {settings.backup_keep} days")
    if not found.deletion_protection:
        modify["DeletionProtection"] = True
        said.append("deletion protection on")
    if found.public:
        modify["PubliclyAccessible"] = False
        said.append("not public")
    if group_id and found.groups != (group_id,):
        modify["VpcSecurityGroupIds"] = [group_id]
        said.append(f"security group {rds_group(settings)} only")
    if found.major != str(settings.rds_engine_version):
        warnings.append(
            f"{name} runs PostgreSQL {found.engine_version}, rds_engine_version says "
            f"{settings.rds_engine_version}: apply does not upgrade a major version (back up, then "
            f"aws rds modify-db-instance --engine-version ... --allow-major-version-upgrade); "
            f"or set rds_engine_version: {found.major}"
        )
    if not found.encrypted:
        warnings.append(f"{name} is not encrypted, and RDS cannot encrypt it in place (restore a copy instead)")
    return modify, said, warnings


def plan_rds(settings: Settings, rds: RdsActual, group_id: str | None, subnets: list[dict]) -> list[Action]:
    """The "+"/"~" actions of apply (apply never deletes a database: only destroy does)."""
    actions = []
    if rds.subnet_group is None:
        zones = sorted({subnet["AvailabilityZone"] for subnet in subnets})
        detail = f"{len(subnets)} default subnets in {', '.join(zones)}" if subnets else "the default subnets"
        ids = [subnet["SubnetId"] for subnet in subnets]
        actions.append(Action("+", "db_subnet_group", subnet_group_name(settings), detail, {"subnets": ids}))
    found = rds.instance
    name = instance_name(settings)
    if found is None:
        actions.append(Action("+", "rds_instance", name, describe_wanted(settings)))
        return actions
    if found.status == "stopped":
        # RDS modifies only a running instance: what else differs is planned by the next apply.
        actions.append(Action("~", "rds_instance", name, "start (stopped)", {"start": True}))
        return actions
    modify, said, _ = changes(settings, found, group_id)
    if modify:
        actions.append(Action("~", "rds_instance", name, ", ".join(said), {"modify": modify}))
    return actions


def plan_rds_destroy(settings: Settings, rds: RdsActual, snapshot: str | None) -> list[Action]:
    """The instance (a final snapshot `snapshot` first, unless None) and its subnet group."""
    actions = []
    if rds.instance:
        if snapshot:
            detail = f"deletion protection off, final snapshot {snapshot}"
        else:
            detail = "deletion protection off, NO final snapshot (--skip-final-snapshot)"
        actions.append(Action("-", "rds_instance", rds.instance.identifier, detail, {"snapshot": snapshot}))
    if rds.subnet_group:
        actions.append(Action("-", "db_subnet_group", rds.subnet_group))
    return actions


def database_entry(found: Database | None, region: str) -> dict | None:
    """The state's "database" entry (see stack/state.py), once the instance has an endpoint."""
    if found is None or not found.address:
        return None
    return {
        "service": "rds",
        "identifier": found.identifier,
        "address": found.address,
        "port": found.port,
        "master_user": MASTER_USER,
        "ca_bundle_url": ca_bundle_url(region),
    }
