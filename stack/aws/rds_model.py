"""db_service rds: the RDS instance and its subnet group as found (rds.py), planned on (rds_plan.py)
and part of what discover finds (plan.Actual.rds). Data only."""

from dataclasses import dataclass, field


@dataclass
class Database:
    """One RDS instance as describe_db_instances tells it (and as a plan compares it)."""

    identifier: str
    status: str
    engine: str = "postgres"
    engine_version: str = ""
    instance_class: str = ""
    storage_gb: int = 0
    storage_type: str = ""
    encrypted: bool = False
    public: bool = False
    multi_az: bool = False
    backup_days: int = 0
    deletion_protection: bool = False
    groups: tuple[str, ...] = ()  # VPC security group ids
    address: str | None = None  # no endpoint until the instance is first created
    port: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def major(self) -> str:
        return self.engine_version.split(".")[0]


@dataclass
class RdsActual:
    """What exists of the project's database in RDS (found by name, owned by tags)."""

    instance: Database | None = None
    subnet_group: str | None = None  # its name when it exists
