"""Broker identities: Mosquitto password and ACL files, written by ``qorgau devices``.

Every device has its own broker user (the device code) and may publish only its own readings
and status topics, ``{prefix}/v1/{enterprise}/{device}/readings|status``; service accounts
(ingest, dashboards) may read every device. Mosquitto reads both files at start and again on
SIGHUP, so adding a device never restarts the broker. ``qorgau.broker`` renders the
configuration that points at these files.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from vocabulary.errors import QorgauError
from vocabulary.protocol import readings_topic, status_topic

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes; the iteration count is in the hash
PBKDF2_SALT_BYTES = 12
# Files that hold passwords or their hashes: the owner alone reads and writes them.
SECRET_MODE = 0o600


class BrokerAuthError(QorgauError):
    """The password or ACL file cannot be read or written."""


def mosquitto_password_hash(
    password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """The ``$7$`` PBKDF2-SHA512 hash that Mosquitto 2 reads from a password file:
    ``$7$<iterations>$<base64 salt>$<base64 64-byte derived key>``."""
    salt = secrets.token_bytes(PBKDF2_SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_mosquitto_password(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    expected = mosquitto_password_hash(password, salt=salt, iterations=int(parts[2]))
    return hmac.compare_digest(expected, hashed)


def _check_user(username: str) -> None:
    if not username or any(c in username for c in ":\n\r#+/ \t"):
        raise BrokerAuthError(f"{username!r} cannot be a broker user name")


def set_password(path: Path, username: str, password: str, *, tool: str | None = "auto") -> str:
    """Add or update ``username`` in a Mosquitto password file (created if missing, mode 0600;
    an existing one keeps its owner and mode less any access by others).

    ``tool="auto"`` runs ``mosquitto_passwd -b`` when it is installed (the broker's own
    hashing); ``None`` always hashes here. Returns which one wrote the entry. ``-b`` shows the
    password on the command line of a process for a moment; on a shared host, use
    ``tool=None``.
    """
    _check_user(username)
    if "\n" in password or not password:
        raise BrokerAuthError("the password must be one non-empty line")
    binary = shutil.which("mosquitto_passwd") if tool == "auto" else tool
    if binary:
        existed = path.exists()
        if not existed:
            # Created empty with the right mode first: mosquitto_passwd -c would make it 0644.
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE))
        result = subprocess.run(
            [binary, "-b", str(path), username, password],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerAuthError(
                f"mosquitto_passwd failed: {(result.stderr or result.stdout).strip()}"
            )
        _protect(path)
        return "mosquitto_passwd"
    _rewrite(path, username, f"{username}:{mosquitto_password_hash(password)}")
    return "python"


def _protect(path: Path) -> None:
    """No access by others to a file of password hashes (Mosquitto warns about it too)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o007:
        os.chmod(path, mode & ~0o007)


def remove_password(path: Path, username: str) -> bool:
    """Remove ``username`` from the password file; False if it was not there."""
    if not path.exists():
        return False
    before = path.read_text().splitlines()
    if not any(line.split(":", 1)[0] == username for line in before):
        return False
    _rewrite(path, username, None)
    return True


def _rewrite(path: Path, username: str, line: str | None) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [entry for entry in lines if entry.split(":", 1)[0] != username]
    if line is not None:
        kept.append(line)
    _atomic_write(path, "".join(f"{entry}\n" for entry in kept), secret=True)


def _atomic_write(path: Path, text: str, *, secret: bool = False) -> None:
    """Replace ``path`` keeping its owner and mode (the broker's user must still read it); a
    new file gets mode 0640, or 0600 when it holds ``secret``s, and a secret one never keeps
    access by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        if old is not None:
            mode = stat.S_IMODE(old.st_mode)
            os.chmod(tmp, mode & ~0o007 if secret else mode)
            if os.geteuid() == 0:
                os.chown(tmp, old.st_uid, old.st_gid)
        else:
            os.chmod(tmp, SECRET_MODE if secret else 0o640)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


ACL_HEADER = (
    "# Qorgau broker ACL, managed by `qorgau devices`: edit outside the >>> <<< blocks only.\n"
    "# A device writes only {prefix}/v1/{enterprise}/{device}/readings and .../status; services "
    "read all.\n"
)


def device_acl(prefix: str, enterprise: str, device: str) -> list[tuple[str, str]]:
    """What a device may do: publish its readings and its status (and status as last will),
    nothing else: not a wildcard under its code, which would reach any topic a service might
    put at that level. Raises ``ValueError`` for a code that cannot be a device's topic
    segment, or that service topics use (``vocabulary.protocol.RESERVED_DEVICE_CODES``)."""
    return [
        ("write", readings_topic(prefix, enterprise, device)),
        ("write", status_topic(prefix, enterprise, device)),
    ]


SERVICE_ROLES = ("ingest", "reader")


def service_acl(prefix: str, role: str) -> list[tuple[str, str]]:
    """``ingest`` reads every device, publishes alerts and its workers' retained status
    (``{prefix}/ingest/{client id}/status``, and the same topic as last will); ``reader`` only
    reads. Without the status grant Mosquitto refuses those publishes (PUBACK 0x87) and drops
    the will, so a worker's online/offline state would never reach anybody."""
    if role not in SERVICE_ROLES:
        raise BrokerAuthError(f"unknown service role {role!r}; use one of {SERVICE_ROLES}")
    rules = [("read", f"{prefix}/v1/#")]
    if role == "ingest":
        rules.append(("write", f"{prefix}/v1/+/alerts/#"))
        rules.append(("write", f"{prefix}/ingest/#"))
    return rules


def set_acl_block(path: Path, name: str, username: str, rules: list[tuple[str, str]]) -> None:
    """Add or replace the block ``name`` (e.g. ``device mine-01/mine-01-lw-1``) granting
    ``username`` the ``(access, topic)`` rules."""
    _check_user(username)
    for access, topic in rules:
        if access not in ("read", "write", "readwrite") or not topic or "\n" in topic:
            raise BrokerAuthError(f"bad ACL rule {access} {topic!r}")
    body = [f"# >>> {name}", f"user {username}"]
    body += [f"topic {access} {topic}" for access, topic in rules]
    body.append(f"# <<< {name}")
    _edit_acl(path, name, "\n".join(body))


def remove_acl_block(path: Path, name: str) -> bool:
    if not path.exists() or f"# >>> {name}\n" not in path.read_text():
        return False
    _edit_acl(path, name, None)
    return True


def _edit_acl(path: Path, name: str, block: str | None) -> None:
    text = path.read_text() if path.exists() else ACL_HEADER
    start_marker, end_marker = f"# >>> {name}\n", f"# <<< {name}\n"
    start = text.find(start_marker)
    if start >= 0:
        end = text.find(end_marker, start)
        if end < 0:
            raise BrokerAuthError(f"{path}: block {name!r} has no end marker; fix it by hand")
        text = text[:start].rstrip("\n") + "\n" + text[end + len(end_marker) :].lstrip("\n")
    if block is not None:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    _atomic_write(path, text)
