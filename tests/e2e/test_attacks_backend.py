"""The app user against root on a backend (issue 18): each attack replayed as `sprint2` would
(`runuser -u sprint2`), then the deploy, the rollback or the run helper as the operator runs them.

Whoever breaks into the app runs as `sprint2`; that must be where it ends. Each test checks that a
root-only file stayed byte for byte what it was (owner and mode too), that /etc/ld.so.preload was not
made, that no planted code ran, that nothing hung, and that the next deploy converges.
"""

import os
import shlex
import signal
import subprocess

import pytest

from tasks.backend.render import requirements_key
from tests.e2e.local_platform import PYINFRA, ROOT, DeployResult, deploy_ok

pytestmark = pytest.mark.e2e

HOME = "/srv/sprint2"
TARGET = "/root/h1-target"  # a root-only file the attacker wants to read or overwrite
TARGET_TEXT = "root only: h1 secret 7c1d\n"
RAN = "/root/h1-planted-code-ran"  # what planted code would make if it ran as root
# A big root-only file, as /swap.img is on Ubuntu: root's `cat` of it never ends (and leaks memory).
# /proc/kcore is tried too, but systemd-nspawn puts an empty file over it on the local hosts.
BIG = "/root/h1-big"
STATE = (
    f"stat -c '%U %G %a %s' {TARGET} && sha256sum {TARGET} && cat {TARGET}; ls -la /etc/ld.so.preload {RAN} 2>&1; true"
)


def as_app(ssh, name: str, script: str) -> tuple[int, str]:
    """`script` run by the attacker: the app user, in a shell of its own."""
    return ssh(name, f"cd / && runuser -u sprint2 -- sh -c {shlex.quote(script)}")


def plant_target(ssh, name: str) -> str:
    code, out = ssh(
        name,
        f"rm -f /etc/ld.so.preload {RAN}; printf %s {shlex.quote(TARGET_TEXT)} > {TARGET}; "
        f"chown root:root {TARGET}; chmod 600 {TARGET}; {STATE}",
    )
    assert code == 0, out
    return out


def assert_untouched(ssh, name: str, before: str) -> None:
    code, after = ssh(name, STATE)
    assert after == before, f"{name}: the root-only {TARGET} or /etc/ld.so.preload changed:\n{before}\n---\n{after}"
    assert "root root 600" in after and TARGET_TEXT in after, after
    assert "cannot access '/etc/ld.so.preload'" in after and f"cannot access '{RAN}'" in after, after


def plant_big(ssh, name: str) -> None:
    code, out = ssh(name, f"rm -f {BIG} && truncate -s 8G {BIG} && chmod 600 {BIG}")
    assert code == 0, out


def assert_deployed(platform, result: DeployResult) -> None:
    """Every host but Kong (whose image cannot be pulled here) succeeded."""
    assert result.payload is not None, result.output[-4000:]
    bad = [name for name in result.failed_hosts if name not in platform.names("kong")]
    assert not bad, result.output[-6000:]


def current_release(ssh, name: str) -> str:
    code, out = ssh(name, f"readlink -f {HOME}/current")
    assert code == 0 and out.strip().startswith(f"{HOME}/releases/"), out
    return out.strip()


def deploy_within(platform, seconds: float, script: str = "deploy.py") -> DeployResult:
    """A deploy (or rollback) that must end within `seconds`: a link to /proc/kcore read by root never ends."""
    command = [PYINFRA, "-y", "--json", "inventory.py", script]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=platform.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{script} did not end within {seconds} s: it hangs on what the app user planted")
    return DeployResult.from_run((), False, subprocess.CompletedProcess(command, process.returncode, stdout, stderr))


def test_a_swapped_conf_folder_gets_no_write_from_root(platform, run_deploy, deployed, ssh):
    name = platform.names("backend")[0]
    before = plant_target(ssh, name)
    # The attack of issue 18: the app user owns /srv/sprint2, so it can put a folder of its own in
    # place of the root-owned conf/, with links where the deploy writes. Tried at the new place too.
    attack = (
        f"cd {HOME} && mv conf conf.h1 && mkdir conf && ln -s /etc/ld.so.preload conf/gunicorn.conf.py && "
        f"ln -s {TARGET} conf/sprint2_deploy_settings.py && ln -s {TARGET} conf/deploy_marker.py; "
        f"for dir in /etc/sprint2 /etc/sprint2/conf; do ln -s {TARGET} $dir/gunicorn.conf.py; "
        f"ln -s /etc/ld.so.preload $dir/sprint2_deploy_settings.py; done; "
        f'printf \'open("{RAN}", "w")\\n\' > {HOME}/conf/sitecustomize.py; true'
    )
    as_app(ssh, name, attack)
    try:
        result = deploy_within(platform, 600)
        assert_untouched(ssh, name, before)
        assert_deployed(platform, result)
        code, out = ssh(name, f"stat -c '%U %a' {HOME}")
        assert out.strip() == "root 755", out
        deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))
        assert_untouched(ssh, name, before)
    finally:
        # Whatever main let through, put back for the next tests.
        ssh(
            name,
            f"rm -f /etc/ld.so.preload; if [ -d {HOME}/conf.h1 ]; then rm -rf {HOME}/conf; "
            f"mv {HOME}/conf.h1 {HOME}/conf; fi",
        )


def test_links_in_a_release_to_kcore_or_a_root_only_file_neither_hang_nor_leak(platform, run_deploy, deployed, ssh):
    name = platform.names("backend")[0]
    before = plant_target(ssh, name)
    plant_big(ssh, name)
    release = current_release(ssh, name)
    try:
        # The build stamp root reads to know whether the release is complete.
        for target in ("/proc/kcore", BIG):
            as_app(ssh, name, f"ln -sfn {target} {release}/.deploy-built")
            assert_deployed(platform, deploy_within(platform, 300))
            assert_untouched(ssh, name, before)

        # requirements.txt, read for the virtualenv's name when the virtualenv no longer runs: the
        # hash of a root-only file would be published as a folder name.
        code, venv = ssh(name, f"readlink -f {release}/.venv")
        assert code == 0, venv
        as_app(ssh, name, f"ln -sfn {TARGET} {release}/requirements.txt && rm -f {venv.strip()}/bin/gunicorn")
        result = deploy_within(platform, 600)
        assert_untouched(ssh, name, before)
        code, venvs = ssh(name, f"ls {HOME}/venvs")
        assert requirements_key(TARGET_TEXT) not in venvs, f"the target's hash became a virtualenv: {venvs}"
        assert_deployed(platform, result)
        as_app(ssh, name, f"ln -sfn {BIG} {release}/requirements.txt && rm -f {venv.strip()}/bin/gunicorn")
        assert_deployed(platform, deploy_within(platform, 600))
        assert_untouched(ssh, name, before)
    finally:
        ssh(name, f"rm -f {BIG}; cd {release} && runuser -u sprint2 -- git checkout -- requirements.txt; true")
    deploy_ok(platform, run_deploy)
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))


def test_a_linked_history_neither_hangs_nor_leaks_in_a_rollback(platform, run_deploy, deployed, ssh):
    names = platform.names("backend")
    befores = {name: plant_target(ssh, name) for name in names}
    saved = {}
    for name in names:
        plant_big(ssh, name)
        saved[name] = ssh(name, f"cat {HOME}/releases/.history 2>/dev/null")[1]
    try:
        for target in ("/proc/kcore", BIG, TARGET):
            for name in names:
                as_app(ssh, name, f"ln -sfn {target} {HOME}/releases/.history")
            result = deploy_within(platform, 300, "rollback.py")
            # With no history to read there is no earlier release: its one line, no hang.
            assert result.returncode != 0
            assert "no earlier release to roll back to" in result.stderr, result.stderr[-3000:]
            assert TARGET_TEXT.strip() not in result.output
            for name in names:
                assert_untouched(ssh, name, befores[name])
    finally:
        for name in names:
            ssh(name, f"rm -f {BIG}")
            as_app(
                ssh,
                name,
                f"rm -f {HOME}/releases/.history && printf %s {shlex.quote(saved[name])} > {HOME}/releases/.history",
            )
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + names)


def test_the_run_helper_works_in_the_app_folders_only_as_the_app_user(platform, deployed, ssh):
    name = platform.names("backend")[0]
    release = current_release(ssh, name)
    # runuser starts as root (PAM, NSS, the dynamic loader: /etc/ld.so.preload's relative names are
    # looked up from the working directory): a stand-in first on PATH notes where it was started.
    probe = (
        "mkdir -p /root/h1-bin && rm -f /root/h1-runuser.log && "
        'printf \'#!/bin/sh\\necho "$(id -un) $(pwd -P)" >> /root/h1-runuser.log\\nexec %s "$@"\\n\' '
        '"$(command -v runuser)" > /root/h1-bin/runuser && chmod 755 /root/h1-bin/runuser'
    )
    code, out = ssh(name, probe)
    assert code == 0, out
    code, out = ssh(name, "PATH=/root/h1-bin:$PATH sprint2-run --quiet 'id -un; pwd -P'")
    assert code == 0 and out.split() == ["sprint2", release], out
    code, out = ssh(name, "PATH=/root/h1-bin:$PATH sprint2-run 'pwd -P' && tail -n 3 /var/log/backend.log")
    assert code == 0 and release in out, out
    code, started = ssh(name, "cat /root/h1-runuser.log")
    assert len(started.splitlines()) == 2, started
    for line in started.splitlines():
        user, folder = line.split(" ", 1)
        assert user == "root" and not folder.startswith(HOME), f"runuser started as root in {folder}:\n{started}"

    # The app user points a release at a folder only root may enter: the command must not start there.
    ssh(name, "mkdir -p /root/h1-private && chmod 700 /root/h1-private && echo h1-private-note > /root/h1-private/note")
    as_app(ssh, name, f"ln -sfn /root/h1-private {HOME}/releases/h1-link")
    try:
        code, out = ssh(name, f"sprint2-run --quiet --in {HOME}/releases/h1-link 'cat note; pwd -P'")
        assert "h1-private-note" not in out and "/root/h1-private" not in out.replace("/root/h1-private is", ""), out
        assert code != 0
    finally:
        ssh(name, f"rm -f {HOME}/releases/h1-link; rm -rf /root/h1-bin")


def test_a_backend_of_the_layout_before_issue_18_moves_to_the_new_one_and_converges(
    platform, run_deploy, deployed, ssh
):
    """The layout of before (the home and conf/ in it, /etc/sprint2 root-only) made again by hand from
    a deployed backend, as the deploy of before left it; the next deploy moves it, the service up."""
    name = platform.names("backend")[0]
    old = (
        f"set -e; mkdir {HOME}/conf && cp -a /etc/sprint2/conf/. {HOME}/conf/ && rm -rf /etc/sprint2/conf && "
        f"sed -i 's#/etc/sprint2/conf#{HOME}/conf#g' /etc/systemd/system/sprint2-app.service /etc/sprint2/env "
        f"/usr/local/sbin/sprint2-run && chmod 700 /etc/sprint2 && chown sprint2:sprint2 {HOME} && "
        f"chown -h sprint2:sprint2 {HOME}/current && systemctl daemon-reload && systemctl restart sprint2-app && "
        "sleep 3 && tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value sprint2-app)/cmdline"
    )
    code, out = ssh(name, old)
    assert code == 0 and f"--config {HOME}/conf/gunicorn.conf.py" in out, out
    assert_deployed(platform, deploy_within(platform, 600))
    code, out = ssh(
        name,
        f"stat -c '%U %a %n' {HOME} /etc/sprint2 /etc/sprint2/conf {HOME}/releases; ls -d {HOME}/conf 2>&1; "
        "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value sprint2-app)/cmdline",
    )
    assert f"root 755 {HOME}\nroot 755 /etc/sprint2\nroot 755 /etc/sprint2/conf\nsprint2 755 {HOME}/releases" in out
    assert "No such file" in out and "--config /etc/sprint2/conf/gunicorn.conf.py" in out, out
    deploy_ok(platform, run_deploy).assert_no_changes(hosts=platform.names("db") + platform.names("backend"))
