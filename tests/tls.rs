//! TLS to MySQL: on and verified by default, against a MariaDB started with certificates this
//! test generates (a private CA, a server certificate for `localhost` only, a client certificate).

mod common;

use common::*;
use mysql_async::prelude::Queryable;

struct TlsServer {
    server: MariaDb,
    certs: Certs,
    _dir: tempfile::TempDir,
}

fn tls_server() -> &'static TlsServer {
    static SERVER: std::sync::OnceLock<TlsServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("cert dir");
        let certs = make_certs(dir.path());
        let server = MariaDb::start(Some(&certs));
        server.sql(
            "CREATE DATABASE tls_db; CREATE TABLE tls_db.t (id INT PRIMARY KEY); INSERT INTO tls_db.t VALUES (7); \
             CREATE USER 'x509user'@'%' IDENTIFIED BY 'x509-pw' REQUIRE X509; GRANT ALL ON *.* TO 'x509user'@'%';",
        );
        TlsServer { server, certs, _dir: dir }
    })
}

fn url(host: &str, port: u16, query: &str) -> String {
    format!("mysql://{TEST_USER}@{host}:{port}/?{query}")
}

fn backup(repo: &Repo, url: &str, password: &str) -> std::process::Output {
    repo.coffer_env(
        &["backup", "--mysql", url, "--include", "tls_db"],
        &[("COFFER_MYSQL_PASSWORD", password)],
    )
}

#[test]
fn verified_tls_with_a_custom_ca() {
    let s = tls_server();
    let repo = Repo::new();
    let ca = format!("ssl-ca={}", s.certs.ca.display());
    ok(backup(
        &repo,
        &url("localhost", s.server.port, &ca),
        TEST_USER_PASSWORD,
    ));
    assert!(ok(repo.coffer(&["ls", "latest"])).contains("tls_db"));
}

#[tokio::test]
async fn the_connection_is_encrypted() {
    let s = tls_server();
    let mut target = coffer::source::mysql::MysqlTarget::parse(&url(
        "localhost",
        s.server.port,
        &format!("ssl-ca={}", s.certs.ca.display()),
    ))
    .expect("url");
    target.set_password(zeroize::Zeroizing::new(TEST_USER_PASSWORD.to_string()));
    let mut conn = target.connect().await.expect("connect");
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .expect("status");
    let cipher = cipher.map(|c| c.1).unwrap_or_default();
    assert!(!cipher.is_empty(), "the session is not encrypted");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let s = tls_server();
    let repo = Repo::new();
    let ca = format!("ssl-ca={}", s.certs.ca.display());
    // The certificate names localhost, not 127.0.0.1.
    let out = backup(
        &repo,
        &url("127.0.0.1", s.server.port, &ca),
        TEST_USER_PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("connecting to MySQL at 127.0.0.1") && err.contains("tls-server-name"),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate") && err.contains("not valid for name"),
        "the refusal names the certificate's name mismatch: {err}"
    );
    // Naming the expected host explicitly is accepted.
    ok(backup(
        &repo,
        &url(
            "127.0.0.1",
            s.server.port,
            &format!("{ca}&tls-server-name=localhost"),
        ),
        TEST_USER_PASSWORD,
    ));
}

#[test]
fn a_server_signed_by_an_unknown_ca_is_refused() {
    let s = tls_server();
    let repo = Repo::new();
    let out = backup(
        &repo,
        &url("localhost", s.server.port, ""),
        TEST_USER_PASSWORD,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("ssl-ca"), "{}", stderr(&out));
}

#[test]
fn client_certificates_are_sent() {
    let s = tls_server();
    let repo = Repo::new();
    let base = format!("ssl-ca={}", s.certs.ca.display());
    let user_url = |q: &str| format!("mysql://x509user@localhost:{}/?{q}", s.server.port);
    let without = backup(&repo, &user_url(&base), "x509-pw");
    assert!(
        !without.status.success(),
        "REQUIRE X509 must refuse a client without a certificate"
    );
    let with = format!(
        "{base}&ssl-cert={}&ssl-key={}",
        s.certs.client_cert.display(),
        s.certs.client_key.display()
    );
    ok(backup(&repo, &user_url(&with), "x509-pw"));
}

#[test]
fn plaintext_needs_a_loud_opt_out() {
    let s = tls_server();
    let repo = Repo::new();
    let out = backup(
        &repo,
        &url("127.0.0.1", s.server.port, "ssl-mode=INSECURE_DISABLED"),
        TEST_USER_PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("TLS IS DISABLED"), "{}", stderr(&out));
    let refused = backup(
        &repo,
        &url("127.0.0.1", s.server.port, "ssl-mode=DISABLED"),
        TEST_USER_PASSWORD,
    );
    assert!(
        stderr(&refused).contains("INSECURE_DISABLED"),
        "{}",
        stderr(&refused)
    );
}
