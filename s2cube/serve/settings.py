"""Server settings, from arguments or the environment (prefix ``S2CUBE_``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator
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
    max_age: int = Field(
        3600, ge=0, description="Cache-Control max-age of tiles whose cells are all finished (s)"
    )
    pending_max_age: int = Field(
        10,
        ge=0,
        description="Cache-Control max-age of tiles touching a cell not (yet) finished "
        "(s; 0: no-cache, always revalidate)",
    )
    reload_interval: float = Field(
        1.0,
        ge=0,
        description="seconds between checks for new manifest records (0: every request)",
    )
    public_url: str | None = Field(
        None,
        description="base URL written into capabilities; when unset, the server's own "
        "address (or an allowed Host header)",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values (host[:port]) that capabilities may name when "
        "public_url is unset, as JSON: S2CUBE_ALLOWED_HOSTS='[\"maps.example.org\"]'",
    )
    cors: bool = Field(True, description="send Access-Control-Allow-Origin: *")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(
                f"public_url={value!r} is not an http(s) base URL; give one such as "
                "https://maps.example.org/s2cube (no query string)"
            )
        return value.rstrip("/")

    @field_validator("allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower() for h in value if h.strip()]
