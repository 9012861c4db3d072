"""``qorgau devices``: device identities on the broker (user, password, ACL) and in the registry."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from firmware_sim.scenario import Scenario


class DevicesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QORGAU_", extra="ignore")

    broker_password_file: Path = Field(
        default=Path("/mosquitto/config/passwd"),
        description="Mosquitto password file (the broker's password_file)",
    )
    broker_acl_file: Path = Field(
        default=Path("/mosquitto/config/acl"), description="Mosquitto ACL file (acl_file)"
    )
    topic_prefix: str = Field(default="qorgau", description="first topic segment(s)")
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="registry database (skip with --no-db)",
    )
    database_schema: str = Field(default="qorgau", description="schema of Qorgau's tables")


RELOAD_HINT = (
    "reload the broker so that it reads the new password and ACL: "
    "`kill -HUP $(pidof mosquitto)`, `systemctl reload mosquitto`, or "
    "`docker kill -s HUP <container>`"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from qorgau.runtime import settings_help

    epilog = settings_help(DevicesSettings)
    parser = subparsers.add_parser(
        "devices",
        help="device identities: broker credentials, ACL and registry entries",
        description="Give a device its broker user and password, an ACL entry that lets it "
        "publish only under its own topic, and its place in the registry.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="create a device's credentials and ACL entry and register it",
        description="Create (or reset) the broker user DEVICE with a new password, allow it to "
        "publish under {prefix}/v1/{enterprise}/{device}/ only, and register the device (and "
        "its enterprise and workplace if new) in the database. Prints the password once.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--enterprise", required=True, help="enterprise code")
    add.add_argument("--device", required=True, help="device code (also its broker user)")
    add.add_argument("--workplace", help="workplace code (registered if new)")
    add.add_argument("--name", help="device description")
    _credential_options(add)
    add.add_argument("--no-db", action="store_true", help="do not touch the database registry")
    add.set_defaults(handler=_add)

    service = actions.add_parser(
        "add-service",
        help="create a service account (ingest, dashboards) that may read every device",
        description="Create (or reset) a broker user for a service: role 'ingest' reads all "
        "devices' topics and publishes alerts; 'reader' only reads.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    service.add_argument("--user", required=True, help="broker user name, e.g. qorgau-ingest")
    service.add_argument("--role", choices=["ingest", "reader"], default="ingest")
    _credential_options(service)
    service.set_defaults(handler=_add_service)

    scenario = actions.add_parser(
        "add-scenario",
        help="add every device of a simulator scenario (credentials, ACL, registry)",
        description="Run `add` for each device of a scenario, registering its enterprise, "
        "workplaces (names, professions, headcounts) and sensors too.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenario.add_argument("--scenario", required=True, help="mine, foundry, construction or FILE")
    scenario.add_argument(
        "--save-password",
        metavar="PATTERN",
        help="write each password to PATTERN with {device} replaced (mode 600) instead of "
        "printing it; matches QORGAU_MQTT_PASSWORD_FILE of `qorgau sim`",
    )
    scenario.add_argument("--no-tool", action="store_true", help=argparse.SUPPRESS)
    scenario.add_argument("--no-db", action="store_true", help="do not touch the database")
    scenario.add_argument("--no-broker", action="store_true", help="registry only")
    scenario.set_defaults(handler=_add_scenario)

    remove = actions.add_parser(
        "remove",
        help="revoke a device's broker access (the registry keeps its history)",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    remove.add_argument("--enterprise", required=True)
    remove.add_argument("--device", required=True)
    remove.set_defaults(handler=_remove)


def _credential_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of generating one",
    )
    parser.add_argument(
        "--save-password",
        metavar="FILE",
        help="write the password to FILE (mode 600) instead of printing it",
    )
    parser.add_argument(
        "--no-tool",
        action="store_true",
        help="hash the password here even if mosquitto_passwd is installed",
    )


# --------------------------------------------------------------------------- actions


def _settings() -> DevicesSettings:
    from qorgau.runtime import load_settings

    return load_settings(DevicesSettings)


def _password(args: argparse.Namespace) -> str:
    import secrets
    import sys

    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().strip()
        if not password:
            raise SystemExit("qorgau devices: no password on stdin")
        return password
    return secrets.token_urlsafe(24)


def _hand_over(password: str, who: str, save_to: str | None) -> None:
    if save_to is None:
        print(f"password of {who} (shown once, store it on the device): {password}")
        return
    path = Path(save_to)
    _save_secret(path, password + "\n")
    print(f"password of {who} written to {path}")


def _save_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, whatever the file's mode was before: a
    password file that already existed (readable by others) is replaced, not reused."""
    import os
    import tempfile

    from qorgau.brokerauth import SECRET_MODE

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        os.fchmod(fd, SECRET_MODE)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_writable(path: Path, what: str) -> None:
    """Refuse, before anything is changed, a file that cannot be rewritten: not a regular file,
    not readable and writable, or in a folder where no file can be created (every file here is
    replaced through a temporary file next to it)."""
    import os

    from vocabulary.errors import ConfigurationError

    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ConfigurationError(f"{what} {path} is not a regular file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigurationError(f"{what} {path} is not readable and writable by this user")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigurationError(f"{what} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{what} {path}: cannot create files in {folder}")


@contextlib.contextmanager
def _restored_on_failure(paths: list[Path]) -> Iterator[None]:
    """Put ``paths`` back as they were (their content, or their absence) when the block fails,
    so that a device is provisioned everywhere or nowhere."""
    import sys

    saved = [(path, path.read_bytes() if path.is_file() else None) for path in paths]
    try:
        yield
    except BaseException:
        for path, content in saved:
            try:
                if content is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(content)  # the rewritten file kept the mode and owner
            except OSError as exc:
                print(f"could not put back {path}: {exc}; check it by hand", file=sys.stderr)
        raise


def _credentials(
    settings: DevicesSettings,
    user: str,
    block: str,
    rules: list[tuple[str, str]],
    args: argparse.Namespace,
    save_to: str | None,
) -> None:
    from qorgau.brokerauth import set_acl_block, set_password

    password = _password(args)
    how = set_password(
        settings.broker_password_file, user, password, tool=None if args.no_tool else "auto"
    )
    set_acl_block(settings.broker_acl_file, block, user, rules)
    print(f"broker user {user}: password set in {settings.broker_password_file} ({how})")
    for access, topic in rules:
        print(f"  ACL {settings.broker_acl_file}: {access} {topic}")
    if getattr(args, "password_stdin", False):
        print(f"password of {user}: as given on stdin")
    else:
        _hand_over(password, user, save_to)


def _touched_files(settings: DevicesSettings, save_to: list[str | None]) -> list[Path]:
    """Every file a provisioning writes, checked before anything is changed."""
    files = [
        (settings.broker_password_file, "broker password file (QORGAU_BROKER_PASSWORD_FILE)"),
        (settings.broker_acl_file, "broker ACL file (QORGAU_BROKER_ACL_FILE)"),
        *((Path(p), "password file (--save-password)") for p in save_to if p is not None),
    ]
    for path, what in files:
        _check_writable(path, what)
    return [path for path, _ in files]


def _add(args: argparse.Namespace) -> int:
    """All or nothing: the codes, the files and the database are checked first; then the
    registry rows are written in a transaction that commits only after the broker files are
    written, and the files are put back if anything fails."""
    import sys

    from qorgau.brokerauth import device_acl
    from vocabulary.errors import QorgauError
    from vocabulary.protocol import readings_topic

    settings = _settings()
    try:
        readings_topic(settings.topic_prefix, args.enterprise, args.device)  # validates codes
        files = _touched_files(settings, [args.save_password])

        def write_credentials() -> None:
            _credentials(
                settings,
                args.device,
                f"device {args.enterprise}/{args.device}",
                device_acl(settings.topic_prefix, args.enterprise, args.device),
                args,
                args.save_password,
            )

        with _restored_on_failure(files):
            if args.no_db:
                write_credentials()
            else:
                _register(
                    settings,
                    args.enterprise,
                    [(args.device, args.name, args.workplace)],
                    then=write_credentials,
                )
    except (QorgauError, ValueError, OSError) as exc:
        print(f"qorgau devices add: {exc} (nothing was changed)", file=sys.stderr)
        return 1
    print(RELOAD_HINT)
    return 0


def _add_service(args: argparse.Namespace) -> int:
    import sys

    from qorgau.brokerauth import service_acl
    from vocabulary.errors import QorgauError

    settings = _settings()
    try:
        _credentials(
            settings,
            args.user,
            f"service {args.user}",
            service_acl(settings.topic_prefix, args.role),
            args,
            args.save_password,
        )
    except (QorgauError, OSError) as exc:
        print(f"qorgau devices add-service: {exc}", file=sys.stderr)
        return 1
    print(RELOAD_HINT)
    return 0


def _add_scenario(args: argparse.Namespace) -> int:
    import sys

    from firmware_sim.scenario import load_scenario
    from qorgau.brokerauth import device_acl
    from vocabulary.errors import QorgauError

    settings = _settings()
    try:
        scenario = load_scenario(args.scenario)
        save_to = {
            device.code: args.save_password.replace("{device}", device.code)
            if args.save_password
            else None
            for device in scenario.devices
        }
        files = [] if args.no_broker else _touched_files(settings, list(save_to.values()))

        def write_credentials() -> None:
            if args.no_broker:
                return
            for device in scenario.devices:
                _credentials(
                    settings,
                    device.code,
                    f"device {scenario.enterprise}/{device.code}",
                    device_acl(settings.topic_prefix, scenario.enterprise, device.code),
                    argparse.Namespace(password_stdin=False, no_tool=args.no_tool),
                    save_to[device.code],
                )

        # All or nothing, as `add`: the broker files are written inside the registry's
        # transaction and put back if it fails.
        with _restored_on_failure(files):
            if args.no_db:
                write_credentials()
            else:
                _register_scenario(settings, scenario, then=write_credentials)
    except (QorgauError, ValueError, OSError) as exc:
        print(f"qorgau devices add-scenario: {exc} (nothing was changed)", file=sys.stderr)
        return 1
    if not args.no_broker:
        print(RELOAD_HINT)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from qorgau.brokerauth import remove_acl_block, remove_password

    settings = _settings()
    had_password = remove_password(settings.broker_password_file, args.device)
    had_acl = remove_acl_block(settings.broker_acl_file, f"device {args.enterprise}/{args.device}")
    if not (had_password or had_acl):
        print(f"device {args.device} had no broker credentials")
        return 1
    print(f"device {args.device}: broker credentials and ACL entry removed")
    print(RELOAD_HINT)
    return 0


# --------------------------------------------------------------------------- registry


def _register(
    settings: DevicesSettings,
    enterprise: str,
    devices: list[tuple[str, str | None, str | None]],
    *,
    then: Callable[[], None] = lambda: None,
) -> None:
    """Register devices (code, name, workplace), creating the enterprise and workplaces when
    missing; existing names are left as they are. ``then`` runs inside the transaction: the
    rows are committed only if it succeeds."""
    import asyncio

    async def run() -> None:
        from store.connection import connect_async
        from store.migrate import require_schema_async
        from store.registry import (
            enterprise_id_of,
            find_device,
            upsert_device,
            upsert_enterprise,
            upsert_workplace,
            workplace_id_of,
        )
        from vocabulary.errors import ConfigurationError

        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            await require_schema_async(conn, settings.database_schema)
            for code, _, _ in devices:
                known = await find_device(conn, code)
                if known is not None and known.enterprise_code != enterprise:
                    raise ConfigurationError(
                        f"device {code} is registered to another enterprise; device codes are "
                        "unique across enterprises, so choose another code"
                    )
            async with conn.transaction():
                enterprise_id = await enterprise_id_of(conn, enterprise)
                if enterprise_id is None:
                    enterprise_id = await upsert_enterprise(conn, enterprise, enterprise)
                done = []
                for code, name, workplace in devices:
                    workplace_id = None
                    if workplace:
                        workplace_id = await workplace_id_of(conn, enterprise_id, workplace)
                        if workplace_id is None:
                            workplace_id = await upsert_workplace(
                                conn, enterprise_id, workplace, workplace
                            )
                    await upsert_device(
                        conn, enterprise_id, code, name=name, workplace_id=workplace_id
                    )
                    done.append(
                        f"registered device {code} of {enterprise}"
                        + (f" at workplace {workplace}" if workplace else "")
                    )
                then()
        for line in done:
            print(line)

    asyncio.run(_translated(run()))


async def _translated(work: Awaitable[None]) -> None:
    """The database's errors as one line that says what to do, never a traceback."""
    import psycopg

    from store.connection import DatabaseError

    try:
        await work
    except psycopg.Error as exc:
        raise DatabaseError(f"the registry database refused the change: {exc}".strip()) from exc


async def upsert_scenario(conn: AsyncConnection[Any], scenario: Scenario) -> dict[str, int]:
    """Register (or update) a scenario's enterprise, workplaces, devices and sensors in the
    caller's transaction; returns workplace code → id."""
    from store.registry import upsert_device_channels, upsert_enterprise, upsert_workplace

    enterprise_id = await upsert_enterprise(
        conn, scenario.enterprise, scenario.enterprise_name, scenario.region
    )
    workplace_ids: dict[str, int] = {}
    for wp in scenario.workplaces.values():
        workplace_ids[wp.code] = await upsert_workplace(
            conn,
            enterprise_id,
            wp.code,
            wp.name,
            profession=wp.profession,
            headcount=wp.headcount,
        )
    for spec in scenario.devices:
        workplace_id = workplace_ids[spec.workplace]
        device = scenario.build(spec.code, start=datetime(1970, 1, 1, tzinfo=UTC))
        await upsert_device_channels(
            conn, enterprise_id, device, name=spec.name, workplace_id=workplace_id
        )
    return workplace_ids


def _register_scenario(
    settings: DevicesSettings, scenario: Scenario, *, then: Callable[[], None] = lambda: None
) -> None:
    import asyncio

    async def run() -> None:
        from store.connection import connect_async
        from store.migrate import require_schema_async

        conn = await connect_async(settings.database_url, settings.database_schema, autocommit=True)
        async with conn:
            await require_schema_async(conn, settings.database_schema)
            async with conn.transaction():
                workplace_ids = await upsert_scenario(conn, scenario)
                then()
        print(
            f"registered {scenario.enterprise}: {len(workplace_ids)} workplaces, "
            f"{len(scenario.devices)} devices"
        )

    asyncio.run(_translated(run()))
