"""``qorgau sim``: simulated instruments published through edge agents (or written to CSV)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    import threading
    from collections.abc import Callable
    from datetime import datetime, timezone

    from edge.agent import EdgeAgent
    from edge.settings import EdgeSettings
    from firmware_sim.device import SimulatedDevice
    from firmware_sim.scenario import Scenario


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge.settings import EdgeSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "sim",
        help="simulate instruments and publish their readings (or export them as CSV)",
        description="Run simulated devices through edge agents, one outbox and broker "
        "connection per device: live in real time, faster (--speed 60: an 8 h shift in 8 min), "
        "or as an instant backfill. With --scenario the devices, workplaces, shifts, events and "
        "faults come from a scenario (built-in: mine, foundry, construction, or a TOML file); "
        "without it, one demo device. Readings depend only on the seed and the time, so a run "
        "can be repeated exactly, and a restarted run continues where the last one stopped.",
        epilog=settings_help(EdgeSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", help="mine, foundry, construction, or a scenario file")
    parser.add_argument(
        "--device",
        action="append",
        default=None,
        help="device code (repeatable); default: every device of the scenario, or demo-dev-1",
    )
    parser.add_argument("--workplace", help="only the devices of this workplace")
    parser.add_argument("--seed", type=int, default=None, help="seed [the scenario's, or 0]")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second [1]; above 1 the run starts at the last complete "
        "shift and never runs ahead of the real clock",
    )
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="generate the whole period at once, then publish it (as fast as the broker takes it)",
    )
    parser.add_argument(
        "--backfill-seconds",
        type=float,
        default=None,
        help="shorthand for --backfill --duration S ending now",
    )
    parser.add_argument(
        "--start",
        help="ISO 8601 time with zone, or a date (local midnight of the scenario) "
        "[now when live at speed 1, else the start of the last complete shift]",
    )
    parser.add_argument(
        "--duration",
        help="how much to simulate: 90s, 20m, 8h, 2d [one shift; unlimited when live at speed 1]",
    )
    parser.add_argument(
        "--export-csv",
        metavar="FILE",
        help="write the readings to FILE (time,sensor,quantity,unit,substance,value) instead of "
        "publishing; '{workplace}' in FILE writes one file per workplace",
    )
    parser.add_argument("--faults", metavar="FILE", help="add the [[faults]] tables of FILE")
    parser.add_argument("--no-faults", action="store_true", help="ignore the scenario's faults")
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="simulated seconds per message in a backfill [60]",
    )
    parser.set_defaults(handler=_run)


def _parse_start(text: str, tz: timezone) -> datetime:
    from datetime import UTC, date, datetime

    if text == "now":
        return datetime.now(UTC)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        start = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"qorgau sim: --start {text!r} is not an ISO 8601 time or date") from None
    if start.tzinfo is None:
        raise SystemExit(f"qorgau sim: --start {text!r} needs a zone (e.g. +05:00 or Z)")
    return start.astimezone(UTC)


@dataclass(frozen=True)
class _Plan:
    """What a run simulates: the devices, from when, until when, and how."""

    scenario: Scenario | None
    tz: timezone
    seed: int
    start: datetime
    end: datetime | None  # None: live until stopped
    memory_s: float
    codes: list[str]
    drivers: list[SimulatedDevice]


def _run(args: argparse.Namespace) -> int:
    import logging
    import sys
    from datetime import UTC, datetime

    from edge.settings import EdgeSettings
    from firmware_sim.scenario import ScenarioError
    from qorgau.runtime import load_settings, setup_logging
    from vocabulary.errors import QorgauError

    setup_logging()
    log = logging.getLogger("qorgau.sim")
    now = datetime.now(UTC).replace(microsecond=0)
    backfill = args.backfill or args.backfill_seconds is not None
    if args.speed <= 0:
        raise SystemExit("qorgau sim: --speed must be positive")
    try:
        plan = _plan(args, now, backfill=backfill)
    except (ScenarioError, ValueError) as exc:
        print(f"qorgau sim: {exc}", file=sys.stderr)
        return 2

    if args.export_csv:
        assert plan.end is not None
        return _export(args.export_csv, plan.drivers, plan.scenario, plan.end, plan.tz)

    try:
        agents = _agents(args, load_settings(EdgeSettings), plan)
    except QorgauError as exc:
        print(f"qorgau sim: {exc}", file=sys.stderr)
        return 2

    stop = _stop_on_signals()
    if backfill:
        return _publish_backfill(args, plan, agents, stop)
    _run_live(args, plan, agents, stop, log)
    return 0


def _plan(args: argparse.Namespace, now: datetime, *, backfill: bool) -> _Plan:
    """The run the arguments ask for; ``ScenarioError`` or ``ValueError`` when they cannot be
    met, ``SystemExit`` when they contradict each other."""
    from datetime import UTC

    from firmware_sim.device import standard_device

    scenario = _scenario(args)
    tz = scenario.tz if scenario else UTC
    seed = args.seed if args.seed is not None else (scenario.seed if scenario else 0)
    live_realtime = not backfill and not args.export_csv and args.speed == 1.0
    start, end = _period(args, scenario, tz, now, live_realtime=live_realtime)
    codes = _device_codes(args, scenario)
    # A live device may catch up on what it missed while stopped (up to a day back), as
    # an instrument with a data logger does; a run with an explicit period never does.
    memory_s = 86_400.0 if live_realtime and not args.start else 0.0
    drivers: list[SimulatedDevice] = [
        scenario.build(code, start=start, seed=seed, memory_s=memory_s, faults=not args.no_faults)
        if scenario
        else standard_device(code, start, seed=seed, memory_s=memory_s)
        for code in codes
    ]
    return _Plan(scenario, tz, seed, start, end, memory_s, codes, drivers)


def _scenario(args: argparse.Namespace) -> Scenario | None:
    from pathlib import Path

    from firmware_sim.scenario import load_faults, load_scenario

    if not args.scenario:
        if args.faults or args.workplace:
            raise SystemExit("qorgau sim: --faults and --workplace need --scenario")
        return None
    scenario = load_scenario(args.scenario)
    if args.faults:
        scenario = scenario.with_faults(load_faults(Path(args.faults)))
    return scenario


def _period(
    args: argparse.Namespace,
    scenario: Scenario | None,
    tz: timezone,
    now: datetime,
    *,
    live_realtime: bool,
) -> tuple[datetime, datetime | None]:
    """Start and end of the simulated period (end None: live until stopped)."""
    from datetime import timedelta

    from firmware_sim.schedule import parse_duration

    duration_s: float | None = None
    if args.backfill_seconds is not None:
        duration_s = args.backfill_seconds
    elif args.duration:
        duration_s = parse_duration(args.duration)
    start = _default_start(args, scenario, tz, now, duration_s, live_realtime=live_realtime)
    if duration_s is None and not live_realtime:
        duration_s = scenario.shifts.length_s if scenario else 8 * 3600.0
    end = start + timedelta(seconds=duration_s) if duration_s is not None else None
    return start, end


def _default_start(
    args: argparse.Namespace,
    scenario: Scenario | None,
    tz: timezone,
    now: datetime,
    duration_s: float | None,
    *,
    live_realtime: bool,
) -> datetime:
    """--start, else now when live in real time, else the last complete shift (or the period
    ending now)."""
    from datetime import timedelta

    if args.start:
        return _parse_start(args.start, tz)
    if args.backfill_seconds is not None:
        return now - timedelta(seconds=args.backfill_seconds)
    if live_realtime:
        return now
    if duration_s is not None and scenario is None:
        return now - timedelta(seconds=duration_s)
    if scenario is not None:
        start, _ = scenario.shifts.last_complete(now)
        return start
    return now - timedelta(hours=8)


def _agents(args: argparse.Namespace, settings: EdgeSettings, plan: _Plan) -> list[EdgeAgent]:
    """One edge agent (outbox and broker connection) per simulated device."""
    from edge.agent import EdgeAgent

    scenario = plan.scenario
    if scenario is not None:
        settings = settings.model_copy(update={"enterprise": scenario.enterprise})
    return [
        EdgeAgent(
            settings,
            driver,
            payload_filter=(
                scenario.message_faults(driver.code, plan.seed)
                if scenario and not args.no_faults
                else None
            ),
        )
        for driver in plan.drivers
    ]


def _stop_on_signals() -> threading.Event:
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _publish_backfill(
    args: argparse.Namespace, plan: _Plan, agents: list[EdgeAgent], stop: threading.Event
) -> int:
    """Generate the whole period into the outboxes, then publish it; a signal ends it early
    (what is left stays in the outboxes for the next run)."""
    from datetime import timedelta

    end = plan.end
    assert end is not None
    step = timedelta(seconds=args.batch_seconds or 60.0)
    for agent, driver in zip(agents, plan.drivers, strict=True):
        t = driver.position
        while t < end and not stop.is_set():
            t = min(t + step, end)
            agent.collect(t)
    for agent in agents:
        agent.start()
    # Publish everything, every connection kept alive.
    while not stop.is_set() and any(not a.outbox.is_empty() for a in agents):
        for agent in agents:
            agent.step(0.005)
    for agent in agents:
        agent.stop(flush_timeout_s=0 if stop.is_set() else None)
    if stop.is_set():
        print("stopped early: what was not published stays in the outboxes for the next run")
    else:
        print(
            f"published {plan.start.isoformat()} .. {end.isoformat()} of "
            f"{len(agents)} device(s): {', '.join(plan.codes)}"
        )
    return 0


def _run_live(
    args: argparse.Namespace,
    plan: _Plan,
    agents: list[EdgeAgent],
    stop: threading.Event,
    log: logging.Logger,
) -> None:
    """Each agent in its own thread on one (scaled) clock, until ``plan.end`` or a signal."""
    import threading

    from edge.clock import ScaledClock

    start, end = plan.start, plan.end
    # Resume where the previous run of these outboxes stopped.
    origin = max([start, *(a.outbox.cursor() or start for a in agents)])
    if plan.memory_s and origin > start:
        origin = start  # the devices catch up on their own
    clock = _capped(ScaledClock(origin, args.speed))
    for agent in agents:
        agent.clock = clock
    log.info(
        "simulating %d device(s) from %s at %gx%s",
        len(agents),
        origin.isoformat(),
        args.speed,
        f" until {end.isoformat()}" if end else "",
    )
    threads = [
        threading.Thread(target=agent.run, args=(stop,), kwargs={"until": end}, name=agent.device)
        for agent in agents
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)


def _capped(clock: Callable[[], datetime]) -> Callable[[], datetime]:
    """Simulated time, but never ahead of the real clock (ingest refuses future readings)."""
    from datetime import UTC, datetime

    def now() -> datetime:
        return min(clock(), datetime.now(UTC))

    return now


def _device_codes(args: argparse.Namespace, scenario: Scenario | None) -> list[str]:
    if scenario is None:
        return list(args.device or ["demo-dev-1"])
    codes = list(args.device or [d.code for d in scenario.devices])
    for code in codes:
        scenario.device(code)  # raises with the list of devices
    if args.workplace:
        if args.workplace not in scenario.workplaces:
            raise ValueError(
                f"scenario {scenario.name} has no workplace {args.workplace!r}; it has "
                f"{', '.join(scenario.workplaces)}"
            )
        codes = [c for c in codes if scenario.device(c).workplace == args.workplace]
    return codes


def _export(
    target: str,
    drivers: list[SimulatedDevice],
    scenario: Scenario | None,
    end: datetime,
    tz: timezone,
) -> int:
    import sys
    from pathlib import Path

    from firmware_sim.export import write_csv

    groups: dict[str, list[SimulatedDevice]] = {}
    if "{workplace}" in target:
        if scenario is None:
            print("qorgau sim: '{workplace}' in --export-csv needs --scenario", file=sys.stderr)
            return 2
        for driver in drivers:
            groups.setdefault(scenario.device(driver.code).workplace, []).append(driver)
    else:
        groups[""] = list(drivers)
    for workplace, members in groups.items():
        path = Path(target.replace("{workplace}", workplace))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as out:
            rows = write_csv(members, end, out, tz)
        print(f"wrote {rows} readings to {path}")
    return 0
