"""The compiled part of the package; everything else is declared in pyproject.toml.

``tickerplant._rowpack`` checks and packs one-row Arrow messages on the tickerplant's
per-message path; ``tickerplant/rowpack.py`` does the same in pure Python when it is not
built. ``pip install -e .`` builds it in place (here, through setuptools' ``setup.py``
support: its ``ext-modules`` in pyproject.toml are still experimental).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tickerplant._rowpack",
            sources=["tickerplant/_rowpack.c", "tickerplant/_rowpack_read.c"],
            depends=["tickerplant/_rowpack.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
