"""Server settings, from arguments or the environment (prefix ``S2CUBE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServeSettings"]


class ServeSettings(BaseSettings):
    """Settings of ``s2cube serve``; every field can be set as ``S2CUBE_<NAME>``.

    Examples
    --------
    ``S2CUBE_STORE=mosaic.zarr S2CUBE_PORT=8080 S2CUBE_USE_OVERVIEWS=false s2cube serve``
    """

    model_config = SettingsConfigDict(env_prefix="S2CUBE_", extra="ignore")

    store: str | None = Field(None, description="path of the s2cube store to serve")
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    title: str = Field("s2cube mosaic", description="service title (capabilities, web page)")
    tile_size: int = Field(256, ge=64, le=1024, description="tile edge in pixels")
    use_overviews: bool = Field(True, description="read overview levels (false: always level 0)")
    max_read_pixels: int = Field(
        64_000_000, ge=65_536, description="refuse a tile that would read more source pixels"
    )
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG/WebP quality")
    max_age: int = Field(3600, ge=0, description="Cache-Control max-age of tiles (s)")
    public_url: str | None = Field(
        None, description="base URL written into capabilities (default: from the request)"
    )
    cors: bool = Field(True, description="send Access-Control-Allow-Origin: *")
