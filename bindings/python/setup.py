"""Builds libshivya with cargo and bundles it into the package.

`pip install ./bindings/python` runs `cargo build --release -p shivya-ffi` in the
repository this directory belongs to (honouring CARGO_TARGET_DIR) and puts the shared
library beside the generated `shivya/shivya.py` in the build directory (never in the
source tree). Set SHIVYA_LIB to a prebuilt library to skip cargo.
"""
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = {"darwin": "libshivya.dylib", "win32": "shivya.dll"}.get(sys.platform, "libshivya.so")


def find_repo():
    d = HERE
    while d != os.path.dirname(d):
        if os.path.exists(os.path.join(d, "shivya-ffi", "Cargo.toml")):
            return d
        d = os.path.dirname(d)
    return None


class BuildWithCargo(build_py):
    def run(self):
        lib = os.environ.get("SHIVYA_LIB")
        if not lib:
            repo = find_repo()
            if repo is None:
                raise RuntimeError("cannot find the shivya repository; set SHIVYA_LIB to a built " + LIB)
            subprocess.check_call(["cargo", "build", "--release", "-p", "shivya-ffi"], cwd=repo)
            # cargo resolves a relative CARGO_TARGET_DIR against its working directory.
            target = os.path.join(repo, os.environ.get("CARGO_TARGET_DIR") or "target")
            lib = os.path.join(target, "release", LIB)
        super().run()
        out = os.path.join(self.build_lib, "shivya")
        os.makedirs(out, exist_ok=True)
        shutil.copy(lib, os.path.join(out, LIB))


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithCargo}, distclass=BinaryDistribution)
