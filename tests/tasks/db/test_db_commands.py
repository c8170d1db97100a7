"""write_as_postgres run by a real shell in a folder of the test's own (as the user running the
tests, standing in for postgres): a planted link is replaced, never written through; a folder
that is a link is refused in one line. The exact command is in the cluster_file JSON cases."""

import os
import subprocess

from tasks.db.commands import write_as_postgres

TEXT = "host all all 10.0.0.5/32 scram-sha-256\n# it's 100% 'quoted' $HOME `x` \\n\n"


def write(path, text=TEXT, mode="640"):
    return subprocess.run(["sh", "-c", write_as_postgres(str(path), text, mode)], capture_output=True, text=True)


def test_a_new_file_gets_the_exact_text_and_mode(tmp_path):
    result = write(tmp_path / "pg_hba.conf")
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "pg_hba.conf").read_text() == TEXT
    assert oct((tmp_path / "pg_hba.conf").stat().st_mode & 0o777) == "0o640"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pg_hba.conf"]  # no temporary file left


def test_a_planted_link_is_replaced_and_its_target_left_as_it_was(tmp_path):
    target = tmp_path / "root-only"
    target.write_text("secret\n")
    target.chmod(0o600)
    folder = tmp_path / "main"
    folder.mkdir()
    (folder / "pg_hba.conf").symlink_to(target)
    result = write(folder / "pg_hba.conf")
    assert result.returncode == 0, result.stderr
    assert not (folder / "pg_hba.conf").is_symlink()
    assert (folder / "pg_hba.conf").read_text() == TEXT
    assert target.read_text() == "secret\n" and oct(target.stat().st_mode & 0o777) == "0o600"


def test_a_folder_that_is_a_link_is_refused_in_one_line(tmp_path):
    elsewhere = tmp_path / "systemd"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "conf.d")
    result = write(tmp_path / "conf.d" / "90-deploy.conf")
    assert result.returncode == 1
    assert result.stderr == (
        f"{tmp_path}/conf.d is not a folder that postgres can write (a link, or another owner): refused to "
        "write 90-deploy.conf there; restore the cluster folder (a real folder owned by postgres) and deploy again\n"
    )
    assert list(elsewhere.iterdir()) == []


def test_a_missing_folder_is_refused_too(tmp_path):
    result = write(tmp_path / "gone" / "90-deploy.conf")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "refused" in result.stderr
