"""Check that every floor in pyproject.toml is a version CI actually runs.

    .venv/bin/python ci/check-floors.py        (``make lint`` runs it)

* A requirement of the project or its dev group that the floors leg installs
  (ci/requirements/airflow-2.11-lowest-py3.10.txt, resolved with ``lowest-direct``) must have
  its floor pinned there: ``pytest>=8.0`` with ``pytest==8.0.0`` in the leg.
* The lint, type-check and docs tools run only in the locked ``.venv`` (uv.lock): their
  floor is the version installed there. Run this script with ``.venv/bin/python``.
* ci/requirements/dev.in repeats the project's and dev group's requirements for the legs: the
  same specifiers. The floors leg asks for the amazon provider's floor and pins Airflow's.
* ``requires-python``'s floor is the lowest Python a leg runs; every ``Python :: 3.X``
  classifier is a Python some leg runs.

Exit status 1 with one line per problem, 0 when all agree.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQS = ROOT / "ci" / "requirements"
FLOORS_LEG = REQS / "airflow-2.11-lowest-py3.10.txt"
FLOORS_IN = REQS / "airflow-2.11-lowest.in"
LEG_FILE = re.compile(r"airflow-(?P<ver>[\d.]+(?:-lowest)?)-py(?P<py>3\.\d+)\.txt")
LOCKED_PYTHON = "3.11"  # make test: uv.lock on .venv's Python


def floor(requirement: Requirement) -> Version | None:
    """The version after ``>=`` (or ``==``), if any."""
    for spec in requirement.specifier:
        if spec.operator in (">=", "=="):
            return Version(spec.version)
    return None


def pins(path: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def installed(name: str) -> Version | None:
    """The version in this interpreter's environment (run with the locked ``.venv``)."""
    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements(path: Path) -> dict[str, Requirement]:
    found: dict[str, Requirement] = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text and not text.startswith("-"):
            requirement = Requirement(text)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    declared = {
        canonicalize_name(r.name): r for r in map(Requirement, [*project["dependencies"], *dev])
    }
    leg = pins(FLOORS_LEG)
    dev_in, floors_in = requirements(REQS / "dev.in"), requirements(FLOORS_IN)
    problems: list[str] = []

    for name, requirement in sorted(declared.items()):
        low = floor(requirement)
        if low is None:
            problems.append(f"{requirement}: no floor (>=) in pyproject.toml")
            continue
        where, tested = (
            (FLOORS_LEG.name, leg[name]) if name in leg else ("the locked .venv", installed(name))
        )
        if tested is None:
            problems.append(f"{requirement}: neither the floors leg nor this venv installs it")
        elif tested != low:
            problems.append(
                f"{requirement}: the floor is {low} but {where} runs {tested}; "
                f"make the floor {tested} (or lower the leg to the floor and test it)"
            )
        again = dev_in.get(name) or floors_in.get(name)
        if name == "apache-airflow":
            again = None  # each leg pins its own Airflow: the floors leg's pin is checked above
        if again is not None and str(again.specifier) != str(requirement.specifier):
            problems.append(
                f"{requirement.name}: pyproject.toml says {requirement.specifier} but "
                f"ci/requirements says {again.specifier}; keep them in step"
            )
    for name in dev_in.keys() - declared.keys():
        problems.append(f"ci/requirements/dev.in has {name}, which pyproject.toml does not")

    pythons = {m["py"] for p in REQS.glob("*.txt") if (m := LEG_FILE.fullmatch(p.name))}
    pythons.add(LOCKED_PYTHON)
    lowest = min(pythons, key=Version)
    requires = project["requires-python"]
    if requires != f">={lowest}":
        problems.append(f"requires-python is {requires!r}; the lowest Python CI runs is {lowest}")
    for classifier in project["classifiers"]:
        match = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier)
        if match and match[1] not in pythons:
            problems.append(f"classifier {classifier!r}: no CI leg runs Python {match[1]}")

    for problem in problems:
        print(f"check-floors: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
