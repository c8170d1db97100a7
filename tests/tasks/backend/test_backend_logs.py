"""deploy_log_rotation on a fake host: logrotate installed and its config for the app's logs."""

import hashlib

from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import Directory, File, Sha1File

from tasks.backend.logs import deploy_log_rotation
from tasks.backend.render import LOGROTATE_PATH, app_logrotate
from tasks.uploads import FileSummaries, FileSummary
from tests.harness import file_summaries, per_path, run_deploy

INSTALL = "Ensure logrotate is installed"
CONFIG = "Rotate the app's logs (logrotate)"


def facts(installed: bool):
    text = app_logrotate()
    return {
        DebPackages: {"logrotate": {"3.21.0-1"}} if installed else {},
        File: {
            f"path={LOGROTATE_PATH}": {"mode": 644, "user": "root", "group": "root", "size": len(text)}
            if installed
            else None
        },
        Directory: {
            "path=/etc/logrotate.d": {"mode": 755, "user": "root", "group": "root"},
            f"path={LOGROTATE_PATH}": None,
        },
        Sha1File: {f"path={LOGROTATE_PATH}": hashlib.sha1(text.encode()).hexdigest()} if installed else {},
        **per_path(
            FileSummary,
            FileSummaries,
            file_summaries({LOGROTATE_PATH: (text, 644, "root", "root") if installed else None}),
        ),
    }


def test_a_fresh_backend_gets_logrotate_and_the_config():
    run = run_deploy(deploy_log_rotation, facts=facts(installed=False), groups=["backends"])
    assert run.changed == [INSTALL, CONFIG]
    assert run.op(CONFIG).uploads == {LOGROTATE_PATH: app_logrotate()}


def test_a_converged_backend_changes_nothing():
    run = run_deploy(deploy_log_rotation, facts=facts(installed=True), groups=["backends"])
    assert run.changed == []
