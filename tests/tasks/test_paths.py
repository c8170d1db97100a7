"""tasks/paths.py: what `wanted` accepts."""

import pytest

from tasks.paths import wanted


def test_a_kind_other_than_directory_or_file_is_refused_naming_the_path():
    with pytest.raises(ValueError, match="/srv/x: kind must be one of directory, file, not 'link'"):
        wanted("/srv/x", "link", "root", "root", "755")
