"""caffe-nanlayers: find, explain and contain NaN/Inf in Caffe nets."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# One version, in the package (``caffe-nan --version`` reads it there); read as
# text so that building the package never imports it.
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "caffe_nanlayers" / "__init__.py").read_text(encoding="utf-8"), re.M
).group(1)

# Optional readers: the linter and the log doctor need none of them, so a plain
# install stays numpy + protobuf. The message of a command that needs one names
# the extra to install.
EXTRAS = {
    "scan": ["lmdb", "h5py", "plyvel"],
    "plot": ["matplotlib"],
}
EXTRAS["dev"] = sorted(
    {*EXTRAS["scan"], *EXTRAS["plot"], "pytest", "pytest-timeout", "hypothesis", "ruff", "build", "pillow"}
)

setup(
    name="caffe-nanlayers",
    version=VERSION,
    description="Python layers, a prototxt linter and diagnostics for NaN/Inf in Caffe training",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-2-Clause",
    license_files=["LICENSE"],
    python_requires=">=3.9",
    packages=find_packages(include=["caffe_nanlayers", "caffe_nanlayers.*"]),
    # Never list `caffe` here: its PyPI name is an empty placeholder. pycaffe
    # comes from a local build (scripts/install_caffe.py) or the user's own.
    install_requires=["numpy", "protobuf"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "lint-prototxt=caffe_nanlayers.commands.lint:main",
            "caffe-nan=caffe_nanlayers.cli:main",
        ]
    },
    keywords=["caffe", "nan", "deep learning", "linter", "debugging"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Console",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Software Development :: Quality Assurance",
    ],
)
