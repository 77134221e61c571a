"""Builds libshivya with cargo and bundles it into the package.

`pip install ./bindings/python` runs `cargo build --release -p shivya-ffi` in the
repository this directory belongs to and copies the shared library next to the
generated `shivya/shivya.py`. Set SHIVYA_LIB to a prebuilt library to skip cargo.
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
            lib = os.path.join(repo, "target", "release", LIB)
        shutil.copy(lib, os.path.join(HERE, "shivya", LIB))
        super().run()


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithCargo}, distclass=BinaryDistribution)
