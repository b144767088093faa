#!/usr/bin/env bash
# Install the system services s2cube's tests need on a fresh Debian 12 (bookworm) machine.
#
#   * PostgreSQL + PostGIS (for tests/support/stac_api.py: a throwaway pgstac STAC API)
#   * chromium + chromium-driver (web-map tests; optional, a failure here does not abort)
#   * gdal-bin (gdalinfo: the exported COGs are checked with GDAL's own CLI; optional)
#
# Idempotent: when everything is already installed it does no apt work at all.
# It installs packages only and starts no service (a policy-rc.d guard keeps the
# Debian maintainer scripts from starting the default PostgreSQL cluster).
# Run as root (or as a user with sudo).
set -euo pipefail

log() { printf '[install_system] %s\n' "$*" >&2; }

if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    log "must run as root (or have sudo)"; exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_INSTALL=(apt-get install -y --no-install-recommends)

pkg_installed() {  # pkg_installed NAME -> 0 when dpkg says "install ok installed"
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Highest PostgreSQL major with a server (initdb) on disk, or empty.
installed_pg_major() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" ]] || continue
        d=${d%/bin}; d=${d##*/}
        if [[ -z "$best" ]] || (( ${d%%.*} > ${best%%.*} )); then best=$d; fi
    done
    printf '%s' "$best"
}

# Major version the "postgresql" metapackage would install (e.g. 15 on bookworm).
candidate_pg_major() {
    apt-cache depends postgresql 2>/dev/null \
        | sed -n 's/^ *Depends: postgresql-\([0-9][0-9.]*\)$/\1/p' | head -n1
}

postgis_ok() {  # postgis_ok MAJOR
    [[ -n "$1" ]] && pkg_installed "postgresql-$1-postgis-3" \
        && [[ -f "/usr/share/postgresql/$1/extension/postgis.control" ]]
}

major=$(installed_pg_major)
need_pg=1
if [[ -n "$major" ]] && postgis_ok "$major"; then need_pg=0; fi
need_chromium=1
if pkg_installed chromium && pkg_installed chromium-driver; then need_chromium=0; fi
need_gdal=1
if pkg_installed gdal-bin; then need_gdal=0; fi

if (( need_pg == 0 && need_chromium == 0 && need_gdal == 0 )); then
    log "PostgreSQL $major + PostGIS, chromium and gdal-bin already installed; nothing to do"
    exit 0
fi

# Keep maintainer scripts from starting services (the default cluster) while we install.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
cleanup() { if (( added_policy )); then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 0755 "$POLICY"
    added_policy=1
fi

log "apt-get update"
"${SUDO[@]}" apt-get update -q

if (( need_pg )); then
    [[ -n "$major" ]] || major=$(candidate_pg_major)
    if [[ -z "$major" ]]; then
        log "cannot tell which PostgreSQL major version apt would install"; exit 1
    fi
    log "installing PostgreSQL $major + PostGIS 3"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT_INSTALL[@]}" \
        postgresql "postgresql-$major" "postgresql-$major-postgis-3"
    major=$(installed_pg_major)
    if ! postgis_ok "$major"; then
        log "PostGIS for PostgreSQL $major did not install correctly"; exit 1
    fi
fi

if (( need_chromium )); then
    log "installing chromium + chromium-driver (optional)"
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT_INSTALL[@]}" \
            chromium chromium-driver; then
        log "WARNING: chromium/chromium-driver could not be installed; web-map tests will be skipped"
    fi
fi

if (( need_gdal )); then
    log "installing gdal-bin (optional)"
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "${APT_INSTALL[@]}" gdal-bin; then
        log "WARNING: gdal-bin could not be installed; the gdalinfo check of exports is skipped"
    fi
fi

log "done: PostgreSQL $(installed_pg_major) with PostGIS in /usr/lib/postgresql/$(installed_pg_major)/bin"
