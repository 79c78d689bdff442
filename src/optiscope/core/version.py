"""The package version, in one place (the records header reads it too)."""

__version__ = "0.1.0"
