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

Bad requests get 400 (404 for unknown paths) with a message naming the bad value and the
allowed ones: an OGC ExceptionReport under /wmts, JSON elsewhere.  A failed request never
affects the next one: the app holds no per-request state.
"""

from __future__ import annotations

import os
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

from .render import FORMATS, encode  # noqa: E402
from .settings import ServeSettings  # noqa: E402
from .tiles import TMS_IDS, TileRequestError, TileSource  # noqa: E402

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

    def tile_response(layer: str, tms_id: str, z: int, x: int, y: int, fmt: str) -> Response:
        ext = _ext(fmt)
        rgba = source.tile(layer, tms_id, z, x, y)
        body = encode(rgba, ext, quality=settings.jpeg_quality)
        headers = {"Cache-Control": f"public, max-age={settings.max_age}", **cors}
        return Response(body, media_type=FORMATS[ext], headers=headers)

    def base_url(request: Request) -> str:
        return settings.public_url or str(request.base_url).rstrip("/")

    # ------------------------------------------------------------------ WMTS
    def capabilities(request: Request) -> Response:
        xml = capabilities_xml(source, base_url(request), title=settings.title)
        return Response(xml, media_type="application/xml", headers=cors)

    @app.get("/wmts", include_in_schema=True, summary="WMTS 1.0.0 KVP")
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
            source.check_tile(tms_id, z, x, y)
            i, j = _int(q.get("i"), "I"), _int(q.get("j"), "J")
            if not (0 <= i < source.tile_size and 0 <= j < source.tile_size):
                raise TileRequestError(
                    f"I={i}, J={j} outside the {source.tile_size}-px tile",
                    code="PointIJOutOfRange",
                    locator="I",
                )
            lon, lat = source.pixel_lonlat(tms_id, z, x, y)
            return JSONResponse(source.point(float(lon[i]), float(lat[j])), headers=cors)
        fmt = q.get("format", "image/png")
        ext = _MIME_TO_EXT.get(fmt.lower())
        if ext is None:
            raise TileRequestError(
                f"FORMAT={fmt[:32]!r} is not offered; use image/png, image/jpeg or image/webp",
                locator="FORMAT",
            )
        return tile_response(layer, tms_id, z, x, y, ext)

    @app.get("/wmts/1.0.0/WMTSCapabilities.xml", summary="WMTS 1.0.0 capabilities (REST)")
    def wmts_rest_capabilities(request: Request) -> Response:
        return capabilities(request)

    @app.get(
        "/wmts/1.0.0/{layer}/{style}/{tms_id}/{z}/{row}/{col}.{fmt}", summary="WMTS GetTile (REST)"
    )
    def wmts_rest_tile(
        layer: str, style: str, tms_id: str, z: str, row: str, col: str, fmt: str
    ) -> Response:
        source.layer(layer)
        if style != "default":
            raise TileRequestError(f"unknown style {style[:32]!r}; use 'default'", locator="Style")
        if tms_id not in TMS_IDS:
            raise TileRequestError(
                f"unknown TileMatrixSet {tms_id[:32]!r}; use one of {list(TMS_IDS)}",
                locator="TileMatrixSet",
            )
        return tile_response(
            layer, tms_id, _int(z, "TileMatrix"), _int(col, "TileCol"), _int(row, "TileRow"), fmt
        )

    # ------------------------------------------------------------------ XYZ + API
    @app.get("/tiles/{layer}/{z}/{x}/{y}.{fmt}", summary="XYZ tile")
    def xyz_tile(
        layer: str, z: str, x: str, y: str, fmt: str, tms: str = "WebMercatorQuad"
    ) -> Response:
        source.layer(layer)
        if tms not in TMS_IDS:
            raise TileRequestError(
                f"unknown tms {tms[:32]!r}; use one of {list(TMS_IDS)}", locator="tms"
            )
        return tile_response(layer, tms, _int(z, "z"), _int(x, "x"), _int(y, "y"), fmt)

    @app.get("/api/point", summary="values and provenance of one pixel")
    def point(lon: str | None = None, lat: str | None = None) -> Response:
        return JSONResponse(source.point(_float(lon, "lon"), _float(lat, "lat")), headers=cors)

    @app.get("/api/info", summary="layers, bounds, zooms, date range")
    def info() -> Response:
        return JSONResponse(source.info(), headers=cors)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
