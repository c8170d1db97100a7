"""Every apt-get the deploy runs waits for apt's lock (an interrupted deploy leaves apt running on
the host: the re-run must wait for it, not fail with `Could not get lock`), and finishes an
install dpkg was interrupted in."""

import re

from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages

from stack.settings import settings_from
from tasks.packages import LOCK_TIMEOUT_S, packages_installed, update_command
from tests.harness import run_deploy
from tests.tasks.backend import test_backend_deploy as test_backend
from tests.tasks.db import test_db_deploy as test_database
from tests.tasks.kong import test_kong_deploy as test_kong

kept_locks = test_backend.kept_locks  # the controller keeps the backend tests' locks

APT_GET = re.compile(r"apt-get\b[^;&|]*")


def apt_invocations(run) -> list[str]:
    return [call for command in run.commands for call in APT_GET.findall(command)]


def assert_every_apt_get_waits(run):
    calls = apt_invocations(run)
    assert calls, f"no apt-get in {run.commands}"
    for call in calls:
        assert f"-o DPkg::Lock::Timeout={LOCK_TIMEOUT_S}" in call, call


def test_the_database_hosts_apt_waits_for_the_lock():
    assert_every_apt_get_waits(test_database.deploy(test_database.fresh_host()))


def test_the_backends_apt_waits_for_the_lock():
    settings = test_backend.base()
    facts = test_backend.host_facts(settings, installed=False, commit=None)
    assert_every_apt_get_waits(test_backend.deploy(facts, settings))


def test_the_kong_hosts_apt_waits_for_the_lock():
    settings = settings_from({})
    assert_every_apt_get_waits(test_kong.deploy(settings, test_kong.fresh_host(settings)))


@deploy("Packages")
def _install(packages):
    packages_installed(name="Ensure the packages are installed", packages=packages)


def test_missing_packages_refresh_the_lists_then_install_finishing_an_interrupted_dpkg():
    run = run_deploy(_install, facts={DebPackages: {"git": {"1"}}}, args=(["git", "logrotate"],))
    wait = f"-o DPkg::Lock::Timeout={LOCK_TIMEOUT_S}"
    install = (
        # needrestart must restart nothing: the deploy restarts what it changed, behind its checks.
        f"DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 apt-get -y {wait} "
        f"-o Dpkg::Options::=--force-confdef "
        f"-o Dpkg::Options::=--force-confold install logrotate"
    )
    assert run.op("Ensure the packages are installed").commands == [
        update_command(),
        # dpkg refuses to install after an interrupted run until `dpkg --configure -a`; by then
        # apt has waited for the lock, so the repair does not collide with the other apt.
        f"{install} || {{ DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 "
        f"dpkg --configure -a && {install}; }}",
    ]


def test_installed_packages_change_nothing():
    run = run_deploy(_install, facts={DebPackages: {"git": {"1"}, "logrotate": {"3"}}}, args=(["git", "logrotate"],))
    assert run.changed == []


def test_every_role_of_a_host_is_installed_in_one_apt_call_without_recommends():
    from tasks.host_packages import packages_for

    assert packages_for(["db"]) == ["postgresql", "gzip"]
    assert packages_for(["backends"]) == ["git", "ca-certificates", "python3-psycopg2", "logrotate"]
    assert packages_for(["kong"]) == []
    assert packages_for(["backends"], managed_database=True) == [
        "git",
        "ca-certificates",
        "python3-psycopg2",
        "logrotate",
        "postgresql-client",
    ]
    assert packages_for(["kong"], managed_database=True) == []

    @deploy("All packages")
    def all_packages():
        packages_installed(name="Install", packages=packages_for(["db", "backends"]), recommends=False)

    run = run_deploy(all_packages, facts={DebPackages: {}})
    assert (
        run.op("Install")
        .commands[1]
        .startswith(
            "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 apt-get -y "
            f"-o DPkg::Lock::Timeout={LOCK_TIMEOUT_S} --no-install-recommends "
        )
    )
    assert run.op("Install").commands[1].count("apt-get -y") == 2  # the retry after dpkg --configure -a
