"""Import a generated file from disk, the way the harness does (`@triton.jit` reads its kernels'
source text, so the code must live in a real file). Timing lives in bench/extern_sweep.py."""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile


def load_generated(code: str, name: str = "generated"):
    """Import generated code from a real file: @triton.jit reads its kernels' source text."""
    folder = tempfile.mkdtemp(prefix="extern_gen_")
    # tracebacks read the file while the process lives: removed when it exits (a test run left 64)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = os.path.join(folder, f"{name}.py")
    with open(path, "w") as f:
        f.write(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)
