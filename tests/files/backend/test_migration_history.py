"""files/backend/deploy_marker.py's migration-history files, on a real git work tree: only
<app>/migrations/<NNNN>_<name>.py is ever read or written, never through a link, never over a file
the app tracks; the history of before issue 18 is adopted only when it is what makemigrations writes.
(The database side and the app user's child run on real hosts: tests/e2e/test_attacks_migrations.py.)"""

import os
import runpy
import subprocess

import pytest

from stack.settings import PROJECT_ROOT

MARKER = runpy.run_path(str(PROJECT_ROOT / "files" / "backend" / "deploy_marker.py"))
MIGRATION = "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    operations = []\n"


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A release like the deploy's: apps with a tracked migrations/__init__.py, and a .venv link."""
    tree = tmp_path / "release"
    for app in ("pedidos", "despachos"):
        (tree / app / "migrations").mkdir(parents=True)
        (tree / app / "migrations" / "__init__.py").write_text("")
    (tree / "despachos" / "migrations" / "0001_initial.py").write_text("# the app's own\n")
    venv = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    venv.mkdir(parents=True)
    (tree / ".venv").symlink_to(tmp_path / "venv")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True)
    monkeypatch.chdir(tmp_path)
    return tree


@pytest.mark.parametrize(
    "path",
    [
        "pedidos/migrations/0001_initial.py",
        "despachos/migrations/0002_despacho_destino_alter.py",
    ],
)
def test_migration_paths_are_the_only_ones_kept(path):
    assert MARKER["MIGRATION_PATH"].fullmatch(path)


@pytest.mark.parametrize(
    "path",
    [
        "sitecustomize.py",
        ".venv/lib/python3.11/site-packages/zz.pth",
        "pedidos/migrations/__init__.py",
        "pedidos/migrations/0001_initial.pth",
        "../pedidos/migrations/0001_initial.py",
        "/srv/sprint2/releases/x/pedidos/migrations/0001_initial.py",
        "pedidos/sub/migrations/0001_initial.py",
        "pedidos/migrations/0001_initial.py/x.py",
        "pedidos/migrations/0001_../../x.py",
        "pedidos/migrations/0001_x.py\n",
    ],
)
def test_anything_else_is_never_a_migration_path(path):
    assert not MARKER["MIGRATION_PATH"].fullmatch(path)


def test_restore_writes_the_saved_set_removes_other_generated_files_and_keeps_the_apps_own(release):
    (release / "pedidos" / "migrations" / "0009_stale.py").write_text("stale")
    saved = {
        "pedidos/migrations/0001_initial.py": MIGRATION,
        "despachos/migrations/0001_initial.py": "planted over the app's own",
        "gone/migrations/0001_initial.py": MIGRATION,  # an app that is not at this commit
    }
    MARKER["write_saved"](str(release), saved)
    assert (release / "pedidos" / "migrations" / "0001_initial.py").read_text() == MIGRATION
    assert not (release / "pedidos" / "migrations" / "0009_stale.py").exists()
    assert (release / "despachos" / "migrations" / "0001_initial.py").read_text() == "# the app's own\n"
    assert not (release / "gone").exists()
    assert MARKER["read_generated"](str(release)) == {"pedidos/migrations/0001_initial.py": MIGRATION}


def test_restore_never_writes_through_a_link(release, tmp_path):
    # The app's folder replaced by a link into the shared virtualenv: refused, nothing written there.
    os.rename(release / "pedidos", tmp_path / "pedidos.real")
    (release / "pedidos").symlink_to(tmp_path / "venv" / "lib" / "python3.11" / "site-packages")
    with pytest.raises(SystemExit, match="must be real folders of the release, not links"):
        MARKER["write_saved"](str(release), {"pedidos/migrations/0002_x.py": MIGRATION})
    assert os.listdir(tmp_path / "venv" / "lib" / "python3.11" / "site-packages") == []


def test_restore_replaces_a_generated_link_by_a_file_and_never_follows_it(release, tmp_path):
    target = tmp_path / "outside.py"
    target.write_text("outside")
    (release / "pedidos" / "migrations" / "0001_initial.py").symlink_to(target)
    MARKER["write_saved"](str(release), {"pedidos/migrations/0001_initial.py": MIGRATION})
    written = release / "pedidos" / "migrations" / "0001_initial.py"
    assert not written.is_symlink() and written.read_text() == MIGRATION
    assert target.read_text() == "outside"


def test_save_refuses_a_generated_file_that_is_a_link(release, tmp_path):
    (tmp_path / "secret").write_text("root only")
    (release / "pedidos" / "migrations" / "0001_initial.py").symlink_to(tmp_path / "secret")
    with pytest.raises(SystemExit, match="a generated migration must be a plain file"):
        MARKER["read_generated"](str(release))


def test_rows_that_are_not_migrations_in_the_deploy_only_table_stop_the_restore():
    with pytest.raises(SystemExit, match=r"holds files that are not migrations \(sitecustomize.py\)"):
        MARKER["valid_saved"]({"sitecustomize.py": "x", "pedidos/migrations/0001_initial.py": MIGRATION})


HEADER = "# Generated by Django 4.2.25 on 2025-10-17 12:00\n\n"


def test_the_old_history_is_adopted_only_when_it_is_what_makemigrations_writes():
    regenerated = {"pedidos/migrations/0001_initial.py": HEADER.replace("2025-10-17", "2026-12-06") + MIGRATION}
    same = {"pedidos/migrations/0001_initial.py": HEADER + MIGRATION}
    assert MARKER["legacy_mismatches"](same, regenerated) == []
    planted = {**same, "sitecustomize.py": "import os"}
    assert MARKER["legacy_mismatches"](planted, regenerated) == ["sitecustomize.py"]
    changed = {"pedidos/migrations/0001_initial.py": HEADER + "import os\n" + MIGRATION}
    assert MARKER["legacy_mismatches"](changed, regenerated) == ["pedidos/migrations/0001_initial.py"]
    second = {**same, "pedidos/migrations/0002_pedido_canal.py": HEADER + MIGRATION}
    assert MARKER["legacy_mismatches"](second, regenerated) == ["pedidos/migrations/0002_pedido_canal.py"]
