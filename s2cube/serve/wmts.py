"""OGC WMTS 1.0.0 documents: GetCapabilities and ExceptionReport (XML text, no framework)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .layers import TMS_IDS, get_tms
from .tiles import TileSource

__all__ = ["capabilities_xml", "exception_xml", "SUPPORTED_CRS"]

SUPPORTED_CRS = {
    "WebMercatorQuad": "urn:ogc:def:crs:EPSG::3857",
    "WorldCRS84Quad": "urn:ogc:def:crs:OGC:1.3:CRS84",
}
WELL_KNOWN_SCALE_SET = {
    "WebMercatorQuad": "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible",
    "WorldCRS84Quad": "urn:ogc:def:wkss:OGC:1.0:GoogleCRS84Quad",
}
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def exception_xml(code: str, message: str, locator: str | None = None) -> str:
    loc = f" locator={quoteattr(locator)}" if locator else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ExceptionReport xmlns="http://www.opengis.net/ows/1.1" version="1.1.0" xml:lang="en">\n'
        f"  <Exception exceptionCode={quoteattr(code)}{loc}>\n"
        f"    <ExceptionText>{escape(message)}</ExceptionText>\n"
        "  </Exception>\n</ExceptionReport>\n"
    )


def _tile_limits(
    bounds: tuple[float, float, float, float], tms_id: str, z: int
) -> tuple[int, int, int, int]:
    """(min row, max row, min col, max col) of the tiles touching ``bounds`` (W, S, E, N)."""
    tms = get_tms(tms_id)
    w, s, e, n = bounds
    lat_max = 85.0511287798 if tms_id == "WebMercatorQuad" else 90.0
    s, n = max(s, -lat_max), min(n, lat_max)
    eps = 1e-9
    ul = tms.tile(w + eps, n - eps, z)
    lr = tms.tile(e - eps, s + eps, z)
    m = tms.matrix(z)
    return (max(ul.y, 0), min(lr.y, m.matrixHeight - 1), max(ul.x, 0), min(lr.x, m.matrixWidth - 1))


def _matrix_set_xml(source: TileSource, tms_id: str) -> str:
    tms = get_tms(tms_id)
    out = [
        "  <TileMatrixSet>",
        f"    <ows:Identifier>{tms_id}</ows:Identifier>",
        f"    <ows:SupportedCRS>{SUPPORTED_CRS[tms_id]}</ows:SupportedCRS>",
        f"    <WellKnownScaleSet>{WELL_KNOWN_SCALE_SET[tms_id]}</WellKnownScaleSet>",
    ]
    # down to the finest zoom of any layer (a coarser layer is sampled nearest below its own)
    for z in range(0, source.service_maxzoom(tms_id) + 1):
        m = tms.matrix(z)
        x0, y0 = m.pointOfOrigin
        out += [
            "    <TileMatrix>",
            f"      <ows:Identifier>{z}</ows:Identifier>",
            f"      <ScaleDenominator>{m.scaleDenominator!r}</ScaleDenominator>",
            f"      <TopLeftCorner>{x0!r} {y0!r}</TopLeftCorner>",
            f"      <TileWidth>{source.tile_size}</TileWidth>",
            f"      <TileHeight>{source.tile_size}</TileHeight>",
            f"      <MatrixWidth>{m.matrixWidth}</MatrixWidth>",
            f"      <MatrixHeight>{m.matrixHeight}</MatrixHeight>",
            "    </TileMatrix>",
        ]
    out.append("  </TileMatrixSet>")
    return "\n".join(out)


def _layer_xml(source: TileSource, layer_id: str, base: str) -> str:
    spec = source.layer(layer_id)
    bounds = source.layer_bounds(layer_id)
    w, s, e, n = bounds
    out = [
        "  <Layer>",
        f"    <ows:Title>{escape(spec.title)}</ows:Title>",
        f"    <ows:Abstract>{escape(spec.abstract)}</ows:Abstract>",
        "    <ows:WGS84BoundingBox>",
        f"      <ows:LowerCorner>{w!r} {s!r}</ows:LowerCorner>",
        f"      <ows:UpperCorner>{e!r} {n!r}</ows:UpperCorner>",
        "    </ows:WGS84BoundingBox>",
        f"    <ows:Identifier>{layer_id}</ows:Identifier>",
        '    <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>',
    ]
    out += [f"    <Format>{mime}</Format>" for mime in _MIME.values()]
    out.append("    <InfoFormat>application/json</InfoFormat>")
    for tms_id in TMS_IDS:
        out += [
            "    <TileMatrixSetLink>",
            f"      <TileMatrixSet>{tms_id}</TileMatrixSet>",
            "      <TileMatrixSetLimits>",
        ]
        for z in range(0, source.service_maxzoom(tms_id) + 1):
            r0, r1, c0, c1 = _tile_limits(bounds, tms_id, z)
            out += [
                "        <TileMatrixLimits>",
                f"          <TileMatrix>{z}</TileMatrix>",
                f"          <MinTileRow>{r0}</MinTileRow><MaxTileRow>{r1}</MaxTileRow>",
                f"          <MinTileCol>{c0}</MinTileCol><MaxTileCol>{c1}</MaxTileCol>",
                "        </TileMatrixLimits>",
            ]
        out += ["      </TileMatrixSetLimits>", "    </TileMatrixSetLink>"]
    for ext, mime in _MIME.items():
        template = (
            f"{base}/wmts/1.0.0/{layer_id}/{{Style}}/{{TileMatrixSet}}/"
            f"{{TileMatrix}}/{{TileRow}}/{{TileCol}}.{ext}"
        )
        out.append(
            f'    <ResourceURL format="{mime}" resourceType="tile" template={quoteattr(template)}/>'
        )
    out.append("  </Layer>")
    return "\n".join(out)


def capabilities_xml(source: TileSource, base: str, *, title: str = "s2cube mosaic") -> str:
    """The WMTS 1.0.0 capabilities document; ``base`` is the service's public base URL."""
    base = base.rstrip("/")
    kvp = escape(f"{base}/wmts?")

    def op(name: str) -> str:
        return (
            f'    <ows:Operation name="{name}"><ows:DCP><ows:HTTP>'
            f'<ows:Get xlink:href="{kvp}"><ows:Constraint name="GetEncoding"><ows:AllowedValues>'
            "<ows:Value>KVP</ows:Value></ows:AllowedValues></ows:Constraint></ows:Get>"
            f'<ows:Get xlink:href="{escape(base)}/wmts/1.0.0/"><ows:Constraint name="GetEncoding">'
            "<ows:AllowedValues><ows:Value>RESTful</ows:Value></ows:AllowedValues>"
            "</ows:Constraint></ows:Get></ows:HTTP></ows:DCP></ows:Operation>"
        )

    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Capabilities xmlns="http://www.opengis.net/wmts/1.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:gml="http://www.opengis.net/gml" '
        'xsi:schemaLocation="http://www.opengis.net/wmts/1.0 '
        'http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd" version="1.0.0">',
        "  <ows:ServiceIdentification>",
        f"    <ows:Title>{escape(title)}</ows:Title>",
        "    <ows:Abstract>Cloud-free Sentinel-2 mosaic served by s2cube. "
        f"{escape(str(source.meta.get('attribution', '')))}</ows:Abstract>",
        "    <ows:ServiceType>OGC WMTS</ows:ServiceType>",
        "    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>",
        "    <ows:Fees>none</ows:Fees><ows:AccessConstraints>none</ows:AccessConstraints>",
        "  </ows:ServiceIdentification>",
        "  <ows:OperationsMetadata>",
        op("GetCapabilities"),
        op("GetTile"),
        "  </ows:OperationsMetadata>",
        "  <Contents>",
        *(_layer_xml(source, lid, base) for lid in source.layer_ids()),
        *(_matrix_set_xml(source, t) for t in TMS_IDS),
        "  </Contents>",
        f'  <ServiceMetadataURL xlink:href="{escape(base)}/wmts/1.0.0/WMTSCapabilities.xml"/>',
        "</Capabilities>",
    ]
    return "\n".join(parts) + "\n"
