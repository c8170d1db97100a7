"""What the database host has: its PostgreSQL cluster, the app role's password verifier, a database's owner.

Each reads through psql as postgres (peer authentication on the local socket, no password)."""

from pyinfra.api import FactBase

from tasks.db.commands import psql


class PostgresCluster(FactBase):
    """The 'main' cluster of the distribution's PostgreSQL: {"version": "16", "config_dir": ...}, or None."""

    def requires_command(self):
        return "pg_lsclusters"

    def command(self):
        return "pg_lsclusters --no-header"

    def process(self, output):
        for line in output:
            fields = line.split()
            if len(fields) >= 4 and fields[1] == "main":
                return {"version": fields[0], "status": fields[3], "config_dir": f"/etc/postgresql/{fields[0]}/main"}
        return None


class PostgresRolePassword(FactBase):
    """None without the role; else its stored password verifier ('' when it has none)."""

    def requires_command(self, role):
        return "psql"

    def command(self, role):
        return psql(f"SELECT 'role:' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{role}'")

    def process(self, output):
        for line in output:
            if line.startswith("role:"):
                return line[len("role:") :]
        return None


class PostgresDatabaseOwner(FactBase):
    """The owner of `database`, or None when it does not exist."""

    def requires_command(self, database):
        return "psql"

    def command(self, database):
        return psql(f"SELECT 'owner:' || pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'")

    def process(self, output):
        for line in output:
            if line.startswith("owner:"):
                return line[len("owner:") :]
        return None
