"""Packaging glue that pyproject.toml cannot express: install the repository's top-level folders
``profiler/``, ``optimizers/`` and ``reports/`` as ``tokprof.profiler``, ``tokprof.optimizers`` and
``tokprof.reports``, so nothing but ``tokprof`` is installed at top level (a user's own ``reports`` package
cannot shadow ours). All metadata stays in pyproject.toml.
"""

from setuptools import find_packages, setup

# installed package name -> folder in the repository
MAPPED_FOLDERS = {
    "tokprof.profiler": "profiler",
    "tokprof.optimizers": "optimizers",
    "tokprof.reports": "reports",
}


def _packages() -> list[str]:
    names = ["tokprof"] + [f"tokprof.{sub}" for sub in find_packages("tokprof")]
    for name, folder in MAPPED_FOLDERS.items():
        names += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return names


setup(packages=_packages(), package_dir={"tokprof": "tokprof", **MAPPED_FOLDERS})
