"""Where everything lives on a backend: paths, the app user, the service's name.

Shared by the deploy, the renderers and `provision.py status/logs/manage`, which read the same places.
"""

from dataclasses import dataclass


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
    secrets_dir: str = "/etc/sprint2"
    run_helper: str = "/usr/local/sbin/sprint2-run"

    # Releases: each commit is built in its own work tree of the mirrored repository, with a
    # virtualenv shared by releases of identical requirements; `current` points at the live one.
    repo = property(lambda self: f"{self.home}/repo.git")
    releases = property(lambda self: f"{self.home}/releases")
    current = property(lambda self: f"{self.home}/current")
    venvs = property(lambda self: f"{self.home}/venvs")
    history = property(lambda self: f"{self.releases}/.history")
    # The live release's virtualenv, through the `current` link.
    venv = property(lambda self: f"{self.current}/.venv")
    conf_dir = property(lambda self: f"{self.home}/conf")
    env_file = property(lambda self: f"{self.secrets_dir}/env")
    unit_path = property(lambda self: f"/etc/systemd/system/{self.service}.service")
    socket_path = property(lambda self: f"/etc/systemd/system/{self.service}.socket")
    settings_path = property(lambda self: f"{self.conf_dir}/{self.settings_module}.py")
    gunicorn_conf = property(lambda self: f"{self.conf_dir}/gunicorn.conf.py")
    marker_script = property(lambda self: f"{self.conf_dir}/deploy_marker.py")
    # The layout before releases (one checkout changed in place), removed once a release serves.
    legacy = property(
        lambda self: [f"{self.home}/app", f"{self.home}/venv", f"{self.home}/static", f"{self.home}/preflight"]
    )

    def release(self, commit: str) -> str:
        return f"{self.releases}/{commit}"

    def built_stamp(self, commit: str) -> str:
        """Written last when a release is complete (tree, virtualenv link, static files)."""
        return f"{self.release(commit)}/.deploy-built"


LAYOUT = Layout()
