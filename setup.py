"""Only the package-dir mapping lives here; everything else is in pyproject.toml.

``models/`` installs as ``ppgen.models`` and ``inference/`` as ``ppgen.inference``. The package
list is computed from the tree so that a new sub-package can never be left out of the wheel.
"""

from setuptools import find_packages, setup

ROOTS = {"ppgen": "ppgen", "models": "ppgen.models", "inference": "ppgen.inference"}


def package_dirs() -> dict[str, str]:
    """Map every importable package name to its folder in the repository."""
    mapping = {}
    for folder, name in ROOTS.items():
        mapping[name] = folder
        for sub in find_packages(where=folder):
            mapping[f"{name}.{sub}"] = f"{folder}/" + sub.replace(".", "/")
    return mapping


DIRS = package_dirs()
setup(packages=sorted(DIRS), package_dir=DIRS)
