"""Typed leaves out of a merged profile, each recorded with the text of the source it cites.

Every number of a profile is a leaf ``{ value = ..., source = "<key>" }`` whose key is defined
in ``[sources]``; reading through :class:`LeafReader` is what fills :attr:`Norms.sources`, so a
value cannot be used without its source being known.
"""

from __future__ import annotations

from typing import Any

from analytics.classes import WorkingClass
from analytics.errors import NormsError
from analytics.norms.files import is_leaf


class LeafReader:
    """Pulls typed leaves out of the merged dict and records their sources."""

    def __init__(self, data: dict[str, Any], label: str) -> None:
        self.data = data
        self.label = label
        src = data.get("sources", {})
        if not isinstance(src, dict):
            raise NormsError(f"{label}: [sources] must be a table")
        self.source_text: dict[str, str] = {str(k): str(v) for k, v in src.items()}
        self.sources: dict[str, str] = {}

    def node(self, path: str) -> Any:
        cur: Any = self.data
        for part in path.split("."):
            if not isinstance(cur, dict) or part not in cur:
                raise NormsError(f"norms profile {self.label!r} lacks '{path}'")
            cur = cur[part]
        return cur

    def leaf(self, path: str) -> Any:
        node = self.node(path)
        if not is_leaf(node):
            raise NormsError(
                f"norms profile {self.label!r}: '{path}' must be "
                '{ value = ..., source = "..." }'
            )
        key = str(node["source"])
        if key not in self.source_text:
            raise NormsError(
                f"norms profile {self.label!r}: '{path}' cites source {key!r}, "
                "which is not defined in [sources]"
            )
        self.sources[path] = self.source_text[key]
        return node["value"]

    def opt_leaf(self, path: str) -> Any:
        try:
            self.node(path)
        except NormsError:
            return None
        return self.leaf(path)

    def number(self, path: str) -> float:
        v = self.leaf(path)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise NormsError(f"norms profile {self.label!r}: '{path}' must be a number")
        return float(v)


def classes_of(values: Any, path: str) -> tuple[WorkingClass, ...]:
    try:
        return tuple(WorkingClass.parse(v) for v in values)
    except ValueError as exc:
        raise NormsError(f"{path}: {exc}") from None


def class_map(values: Any, path: str, kind: type[float] | type[int]) -> dict[WorkingClass, Any]:
    if not isinstance(values, dict):
        raise NormsError(f"{path} must map classes to numbers")
    out = {WorkingClass.parse(k): kind(v) for k, v in values.items()}
    missing = [c.value for c in WorkingClass if c not in out]
    if missing:
        raise NormsError(f"{path} lacks classes {', '.join(missing)}")
    return out


__all__ = ["LeafReader", "class_map", "classes_of"]
