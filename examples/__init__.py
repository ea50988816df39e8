"""Sample applications built on :mod:`replicator.client`.

Not packaged with the product (``pyproject.toml`` installs ``replicator``, ``consumers`` and
``validators`` only): run them from the repository root, e.g. ``python -m examples.shop``.
"""
