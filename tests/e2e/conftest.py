"""End-to-end fixtures: real local hosts (systemd-nspawn), the real provision.py and pyinfra CLIs.

One session provisions hosts once (prefix `e2e`, subnet 10.78.0.0/24, so dev hosts on 10.77 are
never touched; E2E_PREFIX and E2E_SUBNET override both, e.g. to run two sessions at once: a lock
per prefix and per subnet refuses a collision), serves the test app (tests/testapp) from a git
daemon on the bridge address, and ALWAYS destroys the hosts and stops the daemon at the end, also
on failure or Ctrl-C. Needs root, systemd-nspawn, debootstrap and iptables (see test-hosts notes);
no skipping. The library behind them: local_platform.py (Platform, DeployResult, AppRepo,
deploy_ok) and host_checks.py (what tests read on the hosts).

Fixtures (names are stable; other e2e modules rely on them):

  platform          session  the Platform object (everything else is a shortcut to it)
  run_deploy        session  run_deploy(*extra_args) -> DeployResult: `pyinfra -y --json inventory.py
                             deploy.py *extra_args` from the project root (without -y when "--dry")
  ssh               session  ssh(host_name, command) -> (returncode, stdout) as root on that host
  provision         session  provision(*args) -> CommandResult: `python provision.py --provider local *args`
  rewrite_config    session  rewrite_config(**overrides) -> CommandResult: writes the base e2e config
                             with `overrides` deep-merged (nested dicts merge), then re-provisions with
                             --yes. `rewrite_config()` restores the base config: call it when done.
  app_repo          session  AppRepo: .url (git://10.78.0.1/testapp.git), .push_commit(message, files)
                             -> sha (files: {relative path: text, or None to delete}), .head()
  deployed          function the first full deploy of the current hosts (done once, reused):
                             a DeployResult whose db and backend hosts all succeeded. Kong's image
                             cannot be pulled here, so the kong host may be in result.failed_hosts.
                             Hosts added later (rewrite_config) are not deployed by it: run_deploy().

Test order: test_docs_e2e.py runs first among e2e modules (the docs' blocks deploy and destroy the
hosts, then boot them again), then test_platform.py (it needs fresh hosts); the other modules then
share its deployed hosts through `deployed`.
"""

import os
import signal
import sys

import pytest

from tests.e2e.local_platform import PREFIX, SUBNET, Platform, session_lock


def pytest_collection_modifyitems(items):
    """Fast tests first, then the docs' runnable blocks (they deploy the hosts first, then destroy
    and boot them again), then test_platform.py (it wants fresh hosts), then the other e2e modules."""

    def rank(item):
        if "e2e" not in item.keywords:
            return 0
        # The real app's and the RDS modules recreate the hosts for themselves, and the machine-wide
        # destroy check destroys them: last, so the others share theirs.
        # The gateway tier's module adds a second Kong node and removes it: after those sharing the hosts.
        return {
            "test_docs_e2e.py": 1,
            "test_platform.py": 2,
            "test_gateway_tier_e2e.py": 3.5,
            "test_local_machine_e2e.py": 4,
            "test_real_app.py": 4,
            "test_rds_e2e.py": 4,
        }.get(item.path.name, 3)

    items.sort(key=rank)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    locks = [session_lock(f"prefix {PREFIX}"), session_lock(f"subnet {SUBNET}")]  # noqa: F841 (held until exit)
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout sends SIGTERM: still tear down
    platform = Platform(tmp_path_factory.mktemp("e2e"))
    saved = {key: os.environ.get(key) for key in ("DEPLOY_HOME", "DEPLOY_CONFIG")}
    os.environ.update(DEPLOY_HOME=str(platform.home), DEPLOY_CONFIG=str(platform.config_path))
    try:
        platform.up()
        yield platform
    finally:
        # Always: hosts, bridge and daemon must not outlive the session, whatever happened.
        result = platform.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if result.returncode != 0:
            print(f"e2e teardown: destroy failed:\n{result.output}", file=sys.stderr)


@pytest.fixture(scope="session")
def run_deploy(platform):
    return platform.run_deploy


@pytest.fixture(scope="session")
def ssh(platform):
    return platform.ssh


@pytest.fixture(scope="session")
def provision(platform):
    return platform.provision


@pytest.fixture(scope="session")
def rewrite_config(platform):
    return platform.rewrite_config


@pytest.fixture(scope="session")
def app_repo(platform):
    return platform.app_repo


@pytest.fixture
def deployed(platform):
    return platform.ensure_deployed()
