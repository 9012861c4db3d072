"""Finding a driver by name: ``package.module:factory`` plugs in an instrument the agent does
not know, without changing the agent (see ``docs/edge.md`` for a serial example).

The factory is called as ``factory(device, options)`` with the device code and the
``--driver-option key=value`` pairs, and returns an object that implements ``Driver``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import cast

from vocabulary.driver import Driver
from vocabulary.errors import ConfigurationError

DriverFactory = Callable[[str, Mapping[str, str]], Driver]


def load_driver_factory(spec: str) -> DriverFactory:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"driver {spec!r}: use package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"driver {spec!r}: cannot import {module_name}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigurationError(f"driver {spec!r}: {module_name} has no callable {attr!r}")
    return cast(DriverFactory, factory)


def parse_options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"driver option {pair!r}: use key=value")
        options[key.strip()] = value
    return options
