//! Backup → restore round trips against a real MariaDB: fidelity of every kind of object and
//! value, `--into` renames, `dump` scripts loaded by the stock client, and deduplication.

mod common;

use common::*;

/// A database exercising every object type and awkward value the backup must carry.
const FIDELITY_SCHEMA: &str = r#"
CREATE DATABASE `fid` CHARACTER SET latin1 COLLATE latin1_swedish_ci;
USE `fid`;
CREATE TABLE `values` (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  f FLOAT, f2 FLOAT(7,3), d DOUBLE, dec65 DECIMAL(65,30), dsmall DECIMAL(5,2) UNSIGNED,
  ti TINYINT, bi BIGINT, ubi BIGINT UNSIGNED, mi MEDIUMINT UNSIGNED, y YEAR,
  dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP NULL DEFAULT NULL, ts3 TIMESTAMP(3) NULL DEFAULT NULL, da DATE, t TIME(6),
  b BIT(1), b64 BIT(64),
  bin BINARY(4), vb VARBINARY(300), bl LONGBLOB, l1 VARCHAR(50) CHARACTER SET latin1,
  u8 TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, e ENUM('a','b','c d'), s SET('x','y','z'),
  j JSON, uu UUID, i6 INET6, pt POINT,
  gv INT AS (id * 10) VIRTUAL, gs VARCHAR(60) AS (CONCAT(l1, '!')) STORED,
  inv INT INVISIBLE DEFAULT 42,
  KEY (bi), UNIQUE KEY (uu)
) ENGINE=InnoDB AUTO_INCREMENT=1000;
SET sql_mode = '';
INSERT INTO `values` (f, f2, d, dec65, dsmall, ti, bi, ubi, mi, y, dt, dt6, ts, ts3, da, t, b, b64, bin, vb, bl, l1, u8, e, s, j, uu, i6, pt, inv) VALUES
 (0.1, 1234.567, 0.1, '12345678901234567890123456789012345.123456789012345678901234567890', 999.99,
  -128, -9223372036854775808, 18446744073709551615, 16777215, 1901,
  '0000-00-00 00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999', '0000-00-00', '-838:59:59.000000',
  b'1', b'1111111111111111111111111111111111111111111111111111111111111111',
  0x00000000, 0x00ff0a0d5c27225a1a, 0x89504e470d0a1a0a0000, 0xe9e8, 'emoji 😀 ''quote'' "dq" \\ back \n nl',
  'c d', 'x,z', '{"k": [1, 2.5, "é", null]}', '123e4567-e89b-12d3-a456-426614174000', '2001:db8::ff00:42:8329', ST_GeomFromText('POINT(1.5 -2.25)'), 7),
 (3.4028235e38, -0.001, 1.7976931348623157e308, '-0.000000000000000000000000000001', 0,
  127, 9223372036854775807, 0, 0, 2155,
  '2024-02-29 12:34:56', '1000-01-01 00:00:00.000001', '2000-06-15 08:00:00', NULL, '1000-01-01', '838:59:59.000000',
  b'0', b'0', 0x01020304, '', '', '', '', 'a', '', '[]', NULL, NULL, NULL, NULL),
 (1.17549435e-38, NULL, 5e-324, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '00:00:00.000001',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (-0.0, 16777217, -2.2250738585072014e-308, 0, NULL, 0, 0, 0, 0, 0, '1999-12-31 23:59:59', NULL, NULL, NULL, NULL, '-00:00:01',
  NULL, NULL, NULL, 0x00, 0x00, 'Stra\xdfe', 'tab\there', 'b', 'x,y,z', '{}', NULL, '::1', NULL, NULL);
UPDATE `values` SET l1 = CONVERT(0xe9e0fc USING latin1) WHERE id = 1000;
ALTER TABLE `values` AUTO_INCREMENT = 5000;

CREATE TABLE `we``ird tab.le` (`col umn` INT PRIMARY KEY, `ä` VARCHAR(10) CHARACTER SET utf8mb4, `select` INT) CHARACTER SET utf8mb4;
INSERT INTO `we``ird tab.le` VALUES (1, 'ä', 2), (2, NULL, NULL);
CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE) ENGINE=InnoDB;
INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
INSERT INTO child VALUES (10, 1), (11, 2), (12, NULL);
CREATE TABLE nopk (a INT, b TEXT);
INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (NULL, NULL);
CREATE TABLE empty_t (id INT PRIMARY KEY);
CREATE TABLE parted (id INT NOT NULL, yr INT NOT NULL, PRIMARY KEY (id, yr))
  PARTITION BY RANGE (yr) (PARTITION p2020 VALUES LESS THAN (2021), PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO parted VALUES (1, 2019), (2, 2020), (3, 2024);
CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=MyISAM;
INSERT INTO legacy VALUES (1, 'm');
CREATE TABLE compound_pk (a VARCHAR(10), b INT, c INT, PRIMARY KEY (b, a));
INSERT INTO compound_pk VALUES ('x', 2, 1), ('y', 1, 2), ('a', 1, 3);

CREATE SEQUENCE seq_ids START WITH 100 INCREMENT BY 5 CACHE 10;
SELECT NEXTVAL(seq_ids);

CREATE VIEW z_base AS SELECT id, l1 FROM `values`;
CREATE VIEW a_on_z AS SELECT id FROM z_base WHERE id > 0;
CREATE SQL SECURITY INVOKER VIEW m_join AS SELECT p.name, c.id FROM parent p JOIN child c ON c.parent_id = p.id;

DELIMITER //
CREATE FUNCTION add_one(x INT) RETURNS INT DETERMINISTIC RETURN x + 1//
CREATE PROCEDURE count_values(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM fid.`values`; END//
CREATE TRIGGER parent_bi2 BEFORE INSERT ON parent FOR EACH ROW SET NEW.name = CONCAT(NEW.name, '.')//
CREATE TRIGGER parent_bi BEFORE INSERT ON parent FOR EACH ROW PRECEDES parent_bi2 BEGIN SET NEW.name = UPPER(NEW.name); END//
DELIMITER ;
SET sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES';
SET time_zone = '+05:00';
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM "fid"."nopk" WHERE a IS NULL;
SET sql_mode = '';
"#;

fn show_create(server: &MariaDb, kind: &str, db: &str, name: &str, column: usize) -> String {
    let out = server.sql(&format!(
        "SHOW CREATE {kind} `{db}`.`{}`",
        name.replace('`', "``")
    ));
    out.trim_end_matches('\n')
        .split('\t')
        .nth(column)
        .unwrap_or_default()
        .to_string()
}

fn names(server: &MariaDb, sql: &str) -> Vec<String> {
    server.sql(sql).lines().map(str::to_string).collect()
}

/// Compare every object of `a` with `b` (with the schema name replaced).
fn assert_same_database(server: &MariaDb, a: &str, b: &str) {
    let charset = |db: &str| {
        server.sql(&format!("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"))
    };
    assert_eq!(charset(a), charset(b), "database charset");
    let tables = |db: &str| {
        names(
            server,
            &format!(
                "SELECT CONCAT(TABLE_NAME, ':', TABLE_TYPE) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' ORDER BY 1"
            ),
        )
    };
    assert_eq!(tables(a), tables(b), "table list");
    for t in names(
        server,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{a}' AND TABLE_TYPE = 'BASE TABLE'"
        ),
    ) {
        assert_eq!(
            show_create(server, "TABLE", a, &t, 1),
            show_create(server, "TABLE", b, &t, 1),
            "definition of table {t}"
        );
    }
    assert_eq!(
        checksums(server, a),
        checksums(server, b),
        "table checksums"
    );
    // How restore rewrites qualifiers: quoted, unquoted and ANSI-quoted become `b`.
    let rename = |s: String| {
        s.replace(&format!("`{a}`."), &format!("`{b}`."))
            .replace(&format!(" {a}."), &format!(" `{b}`."))
            .replace(&format!("\"{a}\"."), &format!("`{b}`."))
    };
    for v in names(
        server,
        &format!("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{a}'"),
    ) {
        assert_eq!(
            rename(show_create(server, "VIEW", a, &v, 1)),
            show_create(server, "VIEW", b, &v, 1),
            "view {v}"
        );
    }
    for (kind, sql, col) in [
        (
            "PROCEDURE",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{a}' AND ROUTINE_TYPE = 'PROCEDURE'"
            ),
            2,
        ),
        (
            "FUNCTION",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{a}' AND ROUTINE_TYPE = 'FUNCTION'"
            ),
            2,
        ),
        (
            "TRIGGER",
            format!(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{a}'"
            ),
            2,
        ),
        (
            "EVENT",
            format!("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{a}'"),
            3,
        ),
    ] {
        let list = names(server, &sql);
        assert_eq!(
            list,
            names(server, &sql.replace(&format!("'{a}'"), &format!("'{b}'"))),
            "{kind} list"
        );
        for name in list {
            assert_eq!(
                rename(show_create(server, kind, a, &name, col)),
                show_create(server, kind, b, &name, col),
                "{kind} {name}"
            );
            // sql_mode is kept too.
            assert_eq!(
                show_create(server, kind, a, &name, 1),
                show_create(server, kind, b, &name, 1),
                "{kind} {name} sql_mode"
            );
        }
    }
    let order = |db: &str| {
        names(
            server,
            &format!(
                "SELECT CONCAT(TRIGGER_NAME, ACTION_ORDER) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}' ORDER BY 1"
            ),
        )
    };
    assert_eq!(order(a), order(b), "trigger order");
    let autoinc = |db: &str| {
        server.sql(&format!("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 'values'"))
    };
    assert_eq!(autoinc(a), autoinc(b), "AUTO_INCREMENT counter");
    // Like a server restart, a restored sequence resumes after its cached range: it may skip
    // values, never hand one out twice.
    let nextval = |db: &str| {
        server
            .sql(&format!("SELECT NEXTVAL(`{db}`.seq_ids)"))
            .trim()
            .parse::<i64>()
            .expect("nextval")
    };
    let (source_next, restored_next) = (nextval(a), nextval(b));
    assert!(
        restored_next >= source_next,
        "sequence went back: {restored_next} < {source_next}"
    );
    let hex = |db: &str| {
        server.sql(&format!("SELECT HEX(f), HEX(d), HEX(l1), HEX(vb), HEX(b64), inv, f FROM `{db}`.`values` ORDER BY id"))
    };
    assert_eq!(
        hex(a),
        hex(b),
        "raw bytes of floats, latin1 text and binary"
    );
}

#[test]
fn every_object_and_value_round_trips_through_restore_and_dump() {
    let server = MariaDb::shared();
    server.sql(FIDELITY_SCHEMA);
    let repo = Repo::new();
    let url = server.socket_url();
    let out = ok(repo.coffer(&["backup", "--mysql", &url, "--include", "fid"]));
    assert!(out.contains("1 databases"), "{out}");
    // The binlog coordinates at the start of the run are recorded for point-in-time recovery.
    let snapshots: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    let binlog = &snapshots[0]["binlog"];
    assert!(
        binlog["file"]
            .as_str()
            .is_some_and(|f| f.starts_with("binlog.")),
        "{snapshots}"
    );
    assert!(
        binlog["position"].as_u64().is_some_and(|p| p > 0),
        "{snapshots}"
    );

    let listing = ok(repo.coffer(&["ls", "latest", "fid"]));
    assert!(
        listing.contains("legacy")
            && listing.contains("warning: table legacy uses the MyISAM engine"),
        "{listing}"
    );
    assert!(
        listing.contains("view      a_on_z") && listing.contains("event     nightly"),
        "{listing}"
    );

    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "fid",
        "--into",
        "fid_restored",
    ]));
    assert_same_database(server, "fid", "fid_restored");
    // Views were created in dependency order although a_on_z sorts before z_base.
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM fid_restored.a_on_z")
            .trim(),
        "4"
    );
    // Renamed references point at the new schema, not at the original.
    let body = show_create(server, "PROCEDURE", "fid_restored", "count_values", 2);
    assert!(body.contains("FROM `fid_restored`.`values`"), "{body}");
    let event = show_create(server, "EVENT", "fid_restored", "nightly", 3);
    assert!(event.contains("`fid_restored`.\"nopk\""), "{event}");
    // The event keeps its time zone, so its schedule is not shifted by the restore session's.
    assert_eq!(
        show_create(server, "EVENT", "fid_restored", "nightly", 2),
        "+05:00"
    );

    // Restoring over an existing database is refused unless asked for.
    let refused = repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "fid",
        "--into",
        "fid_restored",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("already exists") && stderr(&refused).contains("--drop-existing"),
        "{}",
        stderr(&refused)
    );
    server.sql("INSERT INTO fid_restored.empty_t VALUES (1)");
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &url,
        "--db",
        "fid",
        "--into",
        "fid_restored",
        "--drop-existing",
        "--skip-definer",
    ]));
    assert_eq!(
        server
            .sql("SELECT COUNT(*) FROM fid_restored.empty_t")
            .trim(),
        "0"
    );

    // The dump script loads with the stock client and gives the same database.
    let dump = repo.coffer(&["dump", "--db", "fid", "--into", "fid_script"]);
    let script = dump.stdout.clone();
    ok(dump);
    let mut client = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            &format!("--socket={}", server.socket.display()),
            "-uroot",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mariadb client");
    use std::io::Write;
    client
        .stdin
        .take()
        .expect("stdin")
        .write_all(&script)
        .expect("feed script");
    let loaded = client.wait_with_output().expect("client");
    assert!(
        loaded.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert_same_database(server, "fid", "fid_script");
}

#[test]
fn unchanged_data_costs_nothing_and_one_changed_row_costs_about_one_chunk() {
    let server = MariaDb::shared();
    server.sql(
        "CREATE DATABASE dedup; USE dedup; CREATE TABLE dedup.big (id INT PRIMARY KEY, payload VARCHAR(200), n DOUBLE); \
         INSERT INTO dedup.big SELECT seq, CONCAT('row-', seq, '-', SHA2(seq, 256)), seq / 7 FROM seq_1_to_20000; \
         CREATE DATABASE dedup_small; CREATE TABLE dedup_small.t (id INT PRIMARY KEY); INSERT INTO dedup_small.t VALUES (1);",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    let stats = |repo: &Repo| -> serde_json::Value {
        let id = latest_snapshot(repo);
        let snap = ok(repo.coffer(&["snapshots", "--json"]));
        let all: serde_json::Value = serde_json::from_str(&snap).expect("json");
        all.as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()).cloned())
            .expect("snapshot")
    };
    let first = ok(repo.coffer(&["backup", "--mysql", &url, "--include", "dedup*"]));
    let size_after_first = repo.size();
    assert!(
        size_after_first > 200_000,
        "the first backup stores the data: {size_after_first} bytes\n{first}"
    );
    let first_stats = stats(&repo);
    assert_eq!(first_stats["databases"], 2, "{first_stats}");
    assert!(
        first_stats["bytes"].as_u64().is_some_and(|b| b > 1_000_000),
        "the snapshot records the logical size of what it holds: {first_stats}"
    );
    let unchanged = checksums(server, "dedup");

    let second = ok(repo.coffer(&["backup", "--mysql", &url, "--include", "dedup*"]));
    let growth = repo.size() - size_after_first;
    assert!(
        second.contains("0 B stored new") && second.contains("(0 new blobs)"),
        "{second}"
    );
    assert!(
        growth < 4_000,
        "an unchanged backup added {growth} bytes (snapshot and index only expected)"
    );

    server.sql("UPDATE dedup.big SET payload = 'changed' WHERE id = 10000");
    let before = repo.size();
    let third = ok(repo.coffer(&["backup", "--mysql", &url, "--include", "dedup*"]));
    let growth = repo.size() - before;
    // One or two data chunks (16 KiB average, 64 KiB at most, compressed) plus two trees.
    assert!(third.contains("new blobs"), "{third}");
    let new_blobs: u64 = third
        .split('(')
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("new blob count");
    assert!(
        (2..=5).contains(&new_blobs),
        "one changed row stored {new_blobs} new blobs: {third}"
    );
    assert!(
        growth < 70_000,
        "one changed row added {growth} bytes of {size_after_first}"
    );

    // All three snapshots restore to what the server held at the time.
    let changed = checksums(server, "dedup");
    assert_ne!(unchanged, changed);
    for (i, (output, expected)) in [
        (&first, &unchanged),
        (&second, &unchanged),
        (&third, &changed),
    ]
    .into_iter()
    .enumerate()
    {
        let id = snapshot_id_of(output);
        let into = format!("dedup_snapshot_{i}");
        ok(repo.coffer(&[
            "restore",
            "--mysql",
            &url,
            "--snapshot",
            &id,
            "--db",
            "dedup",
            "--into",
            &into,
        ]));
        assert_eq!(&checksums(server, &into), expected, "snapshot {i} ({id})");
    }
}

/// The id in a `snapshot ID saved: …` line of `coffer backup`.
fn snapshot_id_of(backup_output: &str) -> String {
    backup_output
        .split_whitespace()
        .skip_while(|w| *w != "snapshot")
        .nth(1)
        .map(str::to_string)
        .expect("a snapshot id in the backup output")
}
