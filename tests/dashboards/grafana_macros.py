"""What Grafana does to a PostgreSQL panel query before the database sees it, for running the
dashboards' SQL here (Grafana itself cannot run on this machine).

Two steps, in Grafana's order: the frontend interpolates template variables (``$name``,
``${name}``, ``${name:format}``, ``[[name]]`` and the built-ins ``$__interval``,
``$__interval_ms``, ``$__from``, ``$__to``), then the PostgreSQL data source expands its macros.
Semantics follow Grafana's documentation of the PostgreSQL data source ("Macros") and of
variable syntax and formats (raw, sqlstring, csv, singlequote, doublequote), with TimescaleDB
off: ``$__timeGroup(col, '5m')`` is ``floor(extract(epoch from col)/300)*300``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MACRO = re.compile(r"\$(__\w+)\(([^)]*)\)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")


def interval_s(text: str) -> float:
    found = re.fullmatch(r"\s*['\"]?(\d+(?:\.\d+)?)(ms|s|m|h|d|w)['\"]?\s*", text)
    if found is None:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return float(found[1]) * _UNITS_S[found[2]]


def _interval_text(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        if seconds % _UNITS_S[unit] == 0:
            return f"{int(seconds // _UNITS_S[unit])}{unit}"
    return f"{int(seconds * 1000)}ms"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    start: datetime
    end: datetime
    interval_s: float = 60.0  # what Grafana picks: range / max data points, at least the
    # panel's minimum interval
    variables: dict[str, str] = field(default_factory=dict)  # single-valued

    def format(self, name: str, fmt: str | None) -> str:
        if name == "__interval":
            return _interval_text(self.interval_s)
        if name == "__interval_ms":
            return str(int(self.interval_s * 1000))
        if name == "__from":
            return str(int(self.start.timestamp() * 1000))
        if name == "__to":
            return str(int(self.end.timestamp() * 1000))
        if name not in self.variables:
            raise KeyError(f"the dashboard uses ${name}, which is not defined")
        value = self.variables[name]
        if fmt in (None, "raw", "csv"):
            return value
        if fmt == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        if fmt == "singlequote":
            return "'" + value.replace("'", "\\'") + "'"
        if fmt == "doublequote":
            return '"' + value.replace('"', '\\"') + '"'
        raise ValueError(f"variable format {fmt!r} is not implemented here")


def interpolate(sql: str, ctx: Context) -> str:
    def variable(m: re.Match[str]) -> str:
        if (
            m[4] is not None
            and m[4].startswith("__")
            and m.end() < len(sql)
            and sql[m.end()] == "("
        ):
            return m[0]  # a macro, expanded by the data source afterwards
        name = m[1] or m[3] or m[4]
        return ctx.format(name, m[2])

    return _VARIABLE.sub(variable, sql)


def expand_macros(sql: str, ctx: Context) -> str:
    def macro(m: re.Match[str]) -> str:
        name = m[1]
        args = [a.strip() for a in m[2].split(",")] if m[2].strip() else []
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) AS "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{_rfc3339(ctx.start)}' AND '{_rfc3339(ctx.end)}'"
        if name == "__timeFrom":
            return f"'{_rfc3339(ctx.start)}'"
        if name == "__timeTo":
            return f"'{_rfc3339(ctx.end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"${name} needs a column and an interval")
            step = interval_s(args[1])
            grouped = f"floor(extract(epoch from {args[0]})/{step:g})*{step:g}"
            return grouped + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return (
                f"{args[0]} >= {int(ctx.start.timestamp())} AND "
                f"{args[0]} <= {int(ctx.end.timestamp())}"
            )
        raise ValueError(f"macro ${name} is not implemented here")

    return _MACRO.sub(macro, sql)


def expand(sql: str, ctx: Context) -> str:
    return expand_macros(interpolate(sql, ctx), ctx)
