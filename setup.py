"""caffe-nanlayers: find, explain and contain NaN/Inf in Caffe nets."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="caffe-nanlayers",
    version="0.1.0",
    description="Python layers, a prototxt linter and diagnostics for NaN/Inf in Caffe training",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["caffe_nanlayers", "caffe_nanlayers.*"]),
    # Never list `caffe` here: its PyPI name is an empty placeholder. pycaffe
    # comes from a local build (scripts/install_caffe.py) or the user's own.
    install_requires=["numpy", "protobuf"],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "hypothesis", "ruff", "lmdb", "h5py", "matplotlib", "plyvel"],
    },
    entry_points={
        "console_scripts": [
            "lint-prototxt=caffe_nanlayers.lint.cli:main",
            "caffe-nan=caffe_nanlayers.cli:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
