"""tasks/uploads.py: which files count as already in place (then one command, no upload)."""

import hashlib
from io import StringIO

import pytest

from tasks.uploads import is_in_place, sha256_of

TEXT = "[Unit]\nDescription=x\n"
SHA = hashlib.sha256(TEXT.encode()).hexdigest()
ROOT_644 = {"user": "root", "group": "root", "mode": 644, "sha256": SHA}


def test_the_sum_of_a_text_and_of_a_file_are_the_file_s_sha256(tmp_path):
    (tmp_path / "unit").write_text(TEXT)
    assert sha256_of(StringIO(TEXT)) == sha256_of(tmp_path / "unit") == sha256_of(str(tmp_path / "unit")) == SHA


@pytest.mark.parametrize(
    ("current", "wanted", "in_place"),
    [
        (ROOT_644, ("root", "root", "644"), True),
        (ROOT_644, (None, None, None), True),  # nothing asked of the owner or the mode
        (None, ("root", "root", "644"), False),  # no such file
        ({**ROOT_644, "sha256": "0" * 64}, ("root", "root", "644"), False),
        ({**ROOT_644, "user": "sprint2"}, ("root", "root", "644"), False),
        ({**ROOT_644, "group": "adm"}, ("root", "root", "644"), False),
        ({**ROOT_644, "mode": 664}, ("root", "root", "644"), False),
        (ROOT_644, (None, None, "755"), False),
    ],
)
def test_a_file_is_in_place_only_with_its_content_owner_and_mode(current, wanted, in_place):
    assert is_in_place(current, SHA, *wanted) is in_place
