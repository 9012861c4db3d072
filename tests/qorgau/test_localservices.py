"""Where local services look for TimescaleDB: the extension counts as installed for a server
when that server's own ``pg_config`` directories hold its control file and loader library."""

from __future__ import annotations

from pathlib import Path

import pytest

from qorgau.localservices import timescaledb_installed


def fake_installation(root: Path, *, control: bool, library: bool) -> Path:
    """A PostgreSQL installation under ``root`` whose ``pg_config`` reports its directories."""
    bindir, sharedir, libdir = root / "bin", root / "share", root / "lib"
    for folder in (bindir, sharedir / "extension", libdir):
        folder.mkdir(parents=True)
    pg_config = bindir / "pg_config"
    pg_config.write_text(
        "#!/bin/sh\n"
        "for opt; do case $opt in\n"
        f"  --bindir) echo {bindir};; --sharedir) echo {sharedir};; --pkglibdir) echo {libdir};;\n"
        "esac; done\n"
    )
    pg_config.chmod(0o755)
    if control:
        (sharedir / "extension" / "timescaledb.control").write_text("default_version = '2.28.3'\n")
    if library:
        (libdir / "timescaledb.so").write_bytes(b"")
    return bindir


@pytest.mark.parametrize(
    ("control", "library", "installed"),
    [(True, True, True), (True, False, False), (False, True, False), (False, False, False)],
)
def test_timescaledb_counts_as_installed_with_its_control_file_and_library(
    tmp_path: Path, control: bool, library: bool, installed: bool
) -> None:
    bindir = fake_installation(tmp_path, control=control, library=library)
    assert timescaledb_installed(bindir) is installed
