"""The database's settings (config.yml keys db_service ... rds_engine_version), their defaults and checks.

`db_service` chooses who runs PostgreSQL: `host`, the project's own database host configured by
deploy.py (tasks/db), or `rds`, an Amazon RDS instance provisioned by provision.py, which the
backends reach over TLS; the `rds_*` settings size that instance and are unused with `host`."""

import re
from typing import Annotated

from stack.settings_types import Flag, OneOf, Section, Text, Whole, setting

PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
RDS_CLASS = re.compile(r"db\.[a-z0-9]+\.[a-z0-9]+")


class DbSettings(Section):
    db_service: Annotated[str, OneOf(("host", "rds"))] = setting(
        default="host",
        description="Who runs PostgreSQL: host = the <prefix>-db host this project configures; rds = an "
        "Amazon RDS instance (provision.py creates it; no db host).",
    )
    db_name: Annotated[str, Text(PG_NAME, "a PostgreSQL name")] = setting(
        default="dispatch_db", description="Application database."
    )
    db_user: Annotated[str, Text(PG_NAME, "a PostgreSQL name")] = setting(
        default="dispatch_user", description="Application database role."
    )
    max_connections: Annotated[int, Whole(10, 10000)] = setting(default=2000, description="PostgreSQL max_connections.")
    backup_keep: Annotated[int, Whole(1, 365)] = setting(
        default=7, description="Daily pg_dump files kept on the database host."
    )
    backup_bucket: Annotated[str, Text(BUCKET, "an S3 bucket name")] | None = setting(
        default=None,
        description="AWS: S3 bucket the daily backup also uploads each dump to (the database host needs an "
        "instance profile allowed to write it); unset = no off-host copy.",
    )
    rds_instance_class: Annotated[str, Text(RDS_CLASS, "an RDS instance class such as db.t3.micro")] = setting(
        default="db.t3.micro", description="db_service rds: the instance class (Learner Lab: up to medium)."
    )
    rds_storage_gb: Annotated[int, Whole(20, 65536)] = setting(
        default=20, description="db_service rds: gp2 storage in GB (Learner Lab: at most 100)."
    )
    rds_multi_az: Annotated[bool, Flag()] = setting(
        default=False,
        description="db_service rds: a standby in a second zone (about twice the cost; may be refused on Learner Lab).",
    )
    rds_engine_version: Annotated[int, Whole(13, 17)] = setting(
        default=16, description="db_service rds: the PostgreSQL major version."
    )
