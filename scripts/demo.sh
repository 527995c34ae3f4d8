#!/usr/bin/env bash
# coffer's main job on embedded defaults: start a private MariaDB in a temp folder, create a few
# study databases, back them up to a local encrypted repository, restore one under a new name and
# show that it matches the original table by table.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { echo "== [$(( $(date +%s) - started ))s] $*"; }
step "installing MariaDB from the distribution's packages if it is missing (a minute the first time)"
scripts/install-deps.sh --mariadb-only
step "building coffer (a debug build: about 10 minutes on 2 cores the first time, seconds afterwards)"
# Cargo's own progress: a bar on a terminal, a line per crate otherwise.
cargo build
coffer="$PWD/target/debug/coffer"

work=$(mktemp -d -t coffer-demo-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { scripts/mariadb-sandbox.sh stop "$work/mariadb"; rm -rf "$work"; }
trap cleanup EXIT

step "starting a private MariaDB in $work/mariadb (port $port)"
scripts/mariadb-sandbox.sh start "$work/mariadb" "$port"
sql() { mariadb --no-defaults --socket="$work/mariadb/mysql.sock" -uroot -N -B "$@"; }

step "creating sample study databases"
for i in 1 2 3 4 5; do
  rows=$((i * i * 2000))
  sql <<SQL
CREATE DATABASE study_$i CHARACTER SET utf8mb4;
USE study_$i;
CREATE TABLE subjects (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL, site CHAR(3), enrolled DATETIME(3), weight_kg DECIMAL(5,1), notes TEXT, UNIQUE KEY (code));
CREATE TABLE visits (id BIGINT AUTO_INCREMENT PRIMARY KEY, subject_id INT NOT NULL, visit_no SMALLINT, visited DATE, vitals JSON, score DOUBLE, FOREIGN KEY (subject_id) REFERENCES subjects(id));
INSERT INTO subjects SELECT seq, CONCAT('S$i-', LPAD(seq, 6, '0')), ELT(1 + seq % 3, 'BER', 'LYO', 'OSL'), '2026-01-01' + INTERVAL seq MINUTE, 50 + seq % 50, IF(seq % 5 = 0, NULL, CONCAT('note ', SHA1(seq))) FROM seq_1_to_$rows;
INSERT INTO visits (subject_id, visit_no, visited, vitals, score) SELECT 1 + seq % $rows, seq % 12, '2026-02-01' + INTERVAL seq % 300 DAY, JSON_OBJECT('hr', 60 + seq % 40, 'bp', CONCAT(110 + seq % 30, '/', 70 + seq % 20)), seq / 3 FROM seq_1_to_$((rows * 2));
CREATE VIEW subject_visits AS SELECT s.code, COUNT(v.id) AS visits FROM subjects s LEFT JOIN visits v ON v.subject_id = s.id GROUP BY s.code;
CREATE TRIGGER visits_bi BEFORE INSERT ON visits FOR EACH ROW SET NEW.visit_no = COALESCE(NEW.visit_no, 0);
SQL
done
sql -e "SELECT TABLE_SCHEMA, SUM(TABLE_ROWS) FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'study_%' GROUP BY 1"

export COFFER_REPO="$work/repo" COFFER_PASSWORD="demo passphrase, use a real one"
mysql_url="mysql://root@localhost/?socket=$work/mariadb/mysql.sock"

step "coffer doctor: what this server and this (new) repository let coffer do"
"$coffer" doctor --mysql "$mysql_url" --repo "$COFFER_REPO" || echo "(doctor names what to fix on its ✗ lines)"
step "coffer init"
"$coffer" init
step "coffer backup (4 parallel connections)"
"$coffer" backup --mysql "$mysql_url" --jobs 4
step "a second backup: unchanged data adds almost nothing"
"$coffer" backup --mysql "$mysql_url" --jobs 4
"$coffer" snapshots
"$coffer" ls latest study_3

step "coffer restore --db study_3 --into study_3_restored"
"$coffer" restore --mysql "$mysql_url" --db study_3 --into study_3_restored

step "comparing original and restored, table by table"
status=0
for table in subjects visits; do
  a=$(sql -e "CHECKSUM TABLE study_3.$table" | cut -f2)
  b=$(sql -e "CHECKSUM TABLE study_3_restored.$table" | cut -f2)
  if [ "$a" = "$b" ]; then echo "  $table: checksum $a  MATCH"; else echo "  $table: $a vs $b  DIFFERENT"; status=1; fi
done
views=$(sql -e "SELECT COUNT(*) FROM study_3_restored.subject_visits")
echo "  view subject_visits: $views rows; trigger: $(sql -e "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='study_3_restored'")"
step "coffer report --html: the SLA evidence as a page"
"$coffer" report --html "$PWD/target/coffer-demo-report.html" --since 1d   # kept: open it in a browser
step "done"
cat <<'NEXT'

What to try next:
  coffer doctor --mysql 'mysql://USER@HOST/' --repo LOCATION     your own server and bucket, line by line
  coffer --help                          every command, with its options
  README.md, "Using it"                  your own server: coffer init, then coffer backup --mysql 'mysql://USER@HOST/'
  coffer check --read-data               verify a repository
  coffer restore --db D --table T --where 'id = 7' --to-sql -     a few rows of one table, as SQL
NEXT
exit $status
