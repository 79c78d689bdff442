"""Run the Monitor inside other libraries' training loops.

- :mod:`optiscope.integrations.lightning`: ``OptiscopeCallback`` for ``lightning.pytorch.Trainer``.
- :mod:`optiscope.integrations.huggingface`: ``OptiscopeTrainerCallback`` for
  ``transformers.Trainer``.

Each submodule imports its library; ``import optiscope`` imports neither (see
``docs/integrations.md``).
"""
