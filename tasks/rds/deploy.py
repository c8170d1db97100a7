"""The backends' side of a managed database (`db_service: rds`; the record: host data `database`).

- Every backend keeps the database's CA bundle (tasks/rds/render.py ca_bundle): on AWS the bundle
  RDS publishes (ca_bundle_url, downloaded once), locally the stand-in's CA (ca_bundle_pem); its
  connections (the app's, the markers', the history's, the deploy lock's) verify the server with it.
- The setup backend makes the app's role and database and the migration history's role with the
  master user (files/backend/rds_roles.py) just before a setup, and only then: the master
  credentials are in a root-only file for as long as that runs, and nowhere else on a backend.
"""

from io import StringIO

from pyinfra import host
from pyinfra.api import operation
from pyinfra.operations import files

from stack.settings import PROJECT_ROOT
from tasks import asked_once, uploads
from tasks.backend.facts import DeployMarkers
from tasks.backend.layout import LAYOUT, Layout
from tasks.backend.operations import no_commit, release_commit
from tasks.backend.setup import HISTORY, HISTORY_MARKER, read_markers, root_only_file
from tasks.rds.render import ca_bundle, master_credentials, roles_script, roles_step


def deploy_database_files(database: dict, layout: Layout = LAYOUT) -> None:
    """The CA bundle and the roles script, root's, in root's folders (they exist by now)."""
    if database.get("ca_bundle_pem"):
        uploads.put(
            name="Install the database's CA certificate",
            src=StringIO(database["ca_bundle_pem"]),
            dest=ca_bundle(layout),
            user="root",
            group="root",
            mode="644",
            create_remote_dir=False,
        )
    else:
        files.download(
            name="Download the database's CA bundle",
            src=database["ca_bundle_url"],
            dest=ca_bundle(layout),
            user="root",
            group="root",
            mode="644",
        )
    uploads.put(
        name="Install the script that makes the app's database roles",
        src=str(PROJECT_ROOT / "files" / "backend" / "rds_roles.py"),
        dest=roles_script(layout),
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )


@operation()
def database_roles(repo: str, ref: str, login: str, layout: Layout = LAYOUT):
    """Make the app's role and database and the history's role with the master user (`login`,
    master_login's text), whenever the setup of `ref` is due (the markers say so) or the app
    cannot read them (no role or database yet); else nothing, and no master credentials."""
    commit = release_commit(repo, ref, layout)
    if commit is None:
        yield from no_commit(repo, ref, "the database's roles are checked after the build")
        return
    markers, error = read_markers(layout.release(commit))
    if not error and markers and markers.get("setup") == commit and markers.get(HISTORY_MARKER) == HISTORY:
        host.noop(f"the database is set up for {commit[:12]}: its roles exist")
        return
    asked_once.forget(DeployMarkers)
    credentials = master_credentials(layout)
    yield from root_only_file(credentials, login)
    yield f"trap 'rm -f {credentials}' EXIT; {roles_step(layout)}"
