"""Distribution packages, installed so that a deploy interrupted while apt ran can be re-run at once.

Ctrl-C of a deploy ends pyinfra, not the apt-get it started on the host: that apt keeps running
and holds dpkg's lock for minutes. Every apt-get here waits for the lock, bounded, instead of
failing with `Could not get lock /var/lib/dpkg/lock-frontend`: installs through apt's own
DPkg::Lock::Timeout, `apt-get update` (which ignores that option for /var/lib/apt/lists/lock,
measured with apt 2.6) by trying again every few seconds. An install that dpkg itself was
interrupted in is finished first.
The package lists are refreshed only when something is missing: a converged host changes nothing,
however old its apt cache is. The installed packages are read once per host per run, however many
components ask (tasks/asked_once.py).
"""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages

from tasks import asked_once

# Long enough for an unattended-upgrades run or an interrupted install of docker.io to finish.
LOCK_TIMEOUT_S = 600
WAIT = f"-o DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"
# needrestart (Ubuntu Server has it) would restart every service using a replaced library after
# the install, PostgreSQL, gunicorn and Docker among them, in the middle of a deploy: list mode
# and suspended, it restarts nothing (the deploy restarts what it changed, behind its checks).
NONINTERACTIVE = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1"
RETRY_S = 5


def update_command() -> str:
    """`apt-get update`, tried again while another apt holds the lists' lock, up to LOCK_TIMEOUT_S."""
    tries = LOCK_TIMEOUT_S // RETRY_S
    return (
        f"tries=0; until out=$(apt-get -q {WAIT} update 2>&1); do "
        f"case $out in *'Could not get lock'*) ;; *) printf '%s\\n' \"$out\" >&2; exit 1;; esac; "
        f"tries=$((tries + 1)); if [ $tries -ge {tries} ]; then "
        f"printf '%s\\n' \"$out\" 'apt is still busy after {LOCK_TIMEOUT_S} s' >&2; exit 1; fi; "
        f"sleep {RETRY_S}; done"
    )


def install_command(packages: list[str], recommends: bool = True) -> str:
    """Install `packages`, waiting for dpkg's lock. After a killed dpkg, apt refuses everything
    until `dpkg --configure -a`: when the first install fails the lock was free (apt waited for
    it), so the repair runs alone. `recommends=False`: only what the packages depend on."""
    install = (
        f"{NONINTERACTIVE} apt-get -y {WAIT}{'' if recommends else ' --no-install-recommends'} "
        "-o Dpkg::Options::=--force-confdef "
        f"-o Dpkg::Options::=--force-confold install {' '.join(packages)}"
    )
    return f"{install} || {{ {NONINTERACTIVE} dpkg --configure -a && {install}; }}"


@operation()
def packages_installed(packages: list[str], recommends: bool = True):
    installed = asked_once.fact(DebPackages) or {}
    missing = [package for package in packages if package not in installed]
    if not missing:
        host.noop(f"{', '.join(packages)} installed")
        return
    asked_once.forget(DebPackages)
    yield update_command()
    yield install_command(missing, recommends)
