"""Scenario files (TOML): an enterprise, its workplaces and shift schedule, the devices at each
workplace with their instruments, scheduled events and injected faults.

Built-in scenarios (``mine``, ``foundry``, ``construction``) ship in
``firmware_sim/scenarios/``; ``load_scenario`` takes one of those names or a path. The layout,
with every key, is documented in ``docs/edge.md`` and shown by the built-in files. Times of
day are local (``utc_offset``); ``from``/``to``/``at`` are relative to the start of each shift
(``"4:30"`` is four and a half hours in); durations are ``"90s"``, ``"20m"``, ``"8h"``.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from firmware_sim.device import SimulatedDevice
from firmware_sim.faults import (
    MESSAGE_FAULT_KINDS,
    SAMPLE_FAULT_KINDS,
    MessageFaults,
    SampleFault,
    When,
)
from firmware_sim.instruments import INSTRUMENT_KINDS, GasSensor, Instrument, Release
from firmware_sim.schedule import (
    Shifts,
    Task,
    Window,
    WorkplaceSchedule,
    parse_clock,
    parse_duration,
    parse_utc_offset,
)
from vocabulary.errors import QorgauError

BUILTIN = ("mine", "foundry", "construction")


class ScenarioError(QorgauError):
    """A scenario file that cannot be used; the message names the key to fix."""


@dataclass(frozen=True, slots=True)
class Workplace:
    code: str
    name: str
    profession: str | None
    headcount: int
    schedule: WorkplaceSchedule


@dataclass(frozen=True, slots=True)
class DeviceDef:
    code: str
    name: str | None
    workplace: str
    instruments: tuple[Instrument, ...]
    faults: tuple[SampleFault, ...] = ()
    duplicate_share: float = 0.0
    malformed_share: float = 0.0
    period_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    enterprise: str
    enterprise_name: str
    region: str | None
    tz: timezone
    shifts: Shifts
    workplaces: Mapping[str, Workplace]
    devices: tuple[DeviceDef, ...]
    seed: int = 0
    notes: Mapping[str, str] = field(default_factory=dict)

    def device(self, code: str) -> DeviceDef:
        for device in self.devices:
            if device.code == code:
                return device
        raise ScenarioError(
            f"scenario {self.name} has no device {code!r}; it has "
            f"{', '.join(d.code for d in self.devices)}"
        )

    def build(
        self,
        code: str,
        *,
        start: datetime,
        seed: int | None = None,
        memory_s: float = 0.0,
        faults: bool = True,
    ) -> SimulatedDevice:
        """The simulated device ``code``, reading from ``start``."""
        spec = self.device(code)
        return SimulatedDevice(
            spec.code,
            spec.instruments,
            start=start,
            seed=self.seed if seed is None else seed,
            schedule=self.workplaces[spec.workplace].schedule,
            faults=spec.faults if faults else (),
            period_s=spec.period_s,
            memory_s=memory_s,
        )

    def message_faults(self, code: str, seed: int | None = None) -> MessageFaults | None:
        spec = self.device(code)
        faults = MessageFaults(
            seed=self.seed if seed is None else seed,
            duplicate_share=spec.duplicate_share,
            malformed_share=spec.malformed_share,
        )
        return faults if faults else None

    def with_faults(self, extra: Sequence[Mapping[str, Any]]) -> Scenario:
        """This scenario with more ``[[faults]]`` tables (e.g. from ``--faults FILE``)."""
        devices = _apply_faults(self.devices, extra, self.shifts)
        return dataclasses.replace(self, devices=devices)


# --------------------------------------------------------------------------- loading


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    text: str
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        name = name_or_path
        text = resources.files("firmware_sim.scenarios").joinpath(f"{name}.toml").read_text("utf-8")
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ScenarioError(
                f"no scenario {str(name_or_path)!r}: give a file or one of {', '.join(BUILTIN)}"
            )
        name = path.stem
        text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {name}: {exc}") from None
    return parse_scenario(data, name)


def load_faults(path: Path) -> list[dict[str, Any]]:
    """The ``[[faults]]`` tables of a TOML file."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"faults file {path}: {exc}") from None
    _known(data, {"faults"}, str(path))
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError(f"{path}: 'faults' must be an array of tables ([[faults]])")
    return faults


def parse_scenario(data: Mapping[str, Any], name: str) -> Scenario:
    _known(
        data,
        {"scenario", "enterprise", "shifts", "workplaces", "devices", "events", "faults"},
        name,
    )
    meta = _table(data, "scenario", name, required=False)
    _known(meta, {"description", "seed", "notes"}, f"{name}.scenario")
    ent = _table(data, "enterprise", name)
    _known(ent, {"code", "name", "region", "utc_offset"}, f"{name}.enterprise")
    tz = _parse(
        parse_utc_offset,
        _get(ent, "utc_offset", f"{name}.enterprise", "+00:00"),
        f"{name}.enterprise.utc_offset",
    )

    sh = _table(data, "shifts", name)
    _known(sh, {"starts", "hours", "breaks"}, f"{name}.shifts")
    where = f"{name}.shifts"
    starts = tuple(_parse(parse_clock, s, f"{where}.starts") for s in _req(sh, "starts", where))
    breaks = tuple(_window(b, f"{where}.breaks") for b in _get(sh, "breaks", where, []))
    try:
        shifts = Shifts(starts, float(_req(sh, "hours", where)) * 3600.0, tz, breaks)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None

    workplaces: dict[str, Workplace] = {}
    for i, wp in enumerate(_array(data, "workplaces", name)):
        where = f"{name}.workplaces[{i}]"
        _known(wp, {"code", "name", "profession", "headcount", "idle", "tasks"}, where)
        code = str(_req(wp, "code", where))
        tasks = []
        for j, task in enumerate(_get(wp, "tasks", where, [])):
            tw = f"{where}.tasks[{j}]"
            _known(task, {"name", "from", "to", "level"}, tw)
            tasks.append(
                Task(str(_req(task, "name", tw)), _window(task, tw), float(task.get("level", 1.0)))
            )
        workplaces[code] = Workplace(
            code=code,
            name=str(_req(wp, "name", where)),
            profession=wp.get("profession"),
            headcount=int(wp.get("headcount", 1)),
            schedule=WorkplaceSchedule(shifts, tuple(tasks), float(wp.get("idle", 0.2))),
        )

    devices: list[DeviceDef] = []
    for i, dev in enumerate(_array(data, "devices", name)):
        where = f"{name}.devices[{i}]"
        _known(dev, {"code", "name", "workplace", "period", "instruments"}, where)
        workplace = str(_req(dev, "workplace", where))
        if workplace not in workplaces:
            raise ScenarioError(f"{where}.workplace: no workplace {workplace!r}")
        instruments = tuple(
            _instrument(inst, f"{where}.instruments[{j}]")
            for j, inst in enumerate(_req(dev, "instruments", where))
        )
        devices.append(
            DeviceDef(
                code=str(_req(dev, "code", where)),
                name=dev.get("name"),
                workplace=workplace,
                instruments=instruments,
                period_s=_parse(parse_duration, dev.get("period", 1.0), f"{where}.period"),
            )
        )
    codes = [d.code for d in devices]
    if len(set(codes)) != len(codes):
        raise ScenarioError(f"{name}: device codes must be unique")

    devices = _apply_events(devices, _array(data, "events", name, required=False), shifts, name)
    devices = list(_apply_faults(devices, _array(data, "faults", name, required=False), shifts))
    try:
        # Build each device once so that a bad fault or channel name fails at load time.
        for device in devices:
            SimulatedDevice(
                device.code,
                device.instruments,
                start=datetime.fromtimestamp(0, tz),
                faults=device.faults,
            )
    except ValueError as exc:
        raise ScenarioError(f"{name}: {exc}") from None
    return Scenario(
        name=name,
        description=str(meta.get("description", "")),
        enterprise=str(_req(ent, "code", f"{name}.enterprise")),
        enterprise_name=str(_req(ent, "name", f"{name}.enterprise")),
        region=ent.get("region"),
        tz=tz,
        shifts=shifts,
        workplaces=workplaces,
        devices=tuple(devices),
        seed=int(meta.get("seed", 0)),
        notes=dict(meta.get("notes", {})),
    )


# --------------------------------------------------------------------------- pieces


def _instrument(table: Mapping[str, Any], where: str) -> Instrument:
    kind = str(_req(table, "kind", where))
    cls = INSTRUMENT_KINDS.get(kind)
    if cls is None:
        raise ScenarioError(f"{where}.kind: {kind!r} is not one of {sorted(INSTRUMENT_KINDS)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "kind":
            continue
        if f"{key}_s" in fields:  # durations: "cycle" → cycle_s
            kwargs[f"{key}_s"] = _parse(parse_duration, value, f"{where}.{key}")
        elif key in fields and key != "releases":
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        else:
            settable = sorted(n.removesuffix("_s") for n in fields if n not in {"releases", "kind"})
            raise ScenarioError(f"{where}: unknown key {key!r} for {kind}; use {settable}")
    try:
        instrument: Instrument = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return instrument


def _apply_events(
    devices: list[DeviceDef], events: Sequence[Mapping[str, Any]], shifts: Shifts, name: str
) -> list[DeviceDef]:
    by_code = {d.code: d for d in devices}
    for i, event in enumerate(events):
        where = f"{name}.events[{i}]"
        _known(event, {"device", "kind", "substance", "at", "peak", "rise", "decay"}, where)
        if event.get("kind", "release") != "release":
            raise ScenarioError(f"{where}.kind: only 'release' events exist (gas releases)")
        code = str(_req(event, "device", where))
        device = by_code.get(code)
        if device is None:
            raise ScenarioError(f"{where}.device: no device {code!r}")
        substance = str(_req(event, "substance", where))
        release = Release(
            at_s=_parse(parse_clock, _req(event, "at", where), f"{where}.at"),
            peak=float(_req(event, "peak", where)),
            rise_s=_parse(parse_duration, event.get("rise", "2m"), f"{where}.rise"),
            decay_s=_parse(parse_duration, event.get("decay", "10m"), f"{where}.decay"),
        )
        matched = False
        instruments: list[Instrument] = []
        for inst in device.instruments:
            if isinstance(inst, GasSensor) and inst.substance == substance:
                inst = dataclasses.replace(inst, releases=(*inst.releases, release))
                matched = True
            instruments.append(inst)
        if not matched:
            raise ScenarioError(f"{where}: device {code} has no {substance} gas sensor")
        by_code[code] = dataclasses.replace(device, instruments=tuple(instruments))
    return [by_code[d.code] for d in devices]


def _apply_faults(
    devices: Sequence[DeviceDef], faults: Sequence[Mapping[str, Any]], shifts: Shifts
) -> tuple[DeviceDef, ...]:
    by_code = {d.code: d for d in devices}
    params = {"rate_per_h", "factor", "value", "per_hour", "offset", "share"}
    for i, fault in enumerate(faults):
        where = f"faults[{i}]"
        _known(
            fault,
            {"device", "channel", "channels", "kind", "at", "duration", "since", "until", *params},
            where,
        )
        kind = str(_req(fault, "kind", where))
        codes = [str(fault["device"])] if "device" in fault else list(by_code)
        for code in codes:
            device = by_code.get(code)
            if device is None:
                raise ScenarioError(f"{where}.device: no device {code!r}")
            if kind in MESSAGE_FAULT_KINDS:
                share = float(_req(fault, "share", where))
                if kind == "duplicate":
                    by_code[code] = dataclasses.replace(device, duplicate_share=share)
                else:
                    by_code[code] = dataclasses.replace(device, malformed_share=share)
                continue
            if kind not in SAMPLE_FAULT_KINDS:
                raise ScenarioError(
                    f"{where}.kind: {kind!r} is not one of "
                    f"{', '.join(SAMPLE_FAULT_KINDS + MESSAGE_FAULT_KINDS)}"
                )
            channels = fault.get("channels", [fault["channel"]] if "channel" in fault else [])
            sample_fault = SampleFault(
                kind=kind,  # type: ignore[arg-type]
                channels=frozenset(str(c) for c in channels),
                when=_when(fault, where),
                rate_per_h=float(fault.get("rate_per_h", 6.0)),
                factor=float(fault.get("factor", 10.0)),
                value=float(fault.get("value", -999.0)),
                per_hour=float(fault.get("per_hour", 1.0)),
                offset_s=_signed_duration(fault.get("offset", 0.0), f"{where}.offset"),
            )
            by_code[code] = dataclasses.replace(device, faults=(*device.faults, sample_fault))
    return tuple(by_code[d.code] for d in devices)


def _when(fault: Mapping[str, Any], where: str) -> When:
    if "at" in fault:
        start = _parse(parse_clock, fault["at"], f"{where}.at")
        length = _parse(parse_duration, _req(fault, "duration", where), f"{where}.duration")
        return When(window=Window(start, start + length))
    since = fault.get("since")
    until = fault.get("until")
    for key, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ScenarioError(f"{where}.{key}: give a TOML date-time with an offset")
    return When(since=since, until=until)


def _signed_duration(value: Any, where: str) -> float:
    if isinstance(value, str) and value.strip().startswith("-"):
        return -float(_parse(parse_duration, value.strip()[1:], where))
    if isinstance(value, int | float):
        return float(value)
    return float(_parse(parse_duration, value, where))


def _window(table: Mapping[str, Any], where: str) -> Window:
    start = _parse(parse_clock, _req(table, "from", where), f"{where}.from")
    end = _parse(parse_clock, _req(table, "to", where), f"{where}.to")
    try:
        return Window(start, end)
    except ValueError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _parse(parser: Any, value: Any, where: str) -> Any:
    try:
        return parser(value)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _known(table: Mapping[str, Any], keys: set[str], where: str) -> None:
    unknown = set(table) - keys
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}; use {sorted(keys)}")


def _req(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ScenarioError(f"{where}: '{key}' is required")
    return table[key]


def _get(table: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    return table.get(key, default)


def _table(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = True
) -> Mapping[str, Any]:
    if key not in data:
        if required:
            raise ScenarioError(f"{where}: [{key}] is required")
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}.{key} must be a table")
    return value


def _array(
    data: Mapping[str, Any], key: str, where: str, *, required: bool = True
) -> list[Mapping[str, Any]]:
    if key not in data:
        if required:
            raise ScenarioError(f"{where}: [[{key}]] is required")
        return []
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScenarioError(f"{where}.{key} must be an array of tables ([[{key}]])")
    return value
