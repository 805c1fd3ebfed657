"""The sweep store: atomic rows keyed by parameters and version; foreign databases refused."""
import sqlite3

import pytest

from bptt.studies.store import SCHEMA, Store, StoreError, open_existing, point_key

PARAMS = {"strategy": "full", "cell": "rnn", "seq_len": 10}


def test_rows_are_keyed_by_parameters_and_version(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add(PARAMS, {"final_loss": 0.5}, 1.25)
    store.add(PARAMS, {"final_loss": 0.5}, 1.5)  # the same point again replaces, never doubles
    assert store.done() == {point_key(PARAMS)}
    assert store.rows() == [{**PARAMS, "final_loss": 0.5, "seconds": 1.5}]
    store.close()
    again = Store(tmp_path / "s.db")
    assert again.done() == {point_key(PARAMS)}
    assert point_key(PARAMS, "0.0.1") != point_key(PARAMS)
    assert point_key(dict(reversed(list(PARAMS.items())))) == point_key(PARAMS)


def test_a_database_of_another_version_or_schema_is_refused(tmp_path):
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '0.0.1' WHERE name = 'version'")
    with pytest.raises(StoreError, match="written by bptt 0.0.1.*use another database"):
        Store(path)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE meta SET value = '{SCHEMA + 1}' WHERE name = 'schema'")
    with pytest.raises(StoreError, match=f"has schema '{SCHEMA + 1}'"):
        Store(path)


def test_files_that_are_not_sweep_stores_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="is not a sweep database"):
        Store(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(StoreError, match="not a sweep store"):
        Store(other)
    with pytest.raises(StoreError, match="does not exist"):
        open_existing(tmp_path / "none.db")
