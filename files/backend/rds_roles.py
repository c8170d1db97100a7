"""Managed by the deploy (tasks/rds/): the app's role and database on a managed database (RDS).

    python3 -I rds_roles.py CREDENTIALS

Run as root on the setup backend only, while a setup runs, with the master user's login in
CREDENTIALS (a root-only file the deploy writes just before and removes right after: the master
password is on no command line and in no file of the app's). The master user of RDS may create
roles and databases but is no superuser; every statement here is PostgreSQL's ordinary CREATE
ROLE / ALTER ROLE / GRANT / CREATE DATABASE, in the `postgres` database, over TLS verified against
the CA bundle (sslmode=verify-full), so no code another role owns runs in this session.

What it makes, each only when missing (a role's password is set only when the role does not log
in with it: RDS lets no one read pg_authid, so the check is a login; the command carries the SCRAM
verifier computed by the deploy, never the password):
- the app's role (LOGIN), which owns the app's database;
- the app's database;
- the migration history's deploy-only role (LOGIN NOINHERIT, CREATE on the app's database only:
  tasks/db/history.py says why).
Prints one line per change, or `nothing to change`.
"""

import json
import sys


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


try:
    import psycopg2
    from psycopg2 import sql
except ImportError:
    fail("python3-psycopg2 is not installed on this backend (the deploy installs it)")


def connect(login, user, password, dbname):
    return psycopg2.connect(
        host=login["host"],
        port=login["port"],
        dbname=dbname,
        user=user,
        password=password,
        sslmode="verify-full",
        sslrootcert=login["sslrootcert"],
        connect_timeout=10,
        application_name="sprint2-deploy-roles",
        options="-c search_path=pg_catalog",
    )


def logs_in(login, user, password, dbname):
    """Whether `user` logs in to `dbname` with `password` (the master's own login has just worked,
    so a refusal here is the role's password, or a database that is not there yet)."""
    try:
        connect(login, user, password, dbname).close()
    except psycopg2.OperationalError:
        return False
    return True


def one(cursor, query, *args):
    cursor.execute(query, args)
    row = cursor.fetchone()
    return row[0] if row else None


def login_role(cursor, login, name, password, verifier, dbname, attributes, done):
    role = sql.Identifier(name)
    if one(cursor, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", name) is None:
        cursor.execute(sql.SQL("CREATE ROLE {} WITH " + attributes + " PASSWORD %s").format(role), [verifier])
        done.append(f"created the role {name}")
    elif not logs_in(login, name, password, dbname):
        cursor.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD %s").format(role), [verifier])
        done.append(f"set the password of the role {name}")


def main(path):
    with open(path, encoding="utf-8") as handle:
        login = json.load(handle)
    try:
        connection = connect(login, login["master_user"], login["master_password"], "postgres")
    except psycopg2.Error as error:
        fail(f"cannot log in as the master user {login['master_user']}: {str(error).strip().splitlines()[0]}")
    connection.autocommit = True  # CREATE DATABASE runs outside a transaction
    done: list[str] = []
    master = login["master_user"]
    database, owner, history = login["database"], login["owner"], login["history_role"]
    try:
        with connection.cursor() as cursor:
            login_role(
                cursor, login, owner, login["owner_password"], login["owner_verifier"], "postgres", "LOGIN", done
            )
            # CREATE DATABASE ... OWNER and ALTER ... OWNER need the master to be a member of the owner.
            if not one(cursor, "SELECT pg_catalog.pg_has_role(current_user, %s, 'MEMBER')", owner):
                cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(master)))
                done.append(f"made {master} a member of {owner} (to give it its database)")
            found = one(
                cursor,
                "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = %s",
                database,
            )
            if found is None:
                cursor.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
                )
                done.append(f"created the database {database} owned by {owner}")
            elif found != owner:
                cursor.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(owner))
                )
                done.append(f"gave the database {database} back to {owner} (was {found})")
            login_role(
                cursor,
                login,
                history,
                login["history_password"],
                login["history_verifier"],
                database,
                "LOGIN NOINHERIT",
                done,
            )
            if not one(cursor, "SELECT pg_catalog.has_database_privilege(%s, %s, 'CREATE')", history, database):
                cursor.execute(
                    sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                        sql.Identifier(database), sql.Identifier(history)
                    )
                )
                done.append(f"let {history} create its schema in {database}")
    except psycopg2.Error as error:
        fail(f"as the master user {master}: {str(error).strip().splitlines()[0]}")
    finally:
        connection.close()
    print("\n".join(done) or "nothing to change")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: rds_roles.py CREDENTIALS")
    main(sys.argv[1])
