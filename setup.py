"""The compiled part of the package: the reader's row codec (replicator/reader/_rowcodec.c).

Everything else is declared in pyproject.toml. The extension is optional: where it does not
build (no C compiler, no Python headers) the install goes on without it, and the reader warns
once and uses its pure-Python path (reader.decoder: auto, replicator/reader/rowcodec.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("replicator.reader._rowcodec", ["replicator/reader/_rowcodec.c"], optional=True,
              extra_compile_args=["-O2", "-std=c99", "-Wall"]),
])
