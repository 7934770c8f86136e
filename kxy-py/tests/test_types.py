"""The package's type stubs hold: ``mypy --strict`` is clean on the package
and on a user program, and ``stubtest`` finds the native stubs match the
compiled module."""

from __future__ import annotations

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parent / "python"


def mypy(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mypy_strict_is_clean_on_the_package_and_a_user_program(tmp_path: pathlib.Path) -> None:
    package = mypy("kxy_open_id_client", cwd=SOURCE)
    assert package.returncode == 0, package.stdout + package.stderr
    # The user program is checked against the installed package, as a user's is.
    program = mypy(str(HERE / "typing" / "user_program.py"), cwd=tmp_path)
    assert program.returncode == 0, program.stdout + program.stderr


def test_stubtest_finds_the_native_stubs_match_the_module(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "kxy_open_id_client"],
        cwd=tmp_path,  # the installed package, not the source tree
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
