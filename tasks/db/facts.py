"""What the database host has: its cluster and its files, the app role's password verifier, a database's owner.

Each is asked as postgres (tasks/db/commands.py's AS_POSTGRES): psql by peer authentication on the
local socket, no password; the cluster's files in postgres's own folder."""

from pyinfra.api import FactBase

from tasks.db.commands import cluster_state, psql
from tasks.paths import stat_states


class PostgresCluster(FactBase):
    """The 'main' cluster of the distribution's PostgreSQL, or None:
    {"version": "16", "status": "online", "config_dir": "/etc/postgresql/16/main",
     "files": {"pg_hba.conf": {"type": "regular file", "user", "group", "mode" (e.g. 640), "sha256"}}}
    with, in "files", each of the deploy's cluster files that exists (tasks/db/commands.py's
    CLUSTER_FILES, by their names in the folder); "sha256" only for a regular file.
    Ask it AS_POSTGRES: the folder is postgres's, and root reads nothing there."""

    def requires_command(self):
        return "pg_lsclusters"

    def command(self):
        return cluster_state()

    def process(self, output):
        lines = [line for line in output if line.strip()]
        first = lines.index("--") if "--" in lines else len(lines)
        cluster = None
        for line in lines[:first]:
            fields = line.split()
            if len(fields) >= 4 and fields[1] == "main":
                config_dir = f"/etc/postgresql/{fields[0]}/main"
                cluster = {"version": fields[0], "status": fields[3], "config_dir": config_dir, "files": {}}
                break
        if cluster is None:
            return None
        rest = lines[first + 1 :]
        second = rest.index("--") if "--" in rest else len(rest)
        digests = dict(reversed(line.split(None, 1)) for line in rest[second + 1 :] if len(line.split(None, 1)) == 2)
        prefix = f"{cluster['config_dir']}/"
        for path, state in stat_states(rest[:second]).items():
            if path.startswith(prefix):
                if path in digests:
                    state = {**state, "sha256": digests[path]}
                cluster["files"][path[len(prefix) :]] = state
        return cluster


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
