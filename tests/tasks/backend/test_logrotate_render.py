"""The backends' logrotate config, by exact output."""

from tasks.backend.render import LOGROTATE_PATH, app_logrotate


def test_both_app_logs_are_rotated_in_place_daily_or_when_big():
    assert LOGROTATE_PATH == "/etc/logrotate.d/sprint2"
    assert (
        app_logrotate()
        == """\
# Managed by the deploy (tasks/logs.py): the app's logs, rotated each day (logrotate.timer) or
# at that run when larger than 50M; 7 old copies, compressed from the second one on.
# copytruncate: gunicorn keeps /var/log/django.log open (append mode) and would go on writing
# into the renamed file; copying then truncating in place needs no restart (a line written
# between the copy and the truncation can be lost).
/var/log/django.log /var/log/backend.log {
    su root adm
    daily
    maxsize 50M
    rotate 7
    missingok
    notifempty
    compress
    delaycompress
    copytruncate
}
"""
    )
