"""A virtualenv whose python or gunicorn no longer runs is rebuilt, even though its
"requirements installed" stamp is still there (issue 10: a venv missing bin/gunicorn made the
restart fail with `Job for sprint2-app.service failed`)."""

from stack.render.backend import LAYOUT
from tasks.app_ops import VenvRuns
from tests.tasks.test_backend import RESTART, VENV, base, deploy, host_facts


def test_a_venv_that_does_not_run_is_rebuilt_and_the_app_restarted():
    settings = base()
    facts = host_facts(settings)
    facts[VenvRuns] = False  # the stamp is current, gunicorn is gone
    run = deploy(facts, settings)
    assert run.changed == [VENV, RESTART]
    commands = run.op(VENV).commands
    assert commands[0] == ("rm -rf /srv/sprint2/venv && "
                           "runuser -u sprint2 -- python3 -m venv /srv/sprint2/venv")
    assert commands[1].endswith("pip install --quiet --disable-pip-version-check -r /srv/sprint2/app/requirements.txt")
    assert commands[2].endswith("pip install --quiet --disable-pip-version-check gunicorn")
    assert commands[3].endswith(f"| runuser -u sprint2 -- tee {LAYOUT.requirements_stamp} > /dev/null")
    assert "its python or gunicorn did not run" in commands[4]


def test_a_working_venv_with_a_current_stamp_is_no_change():
    settings = base()
    facts = host_facts(settings)
    facts[VenvRuns] = True
    assert deploy(facts, settings).changed == []


def test_the_check_runs_python_and_gunicorn_as_the_app_user():
    command = VenvRuns().command()
    assert "runuser -u sprint2 -- /srv/sprint2/venv/bin/python -c ''" in command
    assert "runuser -u sprint2 -- /srv/sprint2/venv/bin/gunicorn --version" in command
    assert VenvRuns().process(["absent"]) is None
    assert VenvRuns().process(["runs"]) is True
    assert VenvRuns().process(["broken"]) is False
