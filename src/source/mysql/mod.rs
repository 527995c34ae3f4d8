//! MySQL / MariaDB as a backup source and restore target: connecting (TLS on and verified by
//! default), listing databases, dumping one database consistently ([`dump`]), and classifying
//! server errors so the backup loop knows what to retry.
//!
//! Owns everything that speaks the MySQL protocol; the repository layer never imports it.

pub mod accounts;
pub mod binlog;
pub mod catalog;
pub mod changes;
pub mod dump;
pub mod grants;
pub mod gtid;
pub mod rowtext;

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// Prepared statements kept open per connection.
const STATEMENT_CACHE: usize = 16;

/// Schemas that belong to the server, never backed up.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// How the connection is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS with the certificate chain and host name verified (the default for TCP).
    VerifyIdentity,
    /// No TLS at all. Only by explicit `ssl-mode=INSECURE_DISABLED`.
    InsecureDisabled,
}

/// Where and how to connect, parsed from a `mysql://` URL. Never holds credentials in `Debug` or
/// `Display` output.
#[derive(Clone)]
pub struct MysqlTarget {
    pub host: String,
    pub port: u16,
    pub socket: Option<PathBuf>,
    pub user: String,
    password: Option<Zeroizing<String>>,
    pub tls: TlsMode,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Name to verify the server certificate against, when connecting by address.
    pub tls_server_name: Option<String>,
}

impl std::fmt::Debug for MysqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MysqlTarget({}@{}, tls={:?})",
            self.user,
            self.describe(),
            self.tls
        )
    }
}

const URL_HELP: &str = "use mysql://USER@HOST[:PORT]/[?ssl-ca=PATH&ssl-cert=PATH&ssl-key=PATH&tls-server-name=NAME] \
or mysql://USER@localhost/?socket=PATH, and give the password in COFFER_MYSQL_PASSWORD";

impl MysqlTarget {
    /// Parse a `mysql://` URL. A password in the URL is accepted here; the CLI refuses one given
    /// on the command line, where it would show in process listings.
    pub fn parse(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::invalid(format!("the MySQL URL is not valid: {e}")).with_hint(URL_HELP)
        })?;
        if parsed.scheme() != "mysql" && parsed.scheme() != "mariadb" {
            return Err(Error::invalid(format!(
                "the MySQL URL must start with mysql://, not {}://",
                parsed.scheme()
            ))
            .with_hint(URL_HELP));
        }
        let decode = |s: &str| percent_decode(s);
        let user = decode(parsed.username());
        if user.is_empty() {
            return Err(Error::invalid("the MySQL URL names no user").with_hint(URL_HELP));
        }
        let mut target = MysqlTarget {
            host: parsed
                .host_str()
                .unwrap_or("localhost")
                .trim_matches(['[', ']'])
                .to_string(),
            port: parsed.port().unwrap_or(3306),
            socket: None,
            user,
            password: parsed.password().map(|p| Zeroizing::new(decode(p))),
            tls: TlsMode::VerifyIdentity,
            ca: None,
            client_cert: None,
            client_key: None,
            tls_server_name: None,
        };
        let mut ssl_mode_given = false;
        for (key, value) in parsed.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "socket" => target.socket = Some(value.into()),
                "ssl-ca" | "ssl_ca" => target.ca = Some(value.into()),
                "ssl-cert" | "ssl_cert" => target.client_cert = Some(value.into()),
                "ssl-key" | "ssl_key" => target.client_key = Some(value.into()),
                "tls-server-name" => target.tls_server_name = Some(value),
                "ssl-mode" | "ssl_mode" => {
                    ssl_mode_given = true;
                    target.tls = match value.to_ascii_uppercase().as_str() {
                        "VERIFY_IDENTITY" => TlsMode::VerifyIdentity,
                        "INSECURE_DISABLED" => TlsMode::InsecureDisabled,
                        other => {
                            return Err(Error::invalid(format!("ssl-mode={other} is not supported")).with_hint(
                                "coffer always verifies the server (ssl-mode=VERIFY_IDENTITY, the default); \
                                 plaintext needs ssl-mode=INSECURE_DISABLED",
                            ));
                        }
                    }
                }
                other => {
                    return Err(
                        Error::invalid(format!("unknown MySQL URL option {other:?}"))
                            .with_hint(URL_HELP),
                    );
                }
            }
        }
        let tls_options: Vec<&str> = [
            ("ssl-ca", target.ca.is_some()),
            ("ssl-cert", target.client_cert.is_some()),
            ("ssl-key", target.client_key.is_some()),
            ("tls-server-name", target.tls_server_name.is_some()),
            ("ssl-mode", ssl_mode_given),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if target.socket.is_some() && !tls_options.is_empty() {
            return Err(Error::invalid(format!(
                "the MySQL URL gives socket= together with {}, which a Unix socket connection does not use",
                tls_options.join(", ")
            ))
            .with_hint(
                "a local socket needs no TLS: remove the TLS options, or remove socket= to connect over TCP with TLS",
            ));
        }
        if target.client_cert.is_some() != target.client_key.is_some() {
            return Err(Error::invalid(
                "ssl-cert and ssl-key must be given together",
            ));
        }
        Ok(target)
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    pub fn set_password(&mut self, password: Zeroizing<String>) {
        self.password = Some(password);
    }

    /// `host:port` or the socket path: safe to log.
    pub fn describe(&self) -> String {
        match &self.socket {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    fn opts(&self) -> Result<Opts> {
        let mut builder = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.to_string()))
            // Never switch a TCP connection to a Unix socket behind our back: that would skip TLS.
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            // Each prepared statement lives on the server until closed, and the server-wide
            // max_prepared_stmt_count (16382 by default) is shared with the application. A small
            // cache closes the least recently used statement when a new one is prepared; with no
            // cache, mysql_async closes none and a dump of thousands of tables exhausts the limit.
            .stmt_cache_size(STATEMENT_CACHE)
            .wait_timeout(Some(28_800));
        if let Some(socket) = &self.socket {
            builder = builder.socket(Some(socket.display().to_string()));
            return Ok(builder.into());
        }
        builder = builder
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port);
        if self.tls == TlsMode::VerifyIdentity {
            let mut ssl = SslOpts::default();
            if let Some(ca) = &self.ca {
                if !ca.exists() {
                    return Err(Error::invalid(format!(
                        "ssl-ca file {} does not exist",
                        ca.display()
                    )));
                }
                // A private CA replaces the public roots: trusting both would let any public CA
                // vouch for the database server.
                ssl = ssl
                    .with_root_certs(vec![ca.clone().into()])
                    .with_disable_built_in_roots(true);
            }
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                ssl = ssl.with_client_identity(Some(ClientIdentity::new(
                    cert.clone().into(),
                    key.clone().into(),
                )));
            }
            if let Some(name) = &self.tls_server_name {
                ssl = ssl.with_danger_tls_hostname_override(Some(name.clone()));
            }
            builder = builder.ssl_opts(Some(ssl));
        }
        Ok(builder.into())
    }

    /// Open a connection and set the session up for dumping or restoring.
    pub async fn connect(&self) -> Result<Conn> {
        install_tls_provider();
        if self.socket.is_none() && self.tls == TlsMode::InsecureDisabled {
            tracing::warn!(server = %self.describe(), "TLS IS DISABLED (ssl-mode=INSECURE_DISABLED): credentials and data cross the network in plaintext");
        }
        let opts = self.opts()?;
        let mut conn = Conn::new(opts).await.map_err(|e| {
            let hint = match &e {
                mysql_async::Error::Server(s) if s.code == 1045 => "check the user name and COFFER_MYSQL_PASSWORD",
                mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
                    "the server does not offer TLS: enable TLS on the server, or, on a trusted network only, \
                     add ?ssl-mode=INSECURE_DISABLED to the URL"
                }
                mysql_async::Error::Io(_) if self.tls == TlsMode::VerifyIdentity => {
                    "check host and port; if the server certificate is not trusted, give its CA with ?ssl-ca=PATH \
                     (and ?tls-server-name=NAME when connecting by address)"
                }
                _ => "check the URL, that the server is running and reachable from this host",
            };
            mysql_error(e, &format!("connecting to MySQL at {}", self.describe())).with_hint(hint)
        })?;
        let flavor_setup = if is_mariadb(&conn) {
            "SET SESSION max_statement_time = 0"
        } else {
            "SET SESSION max_execution_time = 0"
        };
        for statement in [
            "SET NAMES utf8mb4",
            "SET SESSION time_zone = '+00:00'",
            "SET SESSION sql_mode = ''",
            "SET SESSION net_read_timeout = 3600",
            "SET SESSION net_write_timeout = 3600",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            flavor_setup,
        ] {
            conn.query_drop(statement)
                .await
                .map_err(|e| mysql_error(e, &format!("setting up the session ({statement})")))?;
        }
        Ok(conn)
    }
}

/// Make aws-lc-rs the process's TLS crypto provider. rustls refuses to guess when more than one
/// provider is compiled in, and would panic on the first TLS connection; this makes the choice
/// explicit (a provider already installed stays).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Whether the connected server is MariaDB (10.x and later; MySQL is 5.x, 8.x or 9.x).
pub fn is_mariadb(conn: &Conn) -> bool {
    conn.server_version() >= (10, 0, 0)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Server error codes after which the same work may succeed if tried again.
const TRANSIENT_SERVER_CODES: &[u16] = &[
    1040, // too many connections
    1054, // unknown column (a column dropped by concurrent DDL)
    1146, // no such table (a table dropped or renamed by concurrent DDL)
    1205, // lock wait timeout
    1213, // deadlock
    1317, // query interrupted
    1412, // table definition changed (DDL during the dump)
    1927, // connection killed (MariaDB)
    4031, // disconnected for inactivity (MySQL)
];

/// Lock conflicts after which the same transaction may succeed: a deadlock (1213) or a lock
/// wait timeout (1205).
const LOCK_CONFLICT_CODES: &[u16] = &[1205, 1213];

/// Attempts for one transaction that keeps losing lock conflicts.
const LOCK_CONFLICT_ATTEMPTS: u32 = 8;

/// Run `statements` as one transaction (a single statement on its own, autocommitted; several
/// between `START TRANSACTION` and `COMMIT`), running it again when InnoDB picks it as a
/// deadlock victim or a lock wait times out. Connections loading the same table at once meet
/// such conflicts on its secondary indexes in the normal course. After a conflict the
/// transaction is rolled back explicitly (a lock wait timeout rolls back only the statement by
/// default), so every attempt starts from nothing.
pub async fn transaction_retrying_lock_conflicts<S: AsRef<[u8]>>(
    conn: &mut Conn,
    statements: &[S],
    context: impl Fn() -> String,
) -> Result<()> {
    let mut attempt = 1;
    loop {
        let single = statements.len() == 1;
        let outcome = async {
            if !single {
                conn.query_drop("START TRANSACTION").await?;
            }
            for statement in statements {
                conn.query_drop(statement.as_ref()).await?;
            }
            if !single {
                conn.query_drop("COMMIT").await?;
            }
            Ok::<_, mysql_async::Error>(())
        }
        .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(mysql_async::Error::Server(s))
                if LOCK_CONFLICT_CODES.contains(&s.code) && attempt < LOCK_CONFLICT_ATTEMPTS =>
            {
                conn.query_drop("ROLLBACK")
                    .await
                    .map_err(|e| mysql_error(e, &context()))?;
                tracing::debug!(
                    code = s.code,
                    attempt,
                    "{}: lock conflict, trying again",
                    context()
                );
                // 50 ms doubling, with jitter so that the two losers do not meet again.
                let mut jitter = [0u8; 1];
                crate::crypto::fill_random(&mut jitter)?;
                let millis = (25u64 << attempt) + u64::from(jitter[0] % 64);
                tokio::time::sleep(Duration::from_millis(millis)).await;
                attempt += 1;
            }
            Err(e) => {
                // Leave no half transaction behind on a connection that may be used again.
                let _ = conn.query_drop("ROLLBACK").await;
                return Err(mysql_error(e, &context()));
            }
        }
    }
}

/// Convert a driver error, with context, classifying what a retry may fix.
pub fn mysql_error(e: mysql_async::Error, context: &str) -> Error {
    let transient = match &e {
        mysql_async::Error::Server(s) => TRANSIENT_SERVER_CODES.contains(&s.code),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
        _ => false,
    };
    Error::new(ErrorKind::Mysql, context.to_string())
        .with_source(e)
        .transient(transient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_to_verified_tls() {
        let t = MysqlTarget::parse("mysql://backup@db.example.com/").unwrap();
        assert_eq!(t.tls, TlsMode::VerifyIdentity);
        assert_eq!(t.port, 3306);
        assert!(!t.has_password());
        assert_eq!(t.describe(), "db.example.com:3306");
    }

    #[test]
    fn url_options() {
        let t = MysqlTarget::parse("mysql://u%40x:p%2Bw@h:3307/?ssl-ca=/ca.pem&tls-server-name=db")
            .unwrap();
        assert_eq!(t.user, "u@x");
        assert_eq!(t.password.as_deref().map(String::as_str), Some("p+w"));
        assert_eq!(t.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(!format!("{t:?}").contains("p+w"));
        let t = MysqlTarget::parse("mysql://root@localhost/?socket=/tmp/s.sock").unwrap();
        assert_eq!(t.describe(), "/tmp/s.sock");
    }

    #[test]
    fn bad_urls_are_explained() {
        assert!(
            MysqlTarget::parse("mysql://h/")
                .unwrap_err()
                .to_string()
                .contains("no user")
        );
        assert!(MysqlTarget::parse("mysql://u@h/?ssl-mode=PREFERRED").is_err());
        assert!(MysqlTarget::parse("mysql://u@h/?sslca=x").is_err());
        assert!(MysqlTarget::parse("postgres://u@h/").is_err());
    }

    #[test]
    fn socket_with_tls_options_is_refused() {
        for options in [
            "ssl-ca=/ca.pem",
            "ssl-cert=/c.pem&ssl-key=/k.pem",
            "tls-server-name=db",
            "ssl-mode=VERIFY_IDENTITY",
        ] {
            let url = format!("mysql://u@localhost/?socket=/tmp/s.sock&{options}");
            let err = MysqlTarget::parse(&url).unwrap_err().to_string();
            assert!(err.contains("socket= together with"), "{url}: {err}");
        }
    }
}
