"""Test infrastructure that does not ship in the wheel.

``tests/`` is on ``sys.path`` during a test run (pytest inserts the directory of the top-level
``conftest.py``), so test modules import this package as ``support``:

* :mod:`support.stac_api`: a throwaway pgstac STAC API server (``serve_catalog``);
* :mod:`support.postgres`: the private PostgreSQL/PostGIS cluster behind it;
* :mod:`support.static_catalog`: static catalogs → dicts ready to load.
"""
