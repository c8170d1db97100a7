"""How the deploy talks to PostgreSQL on the database host."""

import shlex

# Run as postgres through sudo: peer authentication on the local socket, no password anywhere.
AS_POSTGRES = {"_sudo": True, "_sudo_user": "postgres"}


def psql(sql: str) -> str:
    """A psql command line (no .psqlrc, stop on error, bare output). `cd /`: postgres may not read the SSH user's home."""
    return f"cd / && psql -X -v ON_ERROR_STOP=1 -tA -c {shlex.quote(sql)}"
