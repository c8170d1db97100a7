"""The sections and checks the settings are made of (stack/settings_types.py), apart from any component."""

import subprocess
import sys
from typing import Annotated

import pytest

from stack.settings import PROJECT_ROOT, Settings, defaults
from stack.settings_types import Flag, Items, Refused, Section, Text, Whole, setting


class Inner(Section):
    depth: Annotated[int, Whole(1, 9)] = setting(default=1, description="How deep.")


class Outer(Section):
    names: Annotated[list[Annotated[str, Text()]], Items()] = setting(default=["a"], description="Names.")
    loud: Annotated[bool, Flag()] | None = setting(default=None, description="Loud, or unset.")
    inner: Inner = setting(default_factory=Inner)

    def check_together(self) -> None:
        if self.loud and len(self.names) > 1:
            raise Refused("expected one name when loud", ("loud",))


def refused(given) -> tuple[tuple, str]:
    with pytest.raises(Refused) as caught:
        Outer.read(given)
    return caught.value.at, caught.value.problem


def test_a_refusal_names_its_key_path_and_an_items_index():
    assert refused({"inner": {"depth": 0}}) == (("inner", "depth"), "expected a whole number from 1 to 9, got 0")
    assert refused({"names": ["a", ""]}) == (("names", 1), "expected a non-empty string")
    assert refused({"names": ["a", "b"], "loud": True}) == (("loud",), "expected one name when loud")
    assert refused({"inner": {"deep": 2}}) == (("inner", "deep"), "unknown setting (known here: depth)")


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_a_whole_number_is_an_int_and_nothing_that_converts_to_one(value):
    assert refused({"inner": {"depth": value}})[0] == ("inner", "depth")


def test_none_is_a_value_only_where_declared_optional():
    assert Outer.read({"loud": None}).loud is None
    assert refused({"names": None}) == (("names",), "expected a non-empty list")


def test_no_section_shares_a_default_list():
    first, second = Outer(), Outer()
    assert first.names == second.names == ["a"]
    assert first.names is not second.names and first.names is not Outer.fields["names"].default


def test_a_setting_declared_without_setting_is_a_mistake_at_import():
    with pytest.raises(TypeError, match=r"Broken.depth: declare it with setting\(...\)"):

        class Broken(Section):
            depth: Annotated[int, Whole(1, 9)] = 1


def test_keywords_read_as_a_mapping_does_and_as_dict_reads_back_the_same():
    assert Outer(names=["x", "y"]) == Outer.read({"names": ["x", "y"]}) != Outer()
    assert Settings(**defaults().as_dict()) == defaults()
    assert Outer() != Inner() and Outer.read(None) == Outer()


def test_reading_the_settings_imports_no_validation_library():
    # The import of pydantic alone took 0.09 s of the 0.1 s a command may spend on its settings.
    code = "import sys; from stack.settings import load_settings; load_settings(); print(sorted(sys.modules))"
    modules = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "pydantic" not in modules
