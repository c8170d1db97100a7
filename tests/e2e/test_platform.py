"""The platform as a whole on real local hosts: provisioning, idempotence, --dry --diff, bad settings.

Runs first among the e2e modules (see conftest.py) and in file order: provisioning checks, then a
dry run on fresh hosts, then the deploy and its re-run.
"""

import re

import pytest

pytestmark = pytest.mark.e2e

# What a deploy writes lives under these folders: a --dry run must leave them untouched.
WATCHED = "/etc /usr /opt /srv /home /var/lib/dpkg"  # not data folders: running services write there
MARK = "/root/.e2e-dry-mark"


def untouched_since_mark(ssh, name) -> list[str]:
    rc, output = ssh(name, f"find {WATCHED} -newer {MARK} -not -type d 2>/dev/null | head -20")
    return output.split()


def test_second_provision_changes_nothing(platform, provision):
    before = {name: host["local"]["pid"] for name, host in platform.hosts.items()}

    result = provision("--yes")

    assert result.returncode == 0, result.output
    assert "No changes: 4 hosts running." in result.stdout
    assert {name: host["local"]["pid"] for name, host in platform.hosts.items()} == before


def test_provision_dry_prints_the_plan_and_changes_nothing(platform, provision):
    p = platform.prefix
    before = platform.hosts
    platform.write_config(backends=["b", "c"])
    try:
        result = provision("--dry")
    finally:
        platform.write_config()

    assert result.returncode == 0, result.output
    assert f"+ create {p}-backend-c  (backend, {platform.ip(20)})" in result.stdout
    assert f"- destroy {p}-backend-a  (backend, {platform.ip(20)})" in result.stdout
    assert "Plan: 1 to create, 0 to start, 1 to destroy, 3 unchanged." in result.stdout
    assert platform.hosts == before


def test_adding_a_backend_creates_only_it_and_removing_it_needs_confirmation(platform, provision, ssh):
    p, c = platform.prefix, f"{platform.prefix}-backend-c"
    before = {name: host["local"]["pid"] for name, host in platform.hosts.items()}

    added = platform.rewrite_config(backends=["a", "b", "c"])
    assert added.returncode == 0, added.output
    assert f"{c} ({platform.ip(22)}) answers SSH" in added.stdout
    assert ssh(c, "hostname") == (0, f"{c}\n")
    assert {name: platform.hosts[name]["local"]["pid"] for name in before} == before

    platform.write_config()
    refused = provision()  # no terminal, no --yes: must not destroy
    assert refused.returncode == 1
    assert f"refusing to destroy {c} without confirmation: re-run with --yes" in refused.stderr
    assert c in platform.hosts

    removed = platform.rewrite_config()
    assert removed.returncode == 0, removed.output
    assert f"destroyed {c} ({platform.ip(22)})" in removed.stdout
    assert sorted(platform.hosts) == [f"{p}-backend-a", f"{p}-backend-b", f"{p}-db", f"{p}-kong"]


@pytest.mark.parametrize(
    "config, key",
    [
        ({"colour": "blue"}, "colour: unknown setting"),
        ({"backends": "a"}, "backends: expected a non-empty list"),
        ({"gateway": {"retries": "many"}}, "gateway/retries: expected a whole number"),
    ],
)
def test_bad_config_is_refused_naming_the_key(platform, run_deploy, provision, config, key):
    platform.write_config(**config)
    try:
        deploy = run_deploy("--dry")
        provisioned = provision("--dry")
    finally:
        platform.write_config()

    for result in (deploy, provisioned):
        assert result.returncode == 2, result.output
        assert key in result.stderr
        assert "Traceback" not in result.output


def test_dry_diff_on_fresh_hosts_shows_the_files_and_changes_nothing(platform, run_deploy, ssh):
    if not platform.fresh:
        platform.recreate_hosts()
    names = platform.names("db") + platform.names("backend")
    for name in names:
        assert ssh(name, f"touch {MARK}")[0] == 0

    result = run_deploy("--dry", "--diff")

    assert result.payload is not None and result.returncode == 0, result.output[-4000:]
    for name in names:
        assert result.changed.get(name), f"{name}: a fresh host should need changes"
        assert re.search(rf"\[{re.escape(name)}\]\s+Will (create|modify) ", result.stderr), (
            f"{name}: no file diff shown by --dry --diff"
        )
        assert untouched_since_mark(ssh, name) == [], f"{name}: --dry changed files"


def test_second_deploy_changes_nothing(platform, deployed, run_deploy):
    second = run_deploy()

    assert second.payload is not None, second.output
    assert set(second.failed_hosts) <= set(platform.names("kong")), second.output[-4000:]
    second.assert_no_changes()


def test_dry_diff_on_deployed_hosts_changes_nothing(platform, deployed, run_deploy, ssh):
    names = platform.names("db") + platform.names("backend")
    for name in names:
        assert ssh(name, f"touch {MARK}")[0] == 0

    result = run_deploy("--dry", "--diff")

    assert result.payload is not None and result.returncode == 0, result.output[-4000:]
    # Kong's host stopped at the image pull in the first deploy: what never ran there is still to do.
    result.assert_no_changes(ignore=platform.never_completed(deployed))
    for name in names:
        assert not re.search(rf"\[{re.escape(name)}\]\s+Will (create|modify) ", result.stderr), name
        assert untouched_since_mark(ssh, name) == [], f"{name}: --dry changed files"


def test_whole_platform_deploys(platform, deployed):
    """Honest about Kong: its image cannot be pulled on these machines, so its host fails there,
    with one clear line; anything else failing is a real failure."""
    pull = [line.strip() for line in deployed.stderr.splitlines() if "cannot pull" in line]
    if deployed.failed_hosts == platform.names("kong") and pull:
        pytest.xfail(f"Kong's image cannot be pulled here: {pull[0]}")
    assert deployed.failed_hosts == [], deployed.output[-4000:]
