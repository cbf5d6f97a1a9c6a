"""Build the native core (aecodec._core) and ship models/ as aecodec.models package data."""

import glob
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# Strict IEEE semantics: the exact hyper-synthesis relies on no FMA contraction and no
# reassociation, so -ffast-math is never used and contraction is switched off explicitly.
# GCC or clang only: the kernels use their vector extensions and target attributes.
extra = ["-O3", "-ffp-contract=off", "-fno-fast-math"]

ext = Pybind11Extension(
    "aecodec._core",
    sorted(glob.glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=extra,
)


def model_files():
    """Every file under models/, relative to it (package data of aecodec.models)."""
    out = []
    for root, _dirs, files in os.walk("models"):
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), "models"))
    return sorted(out)


setup(
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
    packages=["aecodec", "aecodec.train", "aecodec.models"],
    package_dir={"aecodec.models": "models"},
    package_data={"aecodec.models": model_files()},
)
