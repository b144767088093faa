"""The ASGI app: WMTS 1.0.0 (KVP and REST), XYZ tiles, a point query and the web map page.

Routes::

    GET /                                   web map (Leaflet, served from /static)
    GET /wmts?SERVICE=WMTS&REQUEST=GetCapabilities|GetTile|GetFeatureInfo&...   (KVP)
    GET /wmts/1.0.0/WMTSCapabilities.xml    (REST capabilities)
    GET /wmts/1.0.0/{layer}/{style}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.{png|jpeg|webp}
    GET /tiles/{layer}/{z}/{x}/{y}.{png|jpeg|webp}?tms=WebMercatorQuad|WorldCRS84Quad   (XYZ)
    GET /api/point?lon=..&lat=..            values and provenance of one pixel (JSON)
    GET /api/info                           layers, bounds, zooms, date range (JSON)
    GET /healthz

Every route answers HEAD as well as GET.  Tiles and capabilities carry an ``ETag`` derived
from the content version of the store (its manifest and overview records), so a client that
sends ``If-None-Match`` gets ``304 Not Modified`` without a read; the manifest is re-read while
the server runs (``reload_interval``), and a tile touching a cell that is not finished gets
``pending_max_age`` instead of ``max_age``.  Capabilities are built once per content version
and base URL; the base URL is ``public_url`` when set, else an allowed ``Host`` header, else
the server's own address (never an arbitrary ``Host`` header).

Bad requests get 400 (404 for unknown paths) with a message naming the bad value and the
allowed ones: an OGC ExceptionReport under /wmts, JSON elsewhere.  A failed request never
affects the next one: the app holds no per-request state.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..errors import InputError, require

require("fastapi", "serve")
require("morecantile", "serve")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from .layers import TMS_IDS, TileRequestError  # noqa: E402
from .render import FORMATS, encode  # noqa: E402
from .settings import ServeSettings  # noqa: E402
from .tiles import TileSource  # noqa: E402

GET_HEAD = ["GET", "HEAD"]

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"
_MIME_TO_EXT = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/webp": "webp"}


def _int(value: str | None, name: str) -> int:
    if value is None or value == "":
        raise TileRequestError(
            f"parameter {name} is missing", code="MissingParameterValue", locator=name
        )
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise TileRequestError(
            f"parameter {name}={value[:32]!r} is not an integer", locator=name
        ) from None
    return out


def _float(value: str | None, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TileRequestError(
            f"parameter {name}={str(value)[:32]!r} is not a number", locator=name
        ) from None
    if out != out or out in (float("inf"), float("-inf")):
        raise TileRequestError(f"parameter {name}={value!r} is not finite", locator=name)
    return out


def _ext(fmt: str) -> str:
    ext = fmt.lower()
    if ext not in FORMATS:
        raise TileRequestError(
            f"unknown image format {fmt[:32]!r}; use one of png, jpeg, webp", locator="Format"
        )
    return "jpeg" if ext == "jpg" else ext


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True if an ``If-None-Match`` header names ``etag`` (weak comparison, RFC 9110 13.1.2).

    >>> etag_matches('W/"a", "b"', '"a"'), etag_matches("*", '"x"'), etag_matches(None, '"x"')
    (True, True, False)
    """
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in if_none_match.split(","))


def _etag(*parts: object) -> str:
    from .. import __version__

    text = "\0".join(str(p) for p in (__version__, *parts))
    return '"' + hashlib.blake2b(text.encode(), digest_size=12).hexdigest() + '"'


def create_app(
    store: str | os.PathLike[str] | None = None, settings: ServeSettings | None = None
) -> FastAPI:
    """Build the FastAPI app serving ``store`` (default: ``settings.store`` / ``S2CUBE_STORE``).

    Examples
    --------
    >>> app = create_app("mosaic.zarr")  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, port=8000)  # doctest: +SKIP
    """
    from .wmts import capabilities_xml, exception_xml

    settings = settings or ServeSettings()
    store = store if store is not None else settings.store
    if store is None:
        raise InputError("no store to serve: pass a path or set S2CUBE_STORE")
    source = TileSource(
        store,
        use_overviews=settings.use_overviews,
        tile_size=settings.tile_size,
        max_read_pixels=settings.max_read_pixels,
        reload_interval=settings.reload_interval,
    )
    app = FastAPI(
        title=settings.title, docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.source = source
    app.state.settings = settings
    cors = {"Access-Control-Allow-Origin": "*"} if settings.cors else {}

    def error_response(
        request: Request, status: int, code: str, message: str, locator: str | None = None
    ) -> Response:
        if request.url.path.startswith("/wmts"):
            return Response(
                exception_xml(code, message, locator),
                status_code=status,
                media_type="application/xml",
                headers=cors,
            )
        body: dict[str, Any] = {"detail": message, "code": code}
        if locator:
            body["parameter"] = locator
        return JSONResponse(body, status_code=status, headers=cors)

    @app.exception_handler(TileRequestError)
    async def _tile_error(request: Request, exc: TileRequestError) -> Response:
        return error_response(request, exc.status, exc.code, str(exc), exc.locator)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        return error_response(request, 400, "InvalidParameterValue", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        msgs = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return error_response(request, 400, "InvalidParameterValue", f"bad request: {msgs}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        msg = str(exc.detail)
        if exc.status_code == 404:
            msg = (
                f"no such resource: {request.url.path[:200]!r} "
                "(see /api/info and /wmts?REQUEST=GetCapabilities)"
            )
        return error_response(
            request,
            exc.status_code,
            "NotFound" if exc.status_code == 404 else "InvalidParameterValue",
            msg,
        )

    def max_age(seconds: int) -> str:
        return f"public, max-age={seconds}" if seconds > 0 else "no-cache"

    def tile_response(
        request: Request, layer: str, tms_id: str, z: int, x: int, y: int, fmt: str
    ) -> Response:
        ext = _ext(fmt)
        source.maybe_refresh()
        source.check_tile(tms_id, z, x, y, layer)
        # a tile of an unfinished cell may fill in: never cache it for long
        complete = source.tile_complete(layer, tms_id, z, x, y)
        etag = _etag(
            source.version(layer), layer, tms_id, z, x, y, ext,
            settings.tile_size, settings.jpeg_quality,
        )  # fmt: skip
        headers = {
            "ETag": etag,
            "Cache-Control": max_age(settings.max_age if complete else settings.pending_max_age),
            **cors,
        }
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        rgba = source.tile(layer, tms_id, z, x, y)
        body = encode(rgba, ext, quality=settings.jpeg_quality)
        return Response(body, media_type=FORMATS[ext], headers=headers)

    def base_url(request: Request) -> str:
        """The public base URL: configured, or an allowed Host, or the server's own address."""
        if settings.public_url:
            return settings.public_url
        scheme = request.url.scheme if request.url.scheme in ("http", "https") else "http"
        host = request.headers.get("host", "").strip().lower()
        if host and host in settings.allowed_hosts:
            return f"{scheme}://{host}"
        server = request.scope.get("server")
        name, port = server if server else (settings.host, settings.port)
        name = f"[{name}]" if ":" in str(name) else str(name)
        default = {"http": 80, "https": 443}[scheme]
        return f"{scheme}://{name}" + (f":{port}" if port and int(port) != default else "")

    # ------------------------------------------------------------------ WMTS
    caps_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
    caps_lock = threading.Lock()

    def capabilities(request: Request) -> Response:
        source.maybe_refresh()
        base = base_url(request)
        version = source.version()
        etag = _etag("capabilities", version, base, settings.title, settings.tile_size)
        headers = {"ETag": etag, "Cache-Control": "no-cache", **cors}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        key = (base, version)
        with caps_lock:
            xml = caps_cache.get(key)
            if xml is not None:
                caps_cache.move_to_end(key)
        if xml is None:
            # built outside the lock: two first requests may both build it, none waits
            xml = capabilities_xml(source, base, title=settings.title)
            with caps_lock:
                caps_cache[key] = xml
                while len(caps_cache) > 16:  # a few base URLs x a few versions
                    caps_cache.popitem(last=False)
        return Response(xml, media_type="application/xml", headers=headers)

    @app.api_route("/wmts", methods=GET_HEAD, summary="WMTS 1.0.0 KVP")
    def wmts_kvp(request: Request) -> Response:
        q = {k.lower(): v for k, v in request.query_params.items()}
        service = q.get("service")
        req = q.get("request")
        if not req:
            raise TileRequestError(
                "parameter REQUEST is missing (GetCapabilities, GetTile or GetFeatureInfo)",
                code="MissingParameterValue",
                locator="REQUEST",
            )
        if service is None:
            raise TileRequestError(
                "parameter SERVICE is missing; use SERVICE=WMTS",
                code="MissingParameterValue",
                locator="SERVICE",
            )
        if service.upper() != "WMTS":
            raise TileRequestError(
                f"SERVICE={service[:32]!r} is not supported; use SERVICE=WMTS", locator="SERVICE"
            )
        if req.lower() == "getcapabilities":
            return capabilities(request)
        if req.lower() not in ("gettile", "getfeatureinfo"):
            raise TileRequestError(
                f"REQUEST={req[:32]!r} is not supported; use GetCapabilities, GetTile or "
                "GetFeatureInfo",
                code="OperationNotSupported",
                locator="REQUEST",
            )
        version = q.get("version", "1.0.0")
        if version != "1.0.0":
            raise TileRequestError(
                f"VERSION={version[:32]!r} is not supported; use 1.0.0", locator="VERSION"
            )
        for key in ("layer", "tilematrixset", "tilematrix", "tilerow", "tilecol"):
            if not q.get(key):
                raise TileRequestError(
                    f"parameter {key.upper()} is missing",
                    code="MissingParameterValue",
                    locator=key.upper(),
                )
        layer, tms_id = q["layer"], q["tilematrixset"]
        source.maybe_refresh()
        source.layer(layer)
        if tms_id not in TMS_IDS:
            raise TileRequestError(
                f"unknown TILEMATRIXSET {tms_id[:32]!r}; use one of {list(TMS_IDS)}",
                locator="TILEMATRIXSET",
            )
        style = q.get("style", "default") or "default"
        if style != "default":
            raise TileRequestError(f"unknown STYLE {style[:32]!r}; use 'default'", locator="STYLE")
        z = _int(q["tilematrix"], "TILEMATRIX")
        y = _int(q["tilerow"], "TILEROW")
        x = _int(q["tilecol"], "TILECOL")
        if req.lower() == "getfeatureinfo":
            source.check_tile(tms_id, z, x, y, layer)
            i, j = _int(q.get("i"), "I"), _int(q.get("j"), "J")
            if not (0 <= i < source.tile_size and 0 <= j < source.tile_size):
                raise TileRequestError(
                    f"I={i}, J={j} outside the {source.tile_size}-px tile",
                    code="PointIJOutOfRange",
                    locator="I",
                )
            lon, lat = source.pixel_lonlat(tms_id, z, x, y, layer)
            return JSONResponse(source.point(float(lon[i]), float(lat[j]), layer), headers=cors)
        fmt = q.get("format", "image/png")
        ext = _MIME_TO_EXT.get(fmt.lower())
        if ext is None:
            raise TileRequestError(
                f"FORMAT={fmt[:32]!r} is not offered; use image/png, image/jpeg or image/webp",
                locator="FORMAT",
            )
        return tile_response(request, layer, tms_id, z, x, y, ext)

    @app.api_route(
        "/wmts/1.0.0/WMTSCapabilities.xml",
        methods=GET_HEAD,
        summary="WMTS 1.0.0 capabilities (REST)",
    )
    def wmts_rest_capabilities(request: Request) -> Response:
        return capabilities(request)

    @app.api_route(
        "/wmts/1.0.0/{layer}/{style}/{tms_id}/{z}/{row}/{col}.{fmt}",
        methods=GET_HEAD,
        summary="WMTS GetTile (REST)",
    )
    def wmts_rest_tile(
        request: Request, layer: str, style: str, tms_id: str, z: str, row: str, col: str, fmt: str
    ) -> Response:
        source.maybe_refresh()
        source.layer(layer)
        if style != "default":
            raise TileRequestError(f"unknown style {style[:32]!r}; use 'default'", locator="Style")
        if tms_id not in TMS_IDS:
            raise TileRequestError(
                f"unknown TileMatrixSet {tms_id[:32]!r}; use one of {list(TMS_IDS)}",
                locator="TileMatrixSet",
            )
        return tile_response(
            request,
            layer,
            tms_id,
            _int(z, "TileMatrix"),
            _int(col, "TileCol"),
            _int(row, "TileRow"),
            fmt,
        )

    # ------------------------------------------------------------------ XYZ + API
    @app.api_route("/tiles/{layer}/{z}/{x}/{y}.{fmt}", methods=GET_HEAD, summary="XYZ tile")
    def xyz_tile(
        request: Request, layer: str, z: str, x: str, y: str, fmt: str, tms: str = "WebMercatorQuad"
    ) -> Response:
        source.maybe_refresh()
        source.layer(layer)
        if tms not in TMS_IDS:
            raise TileRequestError(
                f"unknown tms {tms[:32]!r}; use one of {list(TMS_IDS)}", locator="tms"
            )
        return tile_response(request, layer, tms, _int(z, "z"), _int(x, "x"), _int(y, "y"), fmt)

    @app.api_route("/api/point", methods=GET_HEAD, summary="values and provenance of one pixel")
    def point(lon: str | None = None, lat: str | None = None, layer: str | None = None) -> Response:
        source.maybe_refresh()
        if layer is not None:
            source.layer(layer)
        out = source.point(_float(lon, "lon"), _float(lat, "lat"), layer)
        return JSONResponse(out, headers={"Cache-Control": "no-cache", **cors})

    @app.api_route("/api/info", methods=GET_HEAD, summary="layers, bounds, zooms, date range")
    def info() -> Response:
        source.maybe_refresh()
        return JSONResponse(source.info(), headers={"Cache-Control": "no-cache", **cors})

    @app.api_route("/healthz", methods=GET_HEAD, include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/", methods=GET_HEAD, include_in_schema=False)
    def index() -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
