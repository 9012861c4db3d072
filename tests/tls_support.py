"""A private Mosquitto with a plain and a TLS listener, its certificates made by a throwaway CA:
for the edge agent's and the services' TLS tests (a plugin of tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qorgau.broker import BrokerConfig, render_mosquitto_conf
from qorgau.localservices import free_port, mosquitto_binary, scratch_dir

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command"
)


@dataclass
class TlsBroker:
    plain_url: str
    tls_url: str
    ca_file: Path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A throwaway CA (``ca.pem``) and a server certificate for 127.0.0.1 signed by it
    (``server.pem``, ``server.key``) in ``folder``."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        folder,
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=qorgau-test-ca",
    )
    _openssl(
        folder, "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        folder,
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )


@pytest.fixture
def tls_broker() -> Iterator[TlsBroker]:
    folder = scratch_dir("qorgau-test-tls-")
    make_certificates(folder)
    plain, tls = free_port(), free_port()
    user = pwd.getpwnam("mosquitto") if os.geteuid() == 0 else None
    conf = render_mosquitto_conf(
        BrokerConfig(
            listeners=((plain, "127.0.0.1"),),
            persistence_dir=folder,
            log_file=folder / "mosquitto.log",
            run_as_user=user.pw_name if user else None,
        )
    )
    conf += (
        f"listener {tls} 127.0.0.1\ncafile {folder / 'ca.pem'}\n"
        f"certfile {folder / 'server.pem'}\nkeyfile {folder / 'server.key'}\n"
    )
    (folder / "mosquitto.conf").write_text(conf)
    if user is not None:
        for path in [folder, *folder.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
    process = subprocess.Popen(
        [str(mosquitto_binary()), "-c", str(folder / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", tls), 0.2):
                break
            assert process.poll() is None, (folder / "mosquitto.log").read_text()
            assert time.monotonic() < deadline, "the TLS broker did not start"
            time.sleep(0.05)
        yield TlsBroker(f"mqtt://127.0.0.1:{plain}", f"mqtts://127.0.0.1:{tls}", folder / "ca.pem")
    finally:
        process.terminate()
        process.wait(15)
        shutil.rmtree(folder, ignore_errors=True)
