"""Package layout that pyproject.toml alone cannot express.

``methods/`` and ``datasets/`` are declarations kept at the top of the repository; they are shipped
inside the wheel as the data packages ``hdrbench._recipes`` and ``hdrbench._cards`` so that recipes
and dataset cards resolve from an installed package exactly as from a source checkout.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hdrbench", "hdrbench.*"]) + ["hdrbench._recipes", "hdrbench._cards"],
    package_dir={"hdrbench._recipes": "methods", "hdrbench._cards": "datasets"},
)
