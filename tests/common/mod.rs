//! Test harness: a real MariaDB server per test binary (own datadir, port and socket in a temp
//! dir), and helpers to run the `coffer` binary against it.
#![allow(dead_code)]

pub mod library;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";
pub const TEST_USER: &str = "coffer";
pub const TEST_USER_PASSWORD: &str = "s3cret-for-tests";

/// A MariaDB server started for this test process; it stops when the process exits.
pub struct MariaDb {
    pub dir: PathBuf,
    pub port: u16,
    pub socket: PathBuf,
    /// The shell that runs the server and stops it with this process.
    _watchdog: std::process::Child,
    _tmp: tempfile::TempDir,
}

/// TLS material for a server: a private CA and a certificate for `localhost`.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Generate a CA, a server certificate for localhost (not for 127.0.0.1) and a client certificate.
pub fn make_certs(dir: &Path) -> Certs {
    let p = |n: &str| dir.join(n);
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=coffer test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    for (name, san) in [("server", "DNS:localhost"), ("client", "DNS:coffer-client")] {
        std::fs::write(
            p(&format!("{name}.ext")),
            format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\n"),
        )
        .expect("write ext");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }
    Certs {
        ca: p("ca.pem"),
        server_cert: p("server.pem"),
        server_key: p("server-key.pem"),
        client_cert: p("client.pem"),
        client_key: p("client-key.pem"),
    }
}

impl MariaDb {
    /// The shared server of this test binary.
    pub fn shared() -> &'static MariaDb {
        static SERVER: OnceLock<MariaDb> = OnceLock::new();
        SERVER.get_or_init(|| MariaDb::start(None))
    }

    pub fn start(certs: Option<&Certs>) -> MariaDb {
        MariaDb::start_with(certs, &[])
    }

    /// A server with `extra` options after the usual ones (later options win, so
    /// `--skip-log-bin` turns the binary log off).
    pub fn start_with(certs: Option<&Certs>, extra: &[&str]) -> MariaDb {
        let tmp = tempfile::Builder::new()
            .prefix("coffer-mariadb-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let port = free_port();
        let socket = dir.join("mysql.sock");
        let tmp_dir = dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir).expect("tmpdir");
        let user = String::from_utf8_lossy(&run_ok(Command::new("id").arg("-un")).stdout)
            .trim()
            .to_string();
        run_ok(Command::new("mariadb-install-db").args([
            "--no-defaults",
            &format!("--datadir={}", dir.join("data").display()),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            &format!("--user={user}"),
            // Its own temporary files: two installs at once in /tmp name their temporary
            // tables alike (`#sql-temptable-…`) and one removes the other's.
            &format!("--tmpdir={}", tmp_dir.display()),
        ]));
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", dir.join("data").display()),
            format!("--socket={}", socket.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--log-error={}", dir.join("error.log").display()),
            format!("--pid-file={}", dir.join("mariadbd.pid").display()),
            format!("--user={user}"),
            "--innodb-buffer-pool-size=128M".into(),
            "--innodb-log-file-size=48M".into(),
            "--max-allowed-packet=64M".into(),
            format!("--log-bin={}", dir.join("binlog").display()),
            // Its own temporary files: a server deletes every `#sql*` file in its tmpdir when
            // it starts, which would pull them from under a server sharing /tmp.
            format!("--tmpdir={}", tmp_dir.display()),
            "--server-id=1".into(),
            "--event-scheduler=OFF".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        if let Some(c) = certs {
            args.push(format!("--ssl-ca={}", c.ca.display()));
            args.push(format!("--ssl-cert={}", c.server_cert.display()));
            args.push(format!("--ssl-key={}", c.server_key.display()));
        }
        // A watchdog stops the server when this test process ends, however it ends.
        let watchdog = spawn_service(Path::new("mariadbd"), &args, &dir.join("mariadbd.out"), &[]);
        let server = MariaDb {
            dir,
            port,
            socket,
            _watchdog: watchdog,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_sql("SELECT 1").is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(server.dir.join("error.log")).unwrap_or_default();
                panic!("MariaDB did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        server.sql(&format!(
            "CREATE USER '{TEST_USER}'@'%' IDENTIFIED BY '{TEST_USER_PASSWORD}'; \
             GRANT ALL ON *.* TO '{TEST_USER}'@'%' WITH GRANT OPTION;"
        ));
        server
    }

    /// The command-line client, connected as root over the socket.
    pub fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command.args([
            "--no-defaults",
            &format!("--socket={}", self.socket.display()),
            "-uroot",
        ]);
        command
    }

    /// Run SQL as root over the socket; returns tab-separated output without headers.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                &format!("--socket={}", self.socket.display()),
                "-uroot",
                "-N",
                "-B",
                "--binary-mode",
                "-e",
                sql,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// Load a script with the stock client, in `database` when given (as `mariadb DB < file`).
    pub fn load_script(&self, script: &[u8], database: Option<&str>) -> Result<(), String> {
        use std::io::Write;
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--socket={}", self.socket.display()),
            "-uroot".to_string(),
        ];
        args.extend(database.map(str::to_string));
        let mut client = Command::new("mariadb")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        client
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(script)
            .map_err(|e| e.to_string())?;
        let out = client.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Root over the Unix socket (no TLS needed on a local socket).
    pub fn socket_url(&self) -> String {
        self.socket_url_as("root")
    }

    /// A URL that connects as `user` over the socket (its password from
    /// `COFFER_MYSQL_PASSWORD`).
    pub fn socket_url_as(&self, user: &str) -> String {
        format!("mysql://{user}@localhost/?socket={}", self.socket.display())
    }
}

/// A repository in a temp dir, initialised with small chunks so tests see many.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        Repo::with_chunk_size("16KiB")
    }

    pub fn with_chunk_size(size: &str) -> Repo {
        Repo::init(&["--chunk-size", size])
    }

    /// A repository made with these `init` options.
    pub fn init(options: &[&str]) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("coffer-repo-")
            .tempdir()
            .expect("temp dir");
        let repo = Repo { dir };
        let mut args = vec!["init"];
        args.extend_from_slice(options);
        let out = repo.coffer(&args);
        assert!(out.status.success(), "init failed: {}", stderr(&out));
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run `coffer ARGS --repo <this repo>` with the test passphrase.
    pub fn coffer(&self, args: &[&str]) -> Output {
        coffer_cmd(args, Some(self.path()), &[])
            .output()
            .expect("run coffer")
    }

    pub fn coffer_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        coffer_cmd(args, Some(self.path()), env)
            .output()
            .expect("run coffer")
    }

    /// Total bytes of every file in the repository.
    pub fn size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| {
                            if e.path().is_dir() {
                                walk(&e.path())
                            } else {
                                e.metadata().map(|m| m.len()).unwrap_or(0)
                            }
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(self.path())
    }

    /// Every file of the repository with a hash of its content.
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(root: &Path, p: &Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    let rel = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    out.push((rel, blake3::hash(&bytes).to_hex().to_string()));
                }
            }
        }
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }
}

pub fn coffer_cmd(args: &[&str], repo: Option<&Path>, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args);
    if let Some(repo) = repo {
        cmd.env("COFFER_REPO", repo);
    }
    cmd.env("COFFER_PASSWORD", PASSWORD)
        .env_remove("COFFER_MYSQL_URL")
        .env_remove("COFFER_MYSQL_PASSWORD")
        .env("COFFER_LOG", "warn")
        // What a host remembers of the repositories it opened stays with the tests.
        .env(
            "COFFER_STATE_DIR",
            std::env::temp_dir().join("coffer-test-host-state"),
        )
        // And what it caches (index copies of every test repository).
        .env(
            "COFFER_CACHE_DIR",
            std::env::temp_dir().join("coffer-test-cache"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert success and return stdout.
#[track_caller]
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "coffer failed ({:?}):\n{}\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Restore `db` from `snapshot` (an id or `latest`) under the name `into`, dropped first.
pub fn restore_copy(repo: &Repo, server: &MariaDb, snapshot: &str, db: &str, into: &str) {
    server.sql(&format!("DROP DATABASE IF EXISTS {into}"));
    ok(repo.coffer(&[
        "restore",
        "--mysql",
        &server.socket_url(),
        "--snapshot",
        snapshot,
        "--db",
        db,
        "--into",
        into,
    ]));
}

/// The newest snapshot as `snapshots --json` lists it.
pub fn latest_snapshot_json(repo: &Repo) -> serde_json::Value {
    let listed: serde_json::Value =
        serde_json::from_str(&ok(repo.coffer(&["snapshots", "--json"]))).expect("json");
    listed
        .as_array()
        .and_then(|l| l.last())
        .cloned()
        .expect("a snapshot")
}

/// The id (first column) of the newest snapshot.
pub fn latest_snapshot(repo: &Repo) -> String {
    let list = ok(repo.coffer(&["snapshots", "--json"]));
    let parsed: serde_json::Value = serde_json::from_str(&list).expect("snapshots --json");
    parsed
        .as_array()
        .and_then(|a| a.last())
        .and_then(|s| s["id"].as_str())
        .expect("a snapshot")
        .to_string()
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `CHECKSUM TABLE` of every base table in `db`, by table name.
pub fn checksums(server: &MariaDb, db: &str) -> Vec<(String, String)> {
    let tables = server.sql(&format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
    ));
    tables
        .lines()
        .map(|t| {
            let out = server.sql(&format!("CHECKSUM TABLE `{db}`.`{}`", t.replace('`', "``")));
            let sum = out.split('\t').nth(1).unwrap_or("").trim().to_string();
            (t.to_string(), sum)
        })
        .collect()
}

/// A program installed by `scripts/install-deps.sh` into `.test-tools/`, or on PATH.
fn test_tool(relative: &str, name: &str) -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".test-tools")
        .join(relative);
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!("{name} is not installed: run scripts/install-deps.sh (or scripts/test.sh)")
    })
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!(
                "{what} did not start:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start `program args` under a watchdog that stops it when this test process ends.
fn spawn_service(
    program: &Path,
    args: &[String],
    log: &Path,
    env: &[(&str, &str)],
) -> std::process::Child {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    // A MariaDB datadir (~300 MB) goes with its server: shared servers live in statics, which
    // are never dropped, so their temp dirs would otherwise pile up run after run. Emulators'
    // folders (small) stay, with their logs for a failure's post-mortem.
    let folder = log
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let script = format!(
        "'{}' {} >'{}' 2>&1 & srv=$!; while kill -0 {} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.5; done; kill $srv 2>/dev/null; wait $srv; case '{folder}' in /tmp/coffer-mariadb-*) rm -rf '{folder}';; esac",
        program.display(),
        quoted.join(" "),
        log.display(),
        std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start service")
}

/// A storage emulator started for this test process.
pub struct Emulator {
    pub port: u16,
    _tmp: tempfile::TempDir,
    _watchdog: std::process::Child,
}

impl Emulator {
    /// Start `tool` (see [`test_tool`]) with the arguments `args(port, data dir)` and wait until
    /// it listens.
    fn start(
        name: &str,
        tool: (&str, &str),
        args: impl FnOnce(u16, &Path) -> Vec<String>,
    ) -> Emulator {
        Emulator::start_with_env(name, tool, args, &[])
    }

    /// [`Emulator::start`] with extra environment variables for the tool.
    fn start_with_env(
        name: &str,
        tool: (&str, &str),
        args: impl FnOnce(u16, &Path) -> Vec<String>,
        env: &[(&str, &str)],
    ) -> Emulator {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("coffer-{name}-"))
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let program = test_tool(tool.0, tool.1);
        let log = tmp.path().join(format!("{name}.log"));
        let watchdog = spawn_service(&program, &args(port, tmp.path()), &log, env);
        wait_for_port(port, name, &log);
        Emulator {
            port,
            _tmp: tmp,
            _watchdog: watchdog,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Azurite, the Azure Blob Storage emulator (npm), on a private port.
pub struct Azurite(Emulator);

pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl Azurite {
    pub fn shared() -> &'static Azurite {
        static SERVER: OnceLock<Azurite> = OnceLock::new();
        SERVER.get_or_init(|| {
            Azurite(Emulator::start(
                "azurite",
                ("node_modules/.bin/azurite-blob", "azurite-blob"),
                |port, dir| {
                    let args = [
                        "--blobHost",
                        "127.0.0.1",
                        "--blobPort",
                        &port.to_string(),
                        "--location",
                    ];
                    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                    args.push(dir.display().to_string());
                    args.extend(
                        ["--skipApiVersionCheck", "--disableTelemetry", "--silent"]
                            .map(String::from),
                    );
                    args
                },
            ))
        })
    }

    pub fn endpoint(&self) -> String {
        format!("{}/devstoreaccount1", self.0.endpoint())
    }

    /// A new container and a repository URL inside it.
    pub fn repo_url(&self, container: &str) -> String {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azurite_container.py");
        run_ok(
            Command::new("python3")
                .arg(script)
                .arg(self.endpoint())
                .arg(container),
        );
        format!(
            "azblob://devstoreaccount1/{container}/backups?endpoint={}&allow-http=true",
            self.endpoint()
        )
    }
}

/// moto's S3 server (PyPI), on a private port.
pub struct Moto(Emulator);

impl Moto {
    pub fn shared() -> &'static Moto {
        static SERVER: OnceLock<Moto> = OnceLock::new();
        SERVER.get_or_init(|| {
            Moto(Emulator::start(
                "moto",
                ("venv/bin/moto_server", "moto_server"),
                |port, _| {
                    vec![
                        "-H".into(),
                        "127.0.0.1".into(),
                        "-p".into(),
                        port.to_string(),
                    ]
                },
            ))
        })
    }

    /// A moto server of its own that checks every request against IAM policies once
    /// `unauthenticated` requests (the set-up) have been served.
    pub fn with_iam(unauthenticated: u32) -> Moto {
        let count = unauthenticated.to_string();
        Moto(Emulator::start_with_env(
            "moto-iam",
            ("venv/bin/moto_server", "moto_server"),
            |port, _| {
                vec![
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ]
            },
            &[("INITIAL_NO_AUTH_ACTION_COUNT", &count)],
        ))
    }

    pub fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// Run a Python script with boto3 (from moto's environment); `ENDPOINT` is set to this
    /// server. Returns what it prints.
    pub fn boto3(&self, script: &str) -> String {
        let python = test_tool("venv/bin/python", "python3");
        let out = run_ok(
            Command::new(python)
                .arg("-c")
                .arg(script)
                .env("ENDPOINT", self.endpoint()),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A KMS key and, for each `(user, allowed actions)`, an IAM user with that inline policy
    /// and an access key: the key's id and each user's (access key id, secret), in order.
    /// Makes `1 + 3 * users.len()` requests without credentials (count them in
    /// [`Moto::with_iam`]).
    pub fn kms_key_and_users(&self, users: &[(&str, &[&str])]) -> (String, Vec<(String, String)>) {
        let expected = users.len();
        let users = serde_json::to_string(users).expect("users as JSON");
        let script = r#"
import boto3, json, os
kw = dict(endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
kms = boto3.client("kms", **kw); iam = boto3.client("iam", **kw)
out = [kms.create_key()["KeyMetadata"]["KeyId"]]
for user, actions in json.loads(os.environ["USERS"]):
    iam.create_user(UserName=user)
    k = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    out += [k["AccessKeyId"], k["SecretAccessKey"]]
print(" ".join(out))
"#;
        let python = test_tool("venv/bin/python", "python3");
        let out = run_ok(
            Command::new(python)
                .arg("-c")
                .arg(script)
                .env("ENDPOINT", self.endpoint())
                .env("USERS", users),
        );
        let printed = String::from_utf8_lossy(&out.stdout).to_string();
        let mut parts = printed.split_whitespace().map(str::to_string);
        let key = parts
            .next()
            .unwrap_or_else(|| panic!("set-up printed {printed}"));
        let rest: Vec<String> = parts.collect();
        assert_eq!(rest.len(), 2 * expected, "set-up printed {printed}");
        let credentials = rest
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        (key, credentials)
    }

    /// A new bucket and a repository URL inside it.
    pub fn repo_url(&self, bucket: &str) -> String {
        // moto accepts an unsigned bucket creation.
        let response = bodyless_request(self.0.port, "PUT", &format!("/{bucket}"));
        assert!(
            response.starts_with("HTTP/1.1 200") || response.contains("BucketAlreadyOwnedByYou"),
            "{response}"
        );
        format!(
            "s3://{bucket}/backups?endpoint={}&region=us-east-1&allow-http=true",
            self.0.endpoint()
        )
    }
}

/// A local stand-in for Azure Key Vault and its token endpoint (tests/support/keyvault_double.py):
/// client `admin` (secret `admin-secret`) may wrap and unwrap, `writer` (`writer-secret`) only
/// wrap. Key `coffer` exists.
pub struct KeyVaultDouble(Emulator);

impl KeyVaultDouble {
    pub fn start() -> KeyVaultDouble {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/keyvault_double.py");
        KeyVaultDouble(Emulator::start(
            "keyvault",
            ("venv/bin/python", "python3"),
            |port, _| {
                vec![
                    script.display().to_string(),
                    port.to_string(),
                    "admin:admin-secret:wrap,unwrap".into(),
                    "writer:writer-secret:wrap".into(),
                ]
            },
        ))
    }

    /// `azure-keyvault://` URL of key `name` (plain HTTP, explicitly allowed).
    pub fn key_url(&self, name: &str) -> String {
        format!(
            "azure-keyvault://127.0.0.1:{}/keys/{name}?allow-http=true",
            self.0.port
        )
    }

    /// Environment giving coffer the credentials of `client` through the token endpoint.
    pub fn credentials(&self, client: &str) -> Vec<(String, String)> {
        vec![
            ("AZURE_AUTHORITY_HOST".into(), self.0.endpoint()),
            ("AZURE_TENANT_ID".into(), "tenant".into()),
            ("AZURE_CLIENT_ID".into(), client.into()),
            ("AZURE_CLIENT_SECRET".into(), format!("{client}-secret")),
            // The double is a local plain-HTTP vault, which no host trusts unless told to.
            ("COFFER_KMS_TRUST".into(), self.0.endpoint()),
        ]
    }

    /// A test control: `rotate`, `disable` or `enable` key `name`.
    pub fn control(&self, name: &str, action: &str) {
        let response = bodyless_request(
            self.0.port,
            "POST",
            &format!("/control/keys/{name}/{action}"),
        );
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
    }
}

/// Send `METHOD PATH` with no body to a local server; returns the whole response.
fn bodyless_request(port: u16, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the local server");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Environment for the coffer binary to reach the emulators.
pub const CLOUD_ENV: &[(&str, &str)] = &[
    ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY),
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

/// Wait past the next second boundary and return the second before it, as `--at` reads it
/// (UTC): everything logged so far is at or before it, everything later after it.
pub fn moment() -> String {
    let now = jiff::Timestamp::now();
    let second = now.as_second();
    let next = jiff::Timestamp::from_second(second + 1).expect("time");
    let wait = next.duration_since(now).as_millis().max(0) as u64 + 60;
    std::thread::sleep(Duration::from_millis(wait));
    jiff::Timestamp::from_second(second)
        .expect("time")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A write-only key made for `repo` (as a backup host gets one), and a backup of `url` run
/// with it alone (`extra`: more backup arguments); the key file's folder is returned to keep it.
pub fn backup_with_write_only_key(repo: &Repo, url: &str, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp");
    let key = dir.path().join("backup-host.key").display().to_string();
    ok(repo.coffer(&["key", "add", "--write-only", "--output", &key]));
    let mut args = vec!["backup", "--mysql", url];
    args.extend_from_slice(extra);
    let written = coffer_cmd(&args, Some(repo.path()), &[("COFFER_KEY_FILE", &key)])
        .env_remove("COFFER_PASSWORD")
        .output()
        .expect("run coffer");
    assert!(written.status.success(), "{}", stderr(&written));
    dir
}
