"""How the deploy talks to PostgreSQL on the database host."""

import shlex
from typing import Any

# Run as postgres through sudo: peer authentication on the local socket, no password anywhere.
AS_POSTGRES: dict[str, Any] = {"_sudo": True, "_sudo_user": "postgres"}

# After a reload, restart only when a changed setting cannot take effect without one.
RELOAD_OR_RESTART = (
    "systemctl reload postgresql && sleep 2 && "
    'if [ "$(cd / && runuser -u postgres -- psql -XtAc '
    "'SELECT count(*) FROM pg_settings WHERE pending_restart')\" != 0 ]; "
    "then systemctl restart postgresql; fi"
)


def psql(sql: str) -> str:
    """A psql command line (no .psqlrc, stop on error, bare output).
    `cd /`: postgres may not read the SSH user's home."""
    return f"cd / && psql -X -v ON_ERROR_STOP=1 -tA -c {shlex.quote(sql)}"
