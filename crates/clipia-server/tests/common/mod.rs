//! The test harness: starts the real `clipia-server` binary on port 0 with its own store, and
//! talks to it over real HTTP. Helpers are named after the API's endpoints.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clipia-server");
/// Connections each test server (and admin command) opens to PostgreSQL at most.
const PG_POOL_CONNECTIONS: &str = "4";
/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which store a test server runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    /// A PostgreSQL URL whose search_path points at a schema of this test's own.
    Postgres(String),
}

/// The stores every conformance test runs on: SQLite always, PostgreSQL when `DATABASE_URL`
/// is set (otherwise the reason is printed once per test).
pub fn stores() -> Vec<StoreKind> {
    let mut kinds = vec![StoreKind::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            if let Some(pg) = postgres_store(&url) {
                kinds.push(pg);
            }
        }
        _ => eprintln!("skipping the PostgreSQL half: DATABASE_URL is not set"),
    }
    kinds
}

/// A fresh PostgreSQL schema for one test server: the URL's `search_path` names a schema of its
/// own (the server creates it and migrates it on start), and its `application_name` is that
/// schema's name too, so a test can find — and terminate — exactly its own connections.
fn postgres_store(url: &str) -> Option<StoreKind> {
    let schema = format!("clipia_t_{}", uuid::Uuid::new_v4().simple());
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(StoreKind::Postgres(format!("{url}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")))
}

/// The schema (and application name) of a PostgreSQL store, for tests that inspect it.
pub fn postgres_schema(store: &StoreKind) -> Option<String> {
    match store {
        StoreKind::Postgres(url) => url.rsplit("application_name=").next().map(|s| s.split('&').next().unwrap_or(s).to_owned()),
        StoreKind::Sqlite => None,
    }
}

pub struct ServerBuilder {
    store: StoreKind,
    args: Vec<String>,
}

impl ServerBuilder {
    pub fn store(mut self, store: StoreKind) -> Self {
        self.store = store;
        self
    }

    /// An extra `serve` option, e.g. `.arg("--lease-ms", "500")`.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push(name.to_owned());
        self.args.push(value.to_owned());
        self
    }

    pub fn flag(mut self, name: &str) -> Self {
        self.args.push(name.to_owned());
        self
    }

    pub async fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = TestServer {
            base: String::new(),
            live_key: String::new(),
            test_key: String::new(),
            data_dir: dir.path().to_owned(),
            _dir: dir,
            store: self.store,
            args: self.args,
            child: None,
            http: reqwest::Client::builder().timeout(Duration::from_secs(90)).build().unwrap(),
        };
        server.spawn(true);
        server
    }
}

pub struct TestServer {
    pub base: String,
    /// The bootstrap keys of account `default` (all scopes).
    pub live_key: String,
    pub test_key: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    pub store: StoreKind,
    args: Vec<String>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder { store: StoreKind::Sqlite, args: Vec::new() }
    }

    pub async fn start() -> TestServer {
        Self::builder().start().await
    }

    pub async fn start_on(store: &StoreKind) -> TestServer {
        Self::builder().store(store.clone()).start().await
    }

    /// The store options every command of this server takes.
    pub fn store_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.data_dir.display().to_string()];
        if let StoreKind::Postgres(url) = &self.store {
            args.push("--database-url".to_owned());
            args.push(url.clone());
            // Many test servers share one PostgreSQL (100 connections by default).
            args.push("--database-pool".to_owned());
            args.push(PG_POOL_CONNECTIONS.to_owned());
        }
        args
    }

    fn spawn(&mut self, first: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .expect("log file");
        let mut child = Command::new(BIN)
            .env_remove("DATABASE_URL") // the store is chosen by store_args alone
            .arg("serve")
            .args(self.store_args())
            .args(["--bind", "127.0.0.1:0"])
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start clipia-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut text = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                text.push_str(&line);
                if line.starts_with("Clipia listening on ") {
                    let _ = tx.send(text.clone());
                }
                line.clear();
            }
        });
        let out = rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
            panic!("server did not start; its log:\n{log}")
        });
        let addr = out.lines().find_map(|l| l.strip_prefix("Clipia listening on ")).unwrap().trim();
        self.base = addr.to_owned();
        if first {
            let find = |prefix: &str| {
                out.split_whitespace().find(|w| w.starts_with(prefix)).map(str::to_owned).expect("bootstrap key printed")
            };
            self.live_key = find("clipia_live_");
            self.test_key = find("clipia_test_");
        }
        self.child = Some(child);
    }

    /// kill -9: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit; returns whether it exited with success.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the server again on the same store (a new port).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn(false);
    }

    /// Restarts with the `--builtin-runners` option removed (so the node runs jobs again).
    pub async fn restart_with_runners(&mut self) {
        if let Some(i) = self.args.iter().position(|a| a == "--builtin-runners") {
            self.args.drain(i..i + 2);
        }
        self.restart().await;
    }

    /// Runs an admin command (`keys create …`) against this server's store; returns stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).env_remove("DATABASE_URL").args(args).args(self.store_args()).output().expect("run admin command");
        assert!(out.status.success(), "admin {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs an admin command expected to fail; returns stderr.
    pub fn admin_fails(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).env_remove("DATABASE_URL").args(args).args(self.store_args()).output().expect("run admin command");
        assert!(!out.status.success(), "admin {args:?} should have failed");
        String::from_utf8(out.stderr).unwrap()
    }

    /// A client with this key.
    pub fn api(&self, key: &str) -> Api {
        Api { http: self.http.clone(), base: self.base.clone(), key: key.to_owned() }
    }

    pub fn live(&self) -> Api {
        self.api(&self.live_key)
    }

    pub fn test(&self) -> Api {
        self.api(&self.test_key)
    }

    /// A new account with `credits` and a live and a test key: (live, test).
    pub fn new_account(&self, name: &str, credits: u64) -> (Api, Api) {
        self.admin(&["accounts", "create", "--name", name]);
        if credits > 0 {
            self.admin(&["credits", "grant", "--account", name, "--amount", &credits.to_string()]);
        }
        let live = self.admin(&["keys", "create", "--account", name, "--mode", "live"]);
        let test = self.admin(&["keys", "create", "--account", name, "--mode", "test"]);
        (self.api(live.trim()), self.api(test.trim()))
    }

    pub fn data_path(&self, rel: &str) -> PathBuf {
        self.data_dir.join(rel)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP answer: status, headers, JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the SPEC §3 envelope with this status and code; returns the error object.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "expected {status} {code}, got {}: {}", self.status, self.text);
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.text);
        let e = &self.body["error"];
        assert_eq!(e["code"], code, "{}", self.text);
        assert!(e["type"].is_string() && e["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
        assert_eq!(e["trace_id"].as_str(), self.header("x-clipia-trace-id"), "trace id in body and header");
        e
    }

    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!((200..300).contains(&self.status), "expected success, got {}: {}", self.status, self.text);
        &self.body
    }
}

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("HTTP request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path)).header("Authorization", format!("Key {}", self.key))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.http.post(self.url(path)).header("Authorization", format!("Key {}", self.key)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path)).header("Authorization", format!("Key {}", self.key))).await
    }

    /// `POST /v1/models/{model}` with `{"input": input}`.
    pub async fn submit(&self, model: &str, input: Value) -> Resp {
        self.post(&format!("/v1/models/{model}"), serde_json::json!({ "input": input })).await
    }

    pub async fn submit_with_key(&self, model: &str, body: Value, idempotency_key: &str) -> Resp {
        let req = self
            .http
            .post(self.url(&format!("/v1/models/{model}")))
            .header("Authorization", format!("Key {}", self.key))
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        self.send(req).await
    }

    /// Opens a Server-Sent Events stream at `path`; panics unless it is one (200, text/event-stream).
    pub async fn open_stream(&self, path: &str) -> reqwest::Response {
        let response = self.http.get(self.url(path)).header("Authorization", format!("Key {}", self.key)).send().await.expect("HTTP request");
        assert_eq!(response.status(), 200, "{path} opens");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"), "{path} is an event stream");
        response
    }

    pub async fn status(&self, id: &str) -> Resp {
        self.get(&format!("/v1/requests/{id}/status")).await
    }

    pub async fn result(&self, id: &str) -> Resp {
        self.get(&format!("/v1/requests/{id}")).await
    }

    /// Long-polls the status until the request is terminal (or `timeout` passes), then returns
    /// the result.
    pub async fn wait_done(&self, id: &str, timeout: Duration) -> Resp {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let s = self.get(&format!("/v1/requests/{id}/status?wait=5")).await;
            let status = s.body["status"].as_str().unwrap_or_default().to_owned();
            if ["COMPLETED", "FAILED", "CANCELED"].contains(&status.as_str()) {
                break;
            }
        }
        self.result(id).await
    }

    pub async fn balance(&self) -> (u64, u64) {
        let a = self.get("/v1/account").await;
        (a.ok()["balance"]["credits"].as_u64().unwrap(), a.body["balance"]["reserved"].as_u64().unwrap())
    }
}

/// Polls `check` until it holds or `timeout` passes; for states reached by background work.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn read_dir_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}
