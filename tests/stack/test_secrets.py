"""Generated secrets: stable across runs, private on disk, overridable from the environment."""

import base64
import hashlib
import hmac
import os
import stat

import pytest
import yaml

from stack.errors import UserError
from stack.secrets import load_secrets, new_verifier, scram_verifier, secrets_path, verifier_matches


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOME", str(tmp_path / "deploy"))
    monkeypatch.delenv("DEPLOY_DB_PASSWORD", raising=False)
    monkeypatch.delenv("DEPLOY_SECRET_KEY", raising=False)
    return tmp_path / "deploy"


def test_first_use_generates_and_keeps_them_private(home):
    first = load_secrets()
    assert set(first) == {"db_password", "django_secret_key", "db_history_password", "rds_master_password"}
    assert len(first["db_password"]) >= 32 and len(first["django_secret_key"]) >= 64
    assert len(first["db_history_password"]) >= 32
    assert len(set(first.values())) == len(first)
    path = secrets_path()
    assert path == home / "secrets.yml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


def test_later_runs_get_the_same_values_and_leave_the_file_alone(home):
    first = load_secrets()
    written = secrets_path().read_text()
    assert load_secrets() == first
    assert secrets_path().read_text() == written


def test_other_keys_in_the_file_are_kept(home):
    load_secrets()
    data = yaml.safe_load(secrets_path().read_text())
    del data["django_secret_key"]
    data["kong_token"] = "someone-elses-secret-value"
    secrets_path().write_text(yaml.safe_dump(data))
    again = load_secrets()
    assert again["db_password"] == data["db_password"]
    assert yaml.safe_load(secrets_path().read_text())["kong_token"] == "someone-elses-secret-value"


def test_environment_variables_win_and_are_not_written(home, monkeypatch):
    monkeypatch.setenv("DEPLOY_DB_PASSWORD", "from-the-vault-0123456789")
    assert load_secrets()["db_password"] == "from-the-vault-0123456789"
    assert "from-the-vault" not in secrets_path().read_text()


def test_a_secret_with_shell_characters_is_refused_in_one_line(home, monkeypatch):
    monkeypatch.setenv("DEPLOY_SECRET_KEY", "has spaces and $dollars 0123456789")
    with pytest.raises(UserError, match=r"^DEPLOY_SECRET_KEY: a secret must be 16-200 characters"):
        load_secrets()


def test_a_secret_with_a_trailing_newline_is_refused(home, monkeypatch):
    # It would end the line in the backends' EnvironmentFile early (`$` matched before a final "\n").
    monkeypatch.setenv("DEPLOY_DB_PASSWORD", "from-the-vault-0123456789\n")
    with pytest.raises(UserError, match=r"^DEPLOY_DB_PASSWORD: a secret must be 16-200 characters"):
        load_secrets()


def test_a_broken_file_is_a_user_error(home):
    home.mkdir(mode=0o700)
    (home / "secrets.yml").write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_secrets()


def test_scram_verifier_follows_rfc_7677():
    # RFC 7677 section 3 test vector: user "user", password "pencil", salt and iterations from the
    # server-first message; the ServerKey/StoredKey are what PostgreSQL stores.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_verifier("pencil", salt, 4096)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert verifier == (
        f"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="
        f"${base64.b64encode(stored).decode()}:{base64.b64encode(server).decode()}"
    )
    # The client proof of RFC 7677's exchange verifies against this StoredKey.
    auth = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    signature = hmac.new(stored, auth, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored


def test_verifier_matching_accepts_any_salt_and_rejects_other_passwords():
    stored = scram_verifier("s3cret-password", b"server-salt-0001", 4096)
    assert verifier_matches(stored, "s3cret-password")
    assert not verifier_matches(stored, "another-password")
    assert not verifier_matches("md5abcdef", "s3cret-password")
    assert not verifier_matches(None, "s3cret-password")
    assert not verifier_matches("", "s3cret-password")


def test_each_verifier_gets_a_random_salt_so_a_leaked_one_is_not_a_precomputed_check():
    # A salt derived from the password made every verifier of a password the same text: a leaked
    # verifier could be checked against a wordlist with one hash per guess, precomputed.
    first, second = (new_verifier("pw-0123456789abcdef") for _ in range(2))
    salts = {base64.b64decode(verifier.split("$")[1].split(":")[1]) for verifier in (first, second)}
    assert first != second and len(salts) == 2
    assert all(len(salt) == 16 for salt in salts)
    assert verifier_matches(first, "pw-0123456789abcdef") and verifier_matches(second, "pw-0123456789abcdef")


def test_a_bad_secret_in_a_deploy_ends_it_with_one_line(home, monkeypatch, capsys):
    # pyinfra prints exceptions from deploy code with a traceback: deploy_secrets exits instead.
    from stack.secrets import deploy_secrets

    monkeypatch.setenv("DEPLOY_DB_PASSWORD", "short")
    with pytest.raises(SystemExit) as exited:
        deploy_secrets()
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: DEPLOY_DB_PASSWORD: a secret must be 16-200 characters of letters, digits and _.:@%+=/-\n"
    )
    monkeypatch.delenv("DEPLOY_DB_PASSWORD")
    assert deploy_secrets() == load_secrets()


@pytest.mark.parametrize(
    "text, message",
    [
        ("db_password: [1, 2\n", r"secrets\.yml line 2: unreadable secrets file \(expected ',' or '\]', but got"),
        ("db_password: 12345678901234567890\n", r"secrets\.yml \(db_password\): a secret must be 16-200 characters"),
    ],
)
def test_a_broken_value_is_one_line(home, text, message):
    home.mkdir(mode=0o700)
    (home / "secrets.yml").write_text(text)
    with pytest.raises(UserError, match=message) as raised:
        load_secrets()
    assert "\n" not in str(raised.value)
