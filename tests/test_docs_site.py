"""The documentation site builds with `mkdocs build --strict` (as CI does), and the build can fail:
a link to a page that does not exist, in a copy of the docs, stops it naming the link."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = str(Path(sys.executable).with_name("mkdocs"))


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MKDOCS, "build", "--strict", "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_of_the_docs(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    return root


def test_the_site_builds_with_no_warning(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    assert (tmp_path / "site" / "troubleshooting" / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    root = _copy_of_the_docs(tmp_path)
    page = root / "docs" / "operating.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = build(root, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr, result.stderr


def test_a_page_left_out_of_the_nav_fails_the_build(tmp_path):
    root = _copy_of_the_docs(tmp_path)
    (root / "docs" / "orphan.md").write_text("# Reachable from nowhere\n")
    result = build(root, tmp_path / "site")
    assert result.returncode != 0
    assert "orphan.md" in result.stderr, result.stderr


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    pages = sorted(path.name for path in (ROOT / "docs").glob("*.md") if path.name != "index.md")
    assert [page for page in pages if f"(docs/{page})" not in readme] == []
