"""The pgstac database behind the test STAC API: schema migration, queryables, loading.

This module owns what happens inside the ``pgstac`` database once PostgreSQL runs
(:mod:`support.postgres`): installing the pgstac schema with ``pypgstac`` migrations,
registering numeric queryables (so that ``sortby`` and filters on ``eo:cloud_cover`` compare
numbers, not strings) and upserting collections and items with ``pypgstac``'s loader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_QUERYABLES", "load", "migrate"]

#: Numeric queryables registered in every server (name -> JSON-schema definition).
DEFAULT_QUERYABLES: dict[str, dict[str, Any]] = {
    "eo:cloud_cover": {
        "title": "Cloud Cover",
        "description": "Estimate of cloud cover, in %",
        "type": "number",
        "minimum": 0,
        "maximum": 100,
    },
    "s2:nodata_pixel_percentage": {
        "title": "No-data pixel percentage",
        "description": "Share of no-data pixels in the tile, in %",
        "type": "number",
        "minimum": 0,
        "maximum": 100,
    },
}


def _pgstac_db(dsn: str) -> tuple[Any, Any]:
    """A ``(PgstacDB, pool)`` pair on ``dsn``; close the pool when done."""
    from psycopg_pool import ConnectionPool
    from pypgstac.db import PgstacDB

    pool = ConnectionPool(conninfo=dsn, min_size=0, max_size=1, open=True)
    return PgstacDB(dsn=dsn, pool=pool), pool


def migrate(dsn: str, queryables: Mapping[str, Mapping[str, Any]]) -> None:
    """Install the pgstac schema into the database at ``dsn`` and register ``queryables``."""
    from pypgstac.migrate import Migrate

    db, pool = _pgstac_db(dsn)
    try:
        with db:
            Migrate(db).run_migration()
        with db:
            _register_queryables(db, queryables)
    finally:
        pool.close()


def _register_queryables(db: Any, queryables: Mapping[str, Mapping[str, Any]]) -> None:
    """Register queryables (numeric ones with a float/int wrapper and a BTREE index)."""
    conn = db.connect()
    has_upsert = conn.execute(
        "SELECT to_regprocedure('pgstac.upsert_queryable(text,jsonb,text,text,text[],text[])')"
    ).fetchone()[0]
    for name, definition in queryables.items():
        types = definition.get("type")
        types = set(types) if isinstance(types, list) else {types}
        wrapper = "to_int" if "integer" in types else "to_float" if "number" in types else None
        index = "BTREE" if wrapper else None
        payload = json.dumps(definition)
        if has_upsert:
            conn.execute(
                "SELECT pgstac.upsert_queryable(%s, %s::jsonb, %s, %s)",
                (name, payload, wrapper, index),
            )
        else:  # older pgstac (< 0.10): plain table
            with conn.transaction():
                conn.execute("DELETE FROM pgstac.queryables WHERE name = %s", (name,))
                conn.execute(
                    "INSERT INTO pgstac.queryables"
                    " (name, definition, property_wrapper, property_index_type)"
                    " VALUES (%s, %s::jsonb, %s, %s)",
                    (name, payload, wrapper, index),
                )


def load(dsn: str, collections: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    """Upsert ``collections``, then ``items`` (STAC dicts) into the pgstac database at ``dsn``."""
    from pypgstac.load import Loader, Methods

    db, pool = _pgstac_db(dsn)
    try:
        with db:
            loader = Loader(db=db)
            if collections:
                loader.load_collections(iter(collections), insert_mode=Methods.upsert)
            if items:
                loader.load_items(iter(items), insert_mode=Methods.upsert)
    finally:
        pool.close()
