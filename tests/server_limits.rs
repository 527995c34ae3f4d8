//! coffer must not exhaust server-wide limits it shares with the application.

mod common;

use common::*;

/// Regression: prepared statements were never closed, so dumping thousands of tables hit the
/// server-wide max_prepared_stmt_count and failed databases (found by bench/run.py's 10x run).
#[test]
fn prepared_statements_are_closed_as_the_dump_goes() {
    let server = MariaDb::start(None);
    server.sql("SET GLOBAL max_prepared_stmt_count = 60");
    let mut sql = String::from("CREATE DATABASE many_tables; USE many_tables;");
    for i in 0..150 {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id INT PRIMARY KEY, v INT); INSERT INTO t{i} VALUES ({i}, {i});"
        ));
    }
    server.sql(&sql);
    let repo = Repo::new();
    let out = repo.coffer(&["backup", "--mysql", &server.socket_url(), "--jobs", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(ok(repo.coffer(&["ls", "latest", "many_tables"])).contains("t149"));
}
