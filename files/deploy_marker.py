"""Deploy markers kept in the application's database (installed by tasks/backend.py).

    python deploy_marker.py get NAME         prints the value, or nothing
    python deploy_marker.py set NAME VALUE

A marker in the database, not a file on a backend, so that what ran once for a database
(its populate scripts) never runs again from another or a new backend, and so that every
backend agrees which commit the database was migrated to. Uses the deploy's Django settings.
"""
import sys

import django

django.setup()

from django.db import connection  # noqa: E402

TABLE = "sprint2_deploy_marker"


def main(arguments):
    action, name = arguments[0], arguments[1]
    with connection.cursor() as cursor:
        if action == "get":
            # Reads only (pyinfra --dry asks too): no table yet means no marker.
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
            if not cursor.fetchone()[0]:
                return
            cursor.execute(f"SELECT value FROM {TABLE} WHERE name = %s", [name])
            row = cursor.fetchone()
            if row:
                print(row[0])
        elif action == "set":
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "name varchar(64) PRIMARY KEY, value text NOT NULL, updated timestamptz NOT NULL DEFAULT now())"
            )
            cursor.execute(
                f"INSERT INTO {TABLE} (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated = now()",
                [name, arguments[2]],
            )
        else:
            raise SystemExit(f"unknown action {action!r}: expected get or set")


if __name__ == "__main__":
    main(sys.argv[1:])
