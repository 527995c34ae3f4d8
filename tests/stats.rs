//! `coffer stats` (issue 8): sizes unique to a database and shared with others, deduplication
//! and growth per snapshot, on a repository whose contents are known.

mod common;

use common::*;

#[test]
fn stats_tell_unique_from_shared_and_show_growth() {
    let server = MariaDb::shared();
    // st_b.copy holds exactly the rows of st_a.copy: the same chunks, shared.
    server.sql(
        "CREATE DATABASE st_a; CREATE DATABASE st_b; USE st_a; \
         CREATE TABLE st_a.own (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO st_a.own SELECT seq, SHA2(seq, 512) FROM seq_1_to_3000; \
         CREATE TABLE st_a.copy (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO st_a.copy SELECT seq, SHA2(seq * 7, 512) FROM seq_1_to_3000; \
         CREATE TABLE st_b.copy LIKE st_a.copy; INSERT INTO st_b.copy SELECT * FROM st_a.copy; \
         CREATE TABLE st_b.own (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO st_b.own SELECT seq, SHA2(seq * 3, 512) FROM seq_1_to_1000;",
    );
    let repo = Repo::new();
    let url = server.socket_url();
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "st_*"]));
    server.sql("UPDATE st_a.own SET v = 'changed' WHERE id = 10;");
    ok(repo.coffer(&["backup", "--mysql", &url, "--include", "st_*"]));

    let stats: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["stats", "--json"]))).expect("json");
    assert_eq!(stats["snapshots"], 2);
    let db = |name: &str| {
        stats["databases"]
            .as_array()
            .expect("databases")
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {stats:#}"))
    };
    let (a, b) = (db("st_a"), db("st_b"));
    let bytes = |d: &serde_json::Value, f: &str| d[f].as_u64().expect(f);
    assert!(bytes(&a, "shared_bytes") > 100_000, "{stats:#}");
    assert_eq!(
        bytes(&a, "shared_bytes"),
        bytes(&b, "shared_bytes"),
        "the same shared blobs"
    );
    assert!(
        bytes(&a, "unique_bytes") > bytes(&b, "unique_bytes"),
        "{stats:#}"
    );
    assert_eq!(a["snapshots"], 2);
    let referenced = bytes(&stats, "referenced_bytes");
    assert!(referenced <= bytes(&stats, "pack_bytes"));
    assert_eq!(
        referenced,
        bytes(&a, "unique_bytes") + bytes(&b, "unique_bytes") + bytes(&a, "shared_bytes"),
        "every referenced blob is unique to one database or shared: {stats:#}"
    );
    let growth = stats["growth"].as_array().expect("growth");
    let first = growth[0]["new_bytes"].as_u64().expect("first");
    let second = growth[1]["new_bytes"].as_u64().expect("second");
    assert_eq!(first + second, referenced);
    assert!(
        second > 0 && second * 4 < first,
        "a small change adds little: {stats:#}"
    );
    assert!(
        stats["dedup_ratio"].as_f64().expect("ratio") > 1.5,
        "{stats:#}"
    );

    let text = ok(repo.coffer(&["stats"]));
    assert!(
        text.contains("st_a") && text.contains("growth per snapshot"),
        "{text}"
    );
}
