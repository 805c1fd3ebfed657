"""The SQLite store of a sweep: one row per finished point, keyed by its parameters and version.

A row is written in one transaction when its point finishes, so a crash, a killed worker or
Ctrl-C never leaves half a row, and every finished point survives. The key is a hash of the
point's parameters and the package version: rerunning a sweep skips what is already there, and a
new version of the package recomputes rather than mixing numbers from two codes. A database from
another package version or with another schema is refused with a message saying so.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from importlib.metadata import version
from pathlib import Path

SCHEMA = 1
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY, version TEXT NOT NULL, params TEXT NOT NULL, result TEXT NOT NULL,
    seconds REAL NOT NULL);
"""


class StoreError(ValueError):
    """A database that is not a sweep store of this package version and schema."""


def package_version() -> str:
    """The installed bptt version: part of every key."""
    return version("bptt")


def point_key(params: dict, package: str | None = None) -> str:
    """The row key of a point: SHA-256 of its parameters (sorted JSON) and the version."""
    text = json.dumps({"params": params, "version": package or package_version()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """An open sweep database. `Store(path)` creates it or checks an existing one."""

    def __init__(self, path):
        self.path = Path(path)
        self.version = package_version()
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self._check()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not a sweep database ({error})") from None

    def _check(self) -> None:
        tables = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and not {"meta", "points"} <= tables:
            raise StoreError(f"{self.path} is an SQLite database but not a sweep store "
                             f"(tables {sorted(tables)})")
        with self.db:
            self.db.executescript(_TABLES)
        meta = dict(self.db.execute("SELECT name, value FROM meta"))
        if not meta:
            with self.db:
                self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                    [("schema", str(SCHEMA)), ("version", self.version)])
            return
        if meta.get("schema") != str(SCHEMA):
            raise StoreError(f"{self.path} has schema {meta.get('schema')!r}, this bptt writes "
                             f"schema {SCHEMA}: use another database file")
        if meta.get("version") != self.version:
            raise StoreError(f"{self.path} was written by bptt {meta.get('version')}, this is "
                             f"bptt {self.version}: its points would not be comparable; use "
                             f"another database file")

    def done(self) -> set[str]:
        """Keys of the finished points."""
        return {r[0] for r in self.db.execute("SELECT key FROM points")}

    def add(self, params: dict, result: dict, seconds: float) -> None:
        """Write one finished point, atomically (one transaction)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?)",
                            (point_key(params, self.version), self.version,
                             json.dumps(params, sort_keys=True),
                             json.dumps(result, sort_keys=True), float(seconds)))

    def rows(self) -> list[dict]:
        """Every finished point as {**params, **result, "seconds": s}, in key order."""
        return [{**json.loads(p), **json.loads(r), "seconds": s} for p, r, s in self.db.execute(
            "SELECT params, result, seconds FROM points ORDER BY key")]

    def close(self) -> None:
        self.db.close()


def open_existing(path) -> Store:
    """A store that must exist already (for reports): StoreError if there is no such file."""
    if not Path(path).is_file():
        raise StoreError(f"{path} does not exist; expected a database written by "
                         f"bptt-bench sweep")
    return Store(path)
