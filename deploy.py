"""Configure every host recorded by provision.py: pyinfra inventory.py deploy.py [--dry --diff].

This file only routes: each group's work lives in its own package under tasks/ (tasks/db,
tasks/backend, tasks/kong). The database is configured first, then the backends (which migrate
against it); Kong alongside them (its config lists the backends' addresses, which need not serve
yet: Kong's health checks and retries pass over one that does not answer), after which every
Kong node joins the backends' roll to drain each batch before its switch.
"""

from pyinfra import host, state

from stack.deploy_lock import take
from stack.settings import load_settings
from tasks.backend.deploy import deploy_backend
from tasks.backend.logs import deploy_log_rotation
from tasks.db.deploy import deploy_db
from tasks.host_packages import packages_for
from tasks.kong.deploy import deploy_kong
from tasks.packages import packages_installed
from tasks.shared import managed_database

# One deploy at a time (held on the database host; not with --dry): a second one stops here.
take(load_settings().app_ref, state)

# One apt call per host, all hosts at once, before any role's own steps (tasks/host_packages.py).
packages_installed(
    name="Ensure each role's packages are installed, on every host at once",
    packages=packages_for(host.groups, managed_database=managed_database() is not None),
    recommends=False,
)

if "db" in host.groups:
    deploy_db()

# Before the roll below: a Kong node then serves when the backends switch, and its own steps run
# beside the backends' (pyinfra orders each host's operations as they are called here).
if "kong" in host.groups:
    deploy_kong()

# The Kong nodes too: each drains the backends of a batch before their switch (tasks/kong/drain.py).
if "backends" in host.groups or "kong" in host.groups:
    deploy_backend()

if "backends" in host.groups:
    deploy_log_rotation()
