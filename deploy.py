"""Configure every host recorded by provision.py: pyinfra inventory.py deploy.py [--dry --diff].

This file only routes: each group's work lives in its own module under tasks/.
The database is configured first, then the backends (which migrate against it), then Kong
(whose config lists the backends).
"""

from pyinfra import host

from stack.deploy_lock import take
from stack.settings import load_settings
from tasks.backend import deploy_backend
from tasks.database import deploy_database
from tasks.kong import deploy_kong

# One deploy at a time (held on the database host; not with --dry): a second one stops here.
take(load_settings().app_ref)
from tasks.logs import deploy_log_rotation

if "db" in host.groups:
    deploy_database()

if "backends" in host.groups:
    deploy_backend()
    deploy_log_rotation()

if "kong" in host.groups:
    deploy_kong()
