"""``qorgau edge``: the agent beside an instrument."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from edge.settings import EdgeSettings
    from qorgau.runtime import settings_help

    parser = subparsers.add_parser(
        "edge",
        help="run the edge agent for one device (store-and-forward to the broker)",
        description="Read an instrument driver, batch its samples, keep them in an on-disk "
        "outbox and publish them with QoS 1 until the broker acknowledges each message. "
        "SIGTERM or Ctrl-C: collect the last samples, publish the backlog for up to "
        "QORGAU_EDGE_FLUSH_TIMEOUT_S, announce offline, exit; what is left stays in the outbox.",
        epilog=settings_help(EdgeSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", required=True, help="device code (also the MQTT topic segment)")
    parser.add_argument(
        "--driver",
        default="sim",
        help="'sim' (a simulated instrument set) or package.module:factory for a real "
        "instrument, called as factory(device, options) [sim]",
    )
    parser.add_argument(
        "--driver-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option passed to the driver factory (repeatable), e.g. port=/dev/ttyUSB0",
    )
    parser.add_argument("--scenario", help="with --driver sim: take the device from a scenario")
    parser.add_argument("--seed", type=int, default=None, help="simulator seed")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import signal
    import sys
    import threading
    from datetime import UTC, datetime

    from edge.agent import EdgeAgent
    from edge.drivers import load_driver_factory, parse_options
    from edge.settings import EdgeSettings
    from qorgau.runtime import load_settings, setup_logging
    from vocabulary.driver import Driver
    from vocabulary.errors import QorgauError

    setup_logging()
    try:
        settings = load_settings(EdgeSettings)
        driver: Driver
        if args.driver == "sim":
            from firmware_sim.device import standard_device
            from firmware_sim.scenario import load_scenario

            now = datetime.now(UTC)
            # Like an instrument with a data logger: a restart catches up on the last day.
            memory_s = 86_400.0
            if args.scenario:
                scenario = load_scenario(args.scenario)
                settings = settings.model_copy(update={"enterprise": scenario.enterprise})
                driver = scenario.build(args.device, start=now, seed=args.seed, memory_s=memory_s)
            else:
                driver = standard_device(args.device, now, seed=args.seed or 0, memory_s=memory_s)
        else:
            factory = load_driver_factory(args.driver)
            driver = factory(args.device, parse_options(args.driver_option))
        agent = EdgeAgent(settings, driver)
    except QorgauError as exc:
        print(f"qorgau edge: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop)
    return 0
