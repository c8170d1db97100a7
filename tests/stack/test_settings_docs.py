"""config.example.yml and the settings table of docs/configuration.md: generated from the models, committed current."""

import shutil
import subprocess
import sys

import pytest
import yaml

from stack.settings import PROJECT_ROOT, Settings, defaults, load_settings
from stack.settings_docs import BEGIN, END, TABLE_PAGE, example_text, main, page_text, table_text, yaml_value
from stack.settings_types import leaves


def test_the_committed_example_is_the_models_text():
    assert (PROJECT_ROOT / "config.example.yml").read_text() == example_text()


def test_the_committed_configuration_page_table_is_the_models_text():
    page = (PROJECT_ROOT / TABLE_PAGE).read_text()
    assert table_text() in page
    assert page_text(page) == page


def test_the_generated_example_loads_to_the_defaults(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(example_text())
    assert load_settings(path) == defaults()


def test_every_setting_has_a_one_line_description_in_the_example_and_the_table():
    example, table = example_text().splitlines(), table_text()
    for path, field in leaves(Settings):
        assert field.description and "\n" not in field.description, path
        key = path.rsplit("/", 1)[-1]
        assert any(
            line.strip() == f"# {field.description}" and example[number + 1].strip().startswith(f"{key}: ")
            for number, line in enumerate(example[:-1])
        ), path
        assert f"| `{path.replace('/', '.')}` | `{yaml_value(field.default)}` |" in table, path


@pytest.mark.parametrize(
    "value, text",
    [
        ("des", "des"),
        (None, "null"),
        (False, "false"),
        (8080, "8080"),
        (["a", "b"], "[a, b]"),
        (["/"], "[/]"),
        ("kong:2.7.2-alpine", "kong:2.7.2-alpine"),
        # Plain text that YAML would read as something else is quoted.
        ("8080", '"8080"'),
        ("yes", '"yes"'),
        (["a, b"], '["a, b"]'),
    ],
)
def test_yaml_values_read_back_as_the_default(value, text):
    assert yaml_value(value) == text
    assert yaml.safe_load(f"key: {text}") == {"key": value}


def _copy_of_the_project(tmp_path):
    (tmp_path / "docs").mkdir()
    for name in ("config.example.yml", TABLE_PAGE):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def test_check_names_the_first_stale_line_in_one_line_and_the_command_rewrites_it(tmp_path, capsys):
    root = _copy_of_the_project(tmp_path)
    example = root / "config.example.yml"
    example.write_text(example.read_text().replace("region: us-east-1", "region: us-west-2"))

    assert main(["--check"], root=root) == 1
    error = capsys.readouterr().err
    assert error == (
        "error: not the settings models' text: config.example.yml line 8 is 'region: us-west-2', the models give "
        "'region: us-east-1': run python -m stack.settings_docs\n"
    )

    assert main([], root=root) == 0
    assert capsys.readouterr().out == "wrote config.example.yml\n"
    assert example.read_text() == example_text()
    assert main(["--check"], root=root) == 0


def test_the_page_outside_the_markers_is_kept(tmp_path, capsys):
    root = _copy_of_the_project(tmp_path)
    page = root / TABLE_PAGE
    before, _, after = page.read_text().partition(table_text())
    page.write_text(f"{before}{BEGIN}\n| stale |\n{END}{after}")

    assert main(["--check"], root=root) == 1
    assert "docs/configuration.md line " in capsys.readouterr().err
    assert main([], root=root) == 0
    assert capsys.readouterr().out == "wrote docs/configuration.md\n"
    assert page.read_text() == f"{before}{table_text()}{after}"


def test_a_page_without_markers_is_one_line_exit_1(tmp_path, capsys):
    root = _copy_of_the_project(tmp_path)
    (root / TABLE_PAGE).write_text("# A page without the settings table\n")
    with pytest.raises(SystemExit) as exited:
        main(["--check"], root=root)
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        "error: docs/configuration.md: no <!-- settings:begin ... --> <!-- settings:end --> markers: put them where the "
        "table belongs\n"
    )


def test_the_command_runs_from_the_project_and_finds_it_current():
    result = subprocess.run(
        [sys.executable, "-m", "stack.settings_docs", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
