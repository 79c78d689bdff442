"""The public API: small, documented, and light to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_the_public_api_fits_on_one_page():
    """About 30-40 names; result types and errors live with the functions that return them."""
    assert 30 <= len(optiscope.__all__) <= 40
    for name in optiscope.__all__:
        assert name in (Path(__file__).parents[1] / "docs" / "api.md").read_text(), name


def test_the_docstring_examples_hold():
    """Every example in a docstring of the package runs and prints what it shows (closed
    forms: a linear model's Hessian 2/n X^T X, a quadratic's gradient steps)."""
    import doctest
    import importlib
    import pkgutil

    attempted = 0
    for info in pkgutil.walk_packages(optiscope.__path__, "optiscope."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an integration whose library is not installed
            assert info.name.startswith("optiscope.integrations."), info.name
            continue
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        result = doctest.testmod(module, optionflags=flags, verbose=False)
        assert result.failed == 0, info.name
        attempted += result.attempted
    assert attempted >= 30
