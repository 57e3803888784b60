"""Builds the optional C fast path (vnet.phy._vdefast); everything else is in pyproject.toml.

`optional=True`: without a C compiler the install still succeeds and vnet falls back
to its pure-Python data path (the tests insist on the extension under CI).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("vnet.phy._vdefast", ["vnet/phy/_vdefast.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"]),
    ],
)
