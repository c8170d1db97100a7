"""`provision.py backup [PATH]` on AWS (moto): a fresh pg_dump pulled from the database host, 0600,
never over an existing file, one line on failure, and not one AWS write."""

import stat


def fake_dump(monkeypatch, command):
    # pg_dump over SSH is replaced by a local command: moto's hosts are not real (no traffic).
    monkeypatch.setattr("stack.aws.backup.ssh_command", lambda settings, address: command)


def test_backup_pulls_a_private_dump_and_never_overwrites(aws, tmp_path, monkeypatch):
    assert aws.run("--no-wait")[0] == 0
    fake_dump(monkeypatch, ["printf", "PGDMP-fake"])
    target = tmp_path / "db.pgc"
    aws.recorder.start()
    code, out, err = aws.run("backup", str(target))
    assert code == 0, err
    assert target.read_text() == "PGDMP-fake" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert f"saved {target} (10 bytes)" in out
    code, out, err = aws.run("backup", str(target))
    assert (code, err.strip()) == (
        1,
        f"error: backup {target}: the file exists; choose a new name (backups are never overwritten)",
    )
    assert target.read_text() == "PGDMP-fake"
    assert aws.recorder.mutating() == []
    assert len(aws.instances()) == 4


def test_backup_without_a_path_goes_to_the_private_backups_folder(aws, monkeypatch):
    assert aws.run("--no-wait")[0] == 0
    fake_dump(monkeypatch, ["printf", "PGDMP-fake"])
    code, out, err = aws.run("backup")
    assert code == 0, err
    folder = aws.home / "backups"
    dumps = list(folder.glob("dispatch_db-*.dump"))
    assert len(dumps) == 1 and stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_failed_backup_is_one_line_and_leaves_no_file(aws, tmp_path, monkeypatch):
    assert aws.run("--no-wait")[0] == 0
    fake_dump(monkeypatch, ["sh", "-c", "echo 'pg_dump: error: connection refused' >&2; exit 1"])
    code, out, err = aws.run("backup", str(tmp_path / "db.pgc"))
    assert (code, err.strip()) == (1, "error: backup of des-db failed (pg_dump: error: connection refused)")
    assert not (tmp_path / "db.pgc").exists()
    code, out, err = aws.run("backup", str(tmp_path / "nope" / "db.pgc"))
    assert (code, err.strip()) == (
        1,
        f"error: backup {tmp_path / 'nope' / 'db.pgc'}: folder {tmp_path / 'nope'} does not exist",
    )


def test_backup_without_a_database_host_says_what_to_do(aws, tmp_path):
    code, out, err = aws.run("backup", str(tmp_path / "db.pgc"))
    assert (code, err.strip()) == (
        1,
        "error: no database host des-db in this account and region: run python provision.py first",
    )
