"""Map the top-level folders onto the ``novacron.*`` import names.

pyproject.toml holds all metadata; this file only computes the package list so that
a new sub-package is picked up without editing a hand-kept list (``novacron`` itself is
an implicit namespace: there is never a bare ``agent`` package on sys.path).
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
FOLDERS = {
    "agent": "novacron.agent",
    "coordinator": "novacron.coordinator",
    "protos": "novacron.protos",
    "models": "novacron.models",
}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, import_name in FOLDERS.items():
        for init in sorted((HERE / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(HERE)
            if "__pycache__" in rel.parts:
                continue
            name = ".".join([import_name, *rel.parts[1:]])
            packages.append(name)
            package_dir[name] = rel.as_posix()
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
