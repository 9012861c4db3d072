"""Profile files: finding one by built-in name or path, parsing it, and merging its ``extends``
chain, so that every section reader sees one merged dict whatever the chain was.

A profile may start with ``extends = "<name or path>"``: it is merged over its parent (tables
merge key by key, a leaf replaces the parent's leaf, ``[sources]`` merge). A relative parent
path is taken from the directory of the file that names it.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from analytics.errors import NormsError

_PACKAGE = "analytics.norms"


def is_leaf(node: object) -> bool:
    """A number with its source, ``{ value = ..., source = "<key>" }``: replaced whole when a
    child profile overrides it, never merged key by key."""
    return isinstance(node, dict) and "value" in node and "source" in node


def builtin_profiles() -> tuple[str, ...]:
    """Names of the norms profiles that ship with Qorgau (``analytics/norms/<name>.toml``), the
    ones an enterprise may be set to through the API."""
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in resources.files(_PACKAGE).iterdir()
            if entry.name.endswith(".toml")
        )
    )


def read_profile(name_or_path: str | Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The profile merged over its ``extends`` chain, and the chain (root first; the last
    label names the profile in error messages)."""
    return _read(name_or_path, ())


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, dict) and not is_leaf(v):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _text_of(name_or_path: str | Path) -> tuple[str, str]:
    """The TOML text of a profile file or built-in profile, and its label (the resolved path,
    or the built-in name)."""
    path = Path(name_or_path)
    as_str = str(name_or_path)
    if path.suffix == ".toml" or "/" in as_str or path.exists():
        if not path.is_file():
            raise NormsError(f"norms profile file {as_str!r} does not exist")
        return path.read_text(encoding="utf-8"), str(path.resolve())
    if not as_str.replace("_", "").replace("-", "").isalnum():
        raise NormsError(f"bad norms profile name {as_str!r}")
    res = resources.files(_PACKAGE).joinpath(f"{as_str}.toml")
    if not res.is_file():
        raise NormsError(
            f"no built-in norms profile {as_str!r}; use 'default' or a path to a .toml file"
        )
    return res.read_text(encoding="utf-8"), as_str


def _read(
    name_or_path: str | Path, seen: tuple[str, ...]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    text, label = _text_of(name_or_path)
    if label in seen:
        raise NormsError(f"norms profile {label!r} extends itself (cycle: {' → '.join(seen)})")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NormsError(f"norms profile {label!r} is not valid TOML: {exc}") from None
    parent = data.pop("extends", None)
    chain = (*seen, label)
    if parent is None:
        return data, chain
    if not isinstance(parent, str):
        raise NormsError(f"{label}: 'extends' must be a profile name or path")
    path = Path(name_or_path)
    if not Path(parent).is_absolute() and (parent.endswith(".toml") or "/" in parent):
        parent = str((path.parent / parent) if path.is_file() else Path(parent))
    base, chain = _read(parent, chain)
    return _merge(base, data), chain


__all__ = ["builtin_profiles", "is_leaf", "read_profile"]
