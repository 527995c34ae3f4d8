#!/usr/bin/env bash
# Start a private MariaDB server in a folder: own datadir, port and socket, root without a password
# over the socket. Usage: scripts/mariadb-sandbox.sh start DIR PORT | stop DIR
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?folder}
case "$cmd" in
start)
  port=${3:?port}
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --user="$(id -un)" >"$dir/install.log" 2>&1
  fi
  mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysql.sock" --port="$port" \
    --bind-address=127.0.0.1 --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
    --user="$(id -un)" --innodb-buffer-pool-size=256M --max-allowed-packet=64M --log-bin="$dir/binlog" \
    --server-id=1 >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    if mariadb --no-defaults --socket="$dir/mysql.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then exit 0; fi
    sleep 0.2
  done
  echo "MariaDB did not start; see $dir/error.log" >&2
  tail -20 "$dir/error.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/mariadbd.pid" ]; then
    pid=$(cat "$dir/mariadbd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  ;;
esac
