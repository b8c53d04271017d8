"""The one native piece: GIL-free waits for the runtime's hot path (staronnx_cli/runtime/_hotpath.c). Optional: where
it cannot be compiled (no C compiler), staronnx installs without it and waits in Python (`staronnx doctor` says so)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("staronnx_cli.runtime._hotpath", ["staronnx_cli/runtime/_hotpath.c"],
                             extra_compile_args=["-O2"], optional=True)])
