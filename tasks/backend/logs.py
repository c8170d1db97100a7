"""Log rotation on the backends: /var/log/django.log and /var/log/backend.log would otherwise grow
until the disk is full. Kong's container log is bounded by its own spec (tasks/kong/render.py)."""

from io import StringIO

from pyinfra.api import deploy

from tasks import uploads
from tasks.backend.render import LOGROTATE_PATH, app_logrotate
from tasks.packages import packages_installed


@deploy("Rotate the backend's logs")
def deploy_log_rotation():
    packages_installed(name="Ensure logrotate is installed", packages=["logrotate"])
    uploads.put(
        name="Rotate the app's logs (logrotate)",
        src=StringIO(app_logrotate()),
        dest=LOGROTATE_PATH,
        user="root",
        group="root",
        mode="644",
        create_remote_dir=False,
    )  # /etc/logrotate.d comes with the package
