"""The app's system user and group, as pyinfra's server.group(system=True) and server.user(system=True,
create_home=False) make them, checked with one `getent` of that user and group (facts.SystemAccount)
rather than pyinfra's facts of every user (which runs lastlog for each) and every group. The home
directory is the deploy's own next step."""

import shlex

from pyinfra import host
from pyinfra.api import operation

from tasks import asked_once
from tasks.backend.facts import SystemAccount


@operation()
def system_group(group: str):
    """The system group `group` exists."""
    if asked_once.fact(SystemAccount, account=group)["group"] is not None:
        host.noop(f"group {group} exists")
        return
    asked_once.forget(SystemAccount)
    yield f"groupadd -r {shlex.quote(group)}"


@operation()
def system_user(user: str, home: str, shell: str):
    """The system user `user` exists, in the group of the same name (made before), with `home`
    (not created here) and `shell`."""
    account = asked_once.fact(SystemAccount, account=user)
    entry, quoted = account["user"], shlex.quote(user)
    if entry is None:
        asked_once.forget(SystemAccount)
        yield f"useradd -r -M -d {shlex.quote(home)} -s {shlex.quote(shell)} -g {quoted} {quoted}"
        return
    changes = []
    if entry["home"] != home:
        changes.append(f"-d {shlex.quote(home)}")
    if entry["shell"] != shell:
        changes.append(f"-s {shlex.quote(shell)}")
    if entry["gid"] != account["group"]:
        changes.append(f"-g {quoted}")
    if not changes:
        host.noop(f"user {user} exists")
        return
    asked_once.forget(SystemAccount)
    yield f"usermod {' '.join(changes)} {quoted}"
