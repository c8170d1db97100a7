"""What the deploy lock runs where it lives (pure: text in, shell script out; tested by running it).

The lock is a session: one shell on the lock's host that holds it for as long as its stdin stays
open, so it ends with the run's connection whatever ends that (the run gave it back, pyinfra
exited, the controller was SIGKILLed, its network went away) and needs neither an expiry nor a
renewal, and nothing can take it over while its holder lives.

What the session holds, on a self-managed database host (today's only place):
- PostgreSQL's session advisory lock `pg_try_advisory_lock(LOCK_KEY)` in the `postgres` database
  (which the app role cannot reach: pg_hba lets it into its own database only), taken by a psql
  that reads the session's stdin. The holder's description is a literal in the statement that
  took it, so any other session reads it in pg_stat_activity.query (application_name is capped
  at 63 bytes: too short for a ref).
- `flock` on LOCK_FOLDER/lock (/run: root-only, tmpfs), taken first: it exists before PostgreSQL
  is installed (the very first deploy holds only it) and survives the PostgreSQL restart a deploy
  may do (max_connections), which ends every PostgreSQL session, the lock's too.
A managed database (RDS) has neither a host to SSH to nor a restart by the deploy: its place runs
the same script on a backend without the host lock, psql connecting to the database over TLS as a
deploy role (see LockPlace).

The session prints one line, then holds: `acquired`, `held <holder>`, or psql's error.
"""

import shlex
from dataclasses import dataclass

LOCK_KEY = 0x73707232  # "spr2": the advisory lock's key (bigint), the same for every run
LOCK_FOLDER = "/run/sprint2-deploy"
HOLDER_MAX = 300  # characters of the description kept (pg_stat_activity keeps 1024 of a query)
NO_HOLDER = "a run that is just starting or ending"
ENDED = "a session that has just ended"


@dataclass(frozen=True)
class LockPlace:
    """Where the lock's session runs: the first host of `role`, as root; `psql` opens a
    superuser (or deploy-role) session to the database from there; `ready` says whether the
    database answers yet; `host_lock`: also the host's flock (a self-managed database host)."""

    role: str = "db"
    psql: str = "runuser -u postgres -- psql"
    database: str = "postgres"
    ready: str = "pg_isready -q"
    host_lock: bool = True
    folder: str = LOCK_FOLDER
    group: str = "db"  # the role's inventory group
    conninfo: str = ""  # libpq's connection words before dbname (a managed database: host, user, TLS)
    password_on_stdin: bool = False  # the session's first input line is the role's password (PGPASSWORD)


PLACE = LockPlace()


def managed_place(address: str, port: int, user: str, ca_bundle: str) -> LockPlace:
    """The lock's place with a managed database (RDS): the setup backend (the first by name), psql
    connecting over TLS (verify-full) as the migration history's deploy-only role `user` to the
    `postgres` database, its password read from the session's first line (never a command line).
    No host lock: nothing restarts the database during a deploy. Before the first setup has made
    that role (or the CA bundle) it cannot log in: the run goes on without a lock, as the very
    first deploy of a db host holds only that host's flock."""
    conninfo = f"host={address} port={port} user={user} sslmode=verify-full sslrootcert={ca_bundle} connect_timeout=10"
    place = LockPlace(
        role="backend",
        psql="psql",
        host_lock=False,
        group="backends",
        conninfo=conninfo,
        password_on_stdin=True,
    )
    ready = f"[ -r {ca_bundle} ] && {_psql(place)} -c 'SELECT 1' >/dev/null"
    return LockPlace(**{**place.__dict__, "ready": ready})


def quote_sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_OURS = (
    f"l.locktype = 'advisory' AND l.classid = {LOCK_KEY >> 32} AND l.objid = {LOCK_KEY & 0xFFFFFFFF} "
    "AND l.objsubid = 1 AND l.pid <> pg_catalog.pg_backend_pid()"
)


def holder_sql() -> str:
    """The description of the session holding the advisory lock, read from the statement that
    took it; a session that took it otherwise is named by its pid, user and application."""
    pattern = r"AS answer FROM \(SELECT '(.*)' AS holder\)"
    return (
        "SELECT COALESCE(pg_catalog.replace(pg_catalog.substring(a.query, $re$"
        + pattern
        + "$re$), $q$''$q$, $q$'$q$), 'PostgreSQL session ' || a.pid || ' of ' || a.usename "
        "|| ' (' || a.application_name || ')') "
        "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
        f"WHERE {_OURS} AND l.granted LIMIT 1"
    )


def take_sql(line: str) -> str:
    """One statement: the lock if free, else who holds it; its own text carries `line`."""
    return (
        f"SELECT CASE WHEN pg_catalog.pg_try_advisory_lock({LOCK_KEY}) THEN 'acquired' "
        f"ELSE 'held ' || COALESCE(({holder_sql()}), {quote_sql(ENDED)}) END "
        f"AS answer FROM (SELECT {quote_sql(line[:HOLDER_MAX])} AS holder) AS deploy;"
    )


def _psql(place: LockPlace) -> str:
    words = f"{place.conninfo} " if place.conninfo else ""
    conninfo = shlex.quote(f"{words}dbname={place.database} application_name=sprint2-deploy")
    return f"{place.psql} -X -q -At -v ON_ERROR_STOP=1 {conninfo}"


def _password(place: LockPlace) -> str:
    return "IFS= read -r PGPASSWORD; export PGPASSWORD; " if place.password_on_stdin else ""


def hold_script(line: str, place: LockPlace | None = None) -> str:
    """The session: take the lock (or say who holds it) and hold it until stdin closes."""
    place = place or PLACE
    folder, holder = place.folder, f"{place.folder}/holder"
    advisory = (
        # psql holds it; it and cat do not keep the host lock open (only this shell: unlock kills it).
        f"{{ printf '%s\\n' {shlex.quote(take_sql(line))}; exec cat; }} 9<&- | {_psql(place)} 9<&- 2>&1"
    )
    if not place.host_lock:
        unlocked = "echo acquired; exec cat > /dev/null"
        return f"cd / && {_password(place)}if {place.ready} 2>/dev/null; then {advisory}; else {unlocked}; fi"
    return (
        # Each command here is a process on every deploy's path: the shell's own tests where they do.
        # Two deploys starting at once both find no folder: the second's mkdir fails, the folder is there.
        f"cd / && umask 077 && {{ [ -d {folder} ] || mkdir {folder} 2>/dev/null || [ -d {folder} ]; }} "
        f"&& exec 9>>{folder}/lock || exit 1\n"
        "if ! flock -n 9; then\n"
        # The holder writes its description just after taking the flock: wait a moment for it.
        f"  i=0; while [ ! -s {holder} ] && [ $i -lt 20 ]; do sleep 0.05; i=$((i + 1)); done\n"
        f'  echo "held $(head -n 1 {holder} 2>/dev/null || echo {shlex.quote(NO_HOLDER)})"; exit 0\n'
        "fi\n"
        # The description, then this shell's pid (for unlock), in one write.
        f"printf '%s\\n%s\\n' {shlex.quote(line[:HOLDER_MAX])} $$ > {holder}\n"
        f"if {place.ready} 2>/dev/null; then {advisory}; else echo acquired; cat > /dev/null 9<&-; fi\n"
        f"rm -f {holder}\n"
    )


def unlock_script(place: LockPlace | None = None) -> str:
    """End whatever session holds the lock: PostgreSQL's holder terminated, the host lock's
    processes killed. Prints `released <holder>` or `none`."""
    place = place or PLACE
    folder, holder = place.folder, f"{place.folder}/holder"
    # Who, then the end of its session (two statements: the description is read before it goes).
    terminate = shlex.quote(
        f"SELECT pg_catalog.pg_terminate_backend(l.pid) FROM pg_catalog.pg_locks l WHERE {_OURS} AND l.granted"
    )
    advisory = (
        f"pg=$({_psql(place)} -c {shlex.quote(holder_sql())} -c {terminate} 2>/dev/null | head -n 1); "
        '[ -n "$found" ] || found="$pg"'
    )
    if not place.host_lock:
        answer = 'if [ -n "$found" ]; then echo "released $found"; else echo none; fi'
        return f'cd / && {_password(place)}found=""; {advisory}; {answer}'
    return (
        f'cd / && found=""; lock={folder}/lock\n'
        # The shell that holds the host lock (its pid is the holder file's second line).
        'if [ -e "$lock" ] && ! flock -n "$lock" true; then\n'
        f'  found="$(head -n 1 {holder} 2>/dev/null)"; [ -n "$found" ] || found="a run"\n'
        f"  pid=$(sed -n 2p {holder} 2>/dev/null)\n"
        # Only if that process holds it open (dash keeps it on another fd while it runs a command).
        '  if [ -n "$pid" ] && ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF -- "-> $lock"; then kill -9 "$pid"; fi\n'
        "fi\n"
        f"if {place.ready} 2>/dev/null; then {advisory}; fi\n"
        'i=0; while [ -e "$lock" ] && ! flock -n "$lock" true && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n'
        f"rm -f {holder}\n"
        'if [ -n "$found" ]; then echo "released $found"; else echo none; fi\n'
    )
