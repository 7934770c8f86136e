"""kxy-py installed over the published kxy-open-id-client 0.2.1, and back
(issue 13, row 1 and the install test of its "Tests" section).

kxy-py is distributed as ``kxy-open-id-client`` 1.0.0, the published
client's next major version, so pip treats the two as versions of one
distribution: installing either one replaces the other in place, and
``pip uninstall kxy-open-id-client`` removes whichever is there, leaving no
file of either behind.

Each test makes its own fresh venvs (``python -m venv``) under ``tmp_path``
and installs the published 0.2.1 from the package index. kxy-py comes from
the wheel at ``$KXY_PY_WHEEL`` (``scripts/build-wheel`` prints one), or from
``pip wheel --no-deps ./kxy-py``, built once per session (a release build:
several minutes on two cores; set ``KXY_PY_WHEEL`` to reuse a wheel).

Runs in any environment that has pytest; needs no kxy-server.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
DIST = "kxy-open-id-client"
PUBLISHED = "0.2.1"
OURS = "1.0.0"
# The files of the published 0.2.1's package directory (its wheel's RECORD).
PUBLISHED_FILES = {"__init__.py", "client.py", "exceptions.py", "models.py"}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """kxy-py's wheel: ``$KXY_PY_WHEEL`` or one built here once."""
    given = os.environ.get("KXY_PY_WHEEL")
    if given:
        path = pathlib.Path(given).resolve()
        assert path.is_file(), f"KXY_PY_WHEEL={given} is not a file"
        return path
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "--wheel-dir", str(out), str(ROOT / "kxy-py")],
        capture_output=True, text=True, timeout=3600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("kxy_open_id_client-*.whl")
    return path


class Venv:
    """A fresh virtual environment and the commands run in it."""

    def __init__(self, path: pathlib.Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        self.path = path
        self.python = str(path / "bin" / "python")
        self.site = pathlib.Path(self.py("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
        assert self.site.is_dir() and self.site.is_relative_to(path), self.site

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # -I: neither the working directory nor PYTHONPATH can supply the
        # package; only what pip installed into this venv is imported.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return subprocess.run(
            [self.python, "-I", *args], cwd=self.path, env=env,
            capture_output=True, text=True, timeout=timeout,
        )

    def pip(self, *args: str) -> str:
        """Runs pip; returns what it printed (it must succeed)."""
        result = self._run("-m", "pip", "--disable-pip-version-check", "--no-input", *args)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{output}"
        return output

    def py(self, code: str) -> str:
        """Runs Python code in the venv; returns its stdout (it must succeed)."""
        result = self._run("-c", code)
        assert result.returncode == 0, f"{code}\n{result.stdout}{result.stderr}"
        return result.stdout

    def kxy_entries(self) -> list[str]:
        """What site-packages holds of either version: its package directory
        and its .dist-info, by name."""
        return sorted(p.name for p in self.site.iterdir() if p.name.lower().startswith("kxy"))

    def package_files(self) -> set[str]:
        """The files in the installed package directory, __pycache__ aside."""
        package = self.site / "kxy_open_id_client"
        return {p.name for p in package.iterdir() if p.name != "__pycache__"}


# Imports the package as a user would and reports which one it is. The import
# of the submodules also leaves their bytecode in __pycache__, so an uninstall
# that missed those would show.
WHICH = """
import importlib.metadata, importlib.util, json
import kxy_open_id_client
from kxy_open_id_client import client, exceptions, models
from kxy_open_id_client import SegmentClient, IdGenerator, AsyncIdGenerator
native = importlib.util.find_spec("kxy_open_id_client._native")
print(json.dumps({
    "metadata": importlib.metadata.version("kxy-open-id-client"),
    "version": kxy_open_id_client.__version__,
    "file": kxy_open_id_client.__file__,
    "native": native.origin if native else None,
}))
"""

GONE = """
import importlib.metadata
try:
    import kxy_open_id_client
except ModuleNotFoundError as e:
    assert e.name == "kxy_open_id_client", e.name
else:
    raise SystemExit(f"still importable: {kxy_open_id_client.__file__}")
try:
    importlib.metadata.version("kxy-open-id-client")
except importlib.metadata.PackageNotFoundError:
    pass
else:
    raise SystemExit("still has metadata")
"""


def which(venv: Venv) -> dict[str, str | None]:
    import json

    return json.loads(venv.py(WHICH))


def assert_ours(venv: Venv) -> None:
    found = which(venv)
    assert found["metadata"] == OURS, found
    assert found["version"] == OURS, found
    assert found["file"] is not None and pathlib.Path(found["file"]).is_relative_to(venv.site), found
    assert found["native"] is not None and found["native"].endswith(".abi3.so"), found
    assert pathlib.Path(found["native"]).is_relative_to(venv.site), found
    assert venv.kxy_entries() == ["kxy_open_id_client", f"kxy_open_id_client-{OURS}.dist-info"]
    assert "No broken requirements found" in venv.pip("check")


def assert_published(venv: Venv) -> None:
    found = which(venv)
    assert found["metadata"] == PUBLISHED, found
    # The published 0.2.1 says __version__ = "0.1.0" (as released); its
    # metadata is what tells the version.
    assert found["native"] is None, found
    assert venv.package_files() == PUBLISHED_FILES, venv.package_files()
    assert venv.kxy_entries() == ["kxy_open_id_client", f"kxy_open_id_client-{PUBLISHED}.dist-info"]
    assert "No broken requirements found" in venv.pip("check")


def assert_uninstalls_cleanly(venv: Venv, version: str) -> None:
    output = venv.pip("uninstall", "-y", DIST)
    assert f"Successfully uninstalled {DIST}-{version}" in output, output
    venv.py(GONE)
    assert venv.kxy_entries() == [], venv.kxy_entries()
    assert not (venv.site / "kxy_open_id_client").exists()
    assert "No broken requirements found" in venv.pip("check")


def test_published_then_kxy_py(tmp_path: pathlib.Path, wheel: pathlib.Path) -> None:
    """0.2.1 first, then kxy-py: pip upgrades 0.2.1 to 1.0.0 in place; kxy-py
    is what imports; one uninstall removes the package entirely."""
    venv = Venv(tmp_path / "venv")
    output = venv.pip("install", f"{DIST}=={PUBLISHED}")
    assert "Successfully installed" in output and f"{DIST}-{PUBLISHED}" in output, output
    assert_published(venv)

    output = venv.pip("install", str(wheel))
    assert f"Found existing installation: {DIST} {PUBLISHED}" in output, output
    assert f"Successfully uninstalled {DIST}-{PUBLISHED}" in output, output
    assert f"Successfully installed {DIST}-{OURS}" in output, output
    assert_ours(venv)

    assert_uninstalls_cleanly(venv, OURS)


def test_kxy_py_then_published(tmp_path: pathlib.Path, wheel: pathlib.Path) -> None:
    """kxy-py first, then ``pip install kxy-open-id-client==0.2.1``: pip
    replaces 1.0.0 with 0.2.1, which imports with no file of kxy-py left
    (no ``_native`` module, stub or marker); one uninstall removes it all."""
    venv = Venv(tmp_path / "venv")
    output = venv.pip("install", str(wheel))
    assert "Successfully installed" in output and f"{DIST}-{OURS}" in output, output
    assert_ours(venv)

    output = venv.pip("install", f"{DIST}=={PUBLISHED}")
    assert f"Found existing installation: {DIST} {OURS}" in output, output
    assert f"Successfully uninstalled {DIST}-{OURS}" in output, output
    assert f"{DIST}-{PUBLISHED}" in output.split("Successfully installed", 1)[1], output
    assert_published(venv)
    leftovers = [p.name for p in (venv.site / "kxy_open_id_client").rglob("*_native*")]
    assert leftovers == [], leftovers

    assert_uninstalls_cleanly(venv, PUBLISHED)
