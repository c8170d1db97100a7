"""The database's settings (config.yml keys db_name ... backup_bucket), their defaults and checks."""

import re
from typing import Annotated

from pydantic import Field

from stack.settings_types import Section, Text, Whole

PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class DbSettings(Section):
    db_name: Annotated[str, Text(PG_NAME, "a PostgreSQL name")] = Field(
        default="dispatch_db", description="Application database."
    )
    db_user: Annotated[str, Text(PG_NAME, "a PostgreSQL name")] = Field(
        default="dispatch_user", description="Application database role."
    )
    max_connections: Annotated[int, Whole(10, 10000)] = Field(default=2000, description="PostgreSQL max_connections.")
    backup_keep: Annotated[int, Whole(1, 365)] = Field(
        default=7, description="Daily pg_dump files kept on the database host."
    )
    backup_bucket: Annotated[str, Text(BUCKET, "an S3 bucket name")] | None = Field(
        default=None,
        description="AWS: S3 bucket the daily backup also uploads each dump to (the database host needs an "
        "instance profile allowed to write it); unset = no off-host copy.",
    )
