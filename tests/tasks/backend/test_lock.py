"""The release lock's input and commands (tasks/backend/lock.py), by exact output."""

import pytest

from tasks.backend.layout import LAYOUT
from tasks.backend.lock import CONSTRAINTS, UV_WHEELS, additions, lock_input, pins, uv_env, venv_built

CONSTRAINTS_TEXT = "gunicorn==27.0.1\npsycopg2-binary==2.9.10  # a note\nwhitenoise==6.12.0\n"


def test_every_addition_of_the_deploy_is_pinned_in_the_projects_constraints():
    assert set(pins(CONSTRAINTS.read_text())) >= {"gunicorn", "psycopg2-binary", "whitenoise"}
    assert all("==" in line for line in pins(CONSTRAINTS.read_text()).values())


def test_only_what_the_app_lacks_is_added_and_the_apps_own_pins_stay():
    assert additions("Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise\n", CONSTRAINTS_TEXT) == ["gunicorn==27.0.1"]
    assert lock_input("Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise", CONSTRAINTS_TEXT) == (
        "Django==4.2.25\npsycopg2-binary==2.9.9\nwhitenoise\ngunicorn==27.0.1\n"
    )
    assert lock_input("", CONSTRAINTS_TEXT) == "gunicorn==27.0.1\npsycopg2-binary==2.9.10\nwhitenoise==6.12.0\n"


def test_an_addition_without_a_pin_is_refused():
    with pytest.raises(ValueError, match="no pin for gunicorn"):
        additions("Django\n", "whitenoise==6.12.0\npsycopg2-binary==2.9.10\n")


def test_uv_runs_with_the_shared_cache_and_no_config_and_pip_is_the_fallback():
    assert uv_env(LAYOUT) == (
        "env HOME=/srv/sprint2 UV_CACHE_DIR=/srv/sprint2/.cache/uv UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never "
        "UV_NO_PROGRESS=1 UV_SYSTEM_CERTS=1 /usr/local/lib/sprint2-uv/0.13.9/uv"
    )
    command = venv_built(LAYOUT, "/etc/sprint2/locks/k.txt", "/srv/sprint2/venvs/k")
    assert (
        "pip sync --quiet --require-hashes --python /srv/sprint2/venvs/k/bin/python /etc/sprint2/locks/k.txt" in command
    )
    assert "runuser -u sprint2 -- python3 -m venv /srv/sprint2/venvs/k && " in command.split("; else ")[1]
    assert "install python3-venv" in command.split("; else ")[1]  # only when the fallback needs it
    assert "--require-hashes --no-deps -r /etc/sprint2/locks/k.txt; fi" in command


def test_uv_is_one_pinned_wheel_per_machine_type():
    assert set(UV_WHEELS) == {"x86_64", "aarch64"}
    assert all(url.endswith(".whl") and len(sha) == 64 for url, sha in UV_WHEELS.values())
