"""The public API: small, documented, and light to import."""

from __future__ import annotations

import subprocess
import sys

import optiscope


def test_every_public_name_imports_and_is_documented():
    assert sorted(optiscope.__all__) == sorted(set(optiscope.__all__))
    for name in optiscope.__all__:
        obj = getattr(optiscope, name)
        if name == "__version__":
            continue
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, f"{name} has no docstring"


def test_import_is_light():
    code = (
        "import sys, optiscope; "
        "heavy = [m for m in ('matplotlib', 'jinja2', 'sklearn', 'rich', 'tensorboard', "
        "'lightning', 'transformers') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
