"""The native pieces of the runtime's hot path, both optional: where they cannot be compiled (no C compiler), staronnx
installs without them (`staronnx doctor` says so).
- staronnx_cli/runtime/_hotpath.c: GIL-free waits (the Python scheduler's workers and issuer);
- staronnx_cli/runtime/_core.c: the native core, a point on CPU workers run in C over ONNX Runtime's C API (the
  library the onnxruntime wheel ships, loaded at run time: no header or link step needed here)."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("staronnx_cli.runtime._hotpath", ["staronnx_cli/runtime/_hotpath.c"], extra_compile_args=["-O2"],
              optional=True),
    Extension("staronnx_cli.runtime._core", ["staronnx_cli/runtime/_core.c"], extra_compile_args=["-O2"],
              libraries=["dl", "pthread"], optional=True),
])
