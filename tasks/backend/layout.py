"""Where everything lives on a backend: paths, the app user, the service's name.

Shared by the deploy, the renderers and `provision.py status/logs/manage`, which read the same places.
"""

from dataclasses import dataclass

# The pinned uv (its wheels: tasks/backend/lock.py).
UV_VERSION = "0.13.9"


@dataclass(frozen=True)
class Layout:
    """Where everything lives on a backend (see tasks/backend/deploy.py for why)."""

    user: str = "sprint2"
    home: str = "/srv/sprint2"
    service: str = "sprint2-app"
    app_package: str = "provesi"  # the Sprint2 project package: provesi.settings, provesi.wsgi
    settings_module: str = "sprint2_deploy_settings"
    django_log: str = "/var/log/django.log"
    deploy_log: str = "/var/log/backend.log"
    # Root's own: the env file (0600) and the deploy's config folder (0755, for the app to read).
    config_root: str = "/etc/sprint2"
    run_helper: str = "/usr/local/sbin/sprint2-run"

    # /srv/sprint2 itself is root's: the app user owns only what it must write below it (`app_dirs`, `cache`),
    # so it can never put a folder or a link of its own where root writes, chowns or reads (issue 18).
    # Releases: each commit is built in its own work tree of the mirrored repository, with a
    # virtualenv shared by releases of identical requirements; `current` points at the live one.
    repo = property(lambda self: f"{self.home}/repo.git")
    releases = property(lambda self: f"{self.home}/releases")
    current = property(lambda self: f"{self.home}/current")
    venvs = property(lambda self: f"{self.home}/venvs")
    history = property(lambda self: f"{self.releases}/.history")
    # The live release's virtualenv, through the `current` link.
    venv = property(lambda self: f"{self.current}/.venv")
    # The pinned uv (tasks/backend/lock.py): root's binary in root's folder, run as the app user only.
    uv = property(lambda self: f"/usr/local/lib/sprint2-uv/{UV_VERSION}/uv")
    # uv's cache, shared by every release's virtualenv (hard links: the same filesystem as venvs).
    uv_cache = property(lambda self: f"{self.home}/.cache/uv")
    # Where the resolving backend (the app user) writes each lock; root's copies of the locks the
    # backend's virtualenvs were built from (named like them: by the lock's content).
    locks_work = property(lambda self: f"{self.venvs}/.locks")
    locks = property(lambda self: f"{self.config_root}/locks")
    # Files of the app user in its home: pip's and uv's cache, gunicorn's control socket ($HOME/.gunicorn).
    cache = property(lambda self: [f"{self.home}/.cache", f"{self.home}/.gunicorn"])
    app_dirs = property(lambda self: [self.repo, self.releases, self.venvs])
    # The trial gunicorn's pid file: written by the app user, read as the app user.
    trial_pid = property(lambda self: f"{self.releases}/.trial.pid")
    conf_dir = property(lambda self: f"{self.config_root}/conf")
    env_file = property(lambda self: f"{self.config_root}/env")
    unit_path = property(lambda self: f"/etc/systemd/system/{self.service}.service")
    socket_path = property(lambda self: f"/etc/systemd/system/{self.service}.socket")
    settings_path = property(lambda self: f"{self.conf_dir}/{self.settings_module}.py")
    gunicorn_conf = property(lambda self: f"{self.conf_dir}/gunicorn.conf.py")
    marker_script = property(lambda self: f"{self.conf_dir}/deploy_marker.py")
    # The layout before releases (one checkout changed in place) and the conf folder of before issue
    # 18 (inside the home), removed once a release serves.
    legacy = property(
        lambda self: [
            f"{self.home}/app",
            f"{self.home}/venv",
            f"{self.home}/static",
            f"{self.home}/preflight",
            f"{self.home}/conf",
        ]
    )

    def release(self, commit: str) -> str:
        return f"{self.releases}/{commit}"

    def built_stamp(self, commit: str) -> str:
        """Written last when a release is complete (tree, virtualenv link, static files)."""
        return f"{self.release(commit)}/.deploy-built"


LAYOUT = Layout()
