"""All SQL lives in ``store/``: no Python file elsewhere holds an SQL statement.

One home per SQL statement means a schema change is reviewed in one package, and the services
and surfaces call named functions (``store.ingest_commit.batch_transaction``) instead of
writing queries of their own. ``tests/`` and ``bench/`` may query the database to check and
measure what the code did. The scan reads string literals (implicitly concatenated ones as one,
f-strings with their placeholders) and flags those that begin like a statement.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where SQL may be written: the store, and the code that checks or measures it.
ALLOWED_TOP = {"store", "tests", "bench"}
# Keywords in capitals, as the house writes SQL: in lower case they are English words that
# messages and docstrings begin with ("select a workplace", "update the schedule").
STATEMENT = re.compile(
    r"^\s*\(?\s*(?:"
    r"SELECT\s+\S"
    r"|INSERT\s+(?:OR\s+\w+\s+)?INTO\s"
    r"|UPDATE\s+\S+\s+SET\s"
    r"|DELETE\s+FROM\s"
    r"|WITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\("
    r")"
)


def python_files_outside_store() -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder)
        if here == ROOT:
            dirs[:] = [d for d in dirs if d not in ALLOWED_TOP]
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        found += [here / f for f in files if f.endswith(".py")]
    return sorted(found)


def _text(node: ast.AST) -> str | None:
    """The literal text of a string constant or f-string (placeholders as ``x``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "x"
            for part in node.values
        )
    return None


def sql_statements(source: str) -> list[tuple[int, str]]:
    """(line, first line of the literal) of every string literal that is an SQL statement."""
    tree = ast.parse(source)
    inner: set[int] = set()  # the constant parts of f-strings, judged with their f-string
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner |= {id(part) for part in node.values}
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        text = _text(node)
        if text is not None and STATEMENT.match(text):
            hits.append((getattr(node, "lineno", 0), text.strip().splitlines()[0]))
    return sorted(hits)


def test_the_scan_recognises_statements_and_leaves_prose_and_method_names() -> None:
    source = '''
a = "SELECT 1"
b = ("INSERT INTO meta (key, value) "
     "VALUES (?, ?)")
c = f"SELECT id FROM {table} WHERE {clause}"
d = """
    UPDATE workplaces SET shift_starts = %s WHERE id = %s
"""
e = "DELETE FROM messages WHERE seq = ?"
f = "WITH fresh AS (SELECT 1) SELECT * FROM fresh"
g = frozenset({"POST", "PUT", "PATCH", "DELETE"})
h = "select the workplace first; then update its schedule"
i = "the readings are deleted from the outbox after the PUBACK"
'''
    assert [line for line, _ in sql_statements(source)] == [2, 3, 5, 6, 9, 10]


def test_no_sql_statement_outside_store() -> None:
    files = python_files_outside_store()
    # The walk must reach the packages it guards, or the rule would pass on nothing.
    assert {p.relative_to(ROOT).parts[0] for p in files} >= {"api", "edge", "ingest", "qorgau"}
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {first}"
        for path in files
        for line, first in sql_statements(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "SQL belongs in store/ (one home per statement): move these statements into a store "
        "function and call it:\n" + "\n".join(offenders)
    )
