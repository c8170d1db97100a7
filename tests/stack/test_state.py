"""The state file: atomic, private, and one clear line when it is not what it should be."""

import stat

import pytest

from stack.errors import UserError
from stack.state import load_state, new_state, private_dir, save_state, state_path


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_no_state_is_none():
    assert load_state() is None


def test_saved_state_reads_back_and_only_the_owner_can_read_it(home):
    state = new_state("local", "des")
    state["hosts"]["des-db"] = {"role": "db", "private_ip": "10.77.0.10", "public_ip": "10.77.0.10", "ssh_user": "root"}
    save_state(state)
    assert load_state() == state
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not list(home.glob("*.tmp"))


@pytest.mark.parametrize("text, message", [
    ("{not json", "unreadable state file"),
    ("[]", r"not a state file \(expected a JSON object\)"),
    ('{"version": 99}', "state version 99, expected 1"),
    ('{"version": 1}', r'"hosts" is not a mapping'),
    ('{"version": 1, "hosts": {"x": {}}}', r"host 'x' lacks role"),
    ('{"version": 1, "hosts": {"x": {"role": "db", "private_ip": "10.0.0.1", "public_ip": null}}}',
     r"host 'x' lacks role .*ssh_user"),
])
def test_a_damaged_state_is_one_line(home, text, message):
    home.mkdir()
    state_path().write_text(text)
    with pytest.raises(UserError, match=message):
        load_state()


def test_deploy_home_on_a_file_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "afile"))
    with pytest.raises(UserError, match="exists and is not a folder; point DEPLOY_HOME at a folder"):
        private_dir("ssh")
