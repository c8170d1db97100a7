"""The backends' logrotate config for the app's logs (django.log, backend.log)."""

from stack.render.backend import LAYOUT, Layout
from stack.render.templating import render_template

LOGROTATE_PATH = "/etc/logrotate.d/sprint2"
# An 8 GB t2.nano disk: at most 8 copies of 50M per log, most of them compressed.
MAX_SIZE = "50M"
KEEP = 7


def app_logrotate(layout: Layout = LAYOUT) -> str:
    return render_template("backend/logrotate.j2", django_log=layout.django_log, deploy_log=layout.deploy_log,
                           max_size=MAX_SIZE, keep=KEEP)
