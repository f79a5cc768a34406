//! `spawn_app` and request helpers shared by every test module.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use warren_server::{AppState, Config, DatabaseConfig, PasswordParams, Secret};

/// Secret of every test server, so tests can forge tokens with the same key.
pub const TEST_JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Instantiates an `async fn(TestApp)` test for both stores.
macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    $crate::helpers::run($crate::helpers::Backend::Sqlite, super::$name).await;
                }
                #[tokio::test]
                async fn postgres() {
                    $crate::helpers::run($crate::helpers::Backend::Postgres, super::$name).await;
                }
            }
        )+
    };
}
pub(crate) use both_stores;

/// A running server and a client for it.
#[derive(Clone)]
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
}

/// What a test's world needs to be torn down.
struct World {
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    postgres_db: Option<(String, String)>,
}

fn test_config(dir: &std::path::Path, database: DatabaseConfig) -> Config {
    let mut config = Config::new(dir.to_path_buf(), database);
    config.jwt_secret = Some(Secret::new(TEST_JWT_SECRET));
    config.password = PasswordParams::insecure_fast_for_tests();
    config.max_db_connections = 4;
    config
}

/// Replaces the database name of a Postgres URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].rfind('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

async fn spawn_app(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<(TestApp, World)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database, postgres_db) = match backend {
        Backend::Sqlite => (
            DatabaseConfig::Sqlite {
                path: dir.path().join("warren.db"),
            },
            None,
        ),
        Backend::Postgres => {
            let Ok(admin_url) = std::env::var("WARREN_TEST_DATABASE_URL") else {
                eprintln!("skipping postgres variant: WARREN_TEST_DATABASE_URL is not set");
                return None;
            };
            let name = format!("warren_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to WARREN_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await
                .expect("create test database");
            admin.close().await.ok();
            (
                DatabaseConfig::Postgres {
                    url: Secret::new(with_database(&admin_url, &name)),
                },
                Some((admin_url, name)),
            )
        }
    };
    let mut config = test_config(dir.path(), database);
    tweak(&mut config);
    let state = AppState::new(config).await.expect("start app state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(warren_server::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    Some((
        TestApp {
            base: format!("http://{addr}"),
            client,
            state,
        },
        World {
            _dir: dir,
            stop,
            server,
            postgres_db,
        },
    ))
}

async fn teardown(app: TestApp, world: World) {
    let _ = world.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), world.server).await;
    app.state.store().close().await;
    if let Some((admin_url, name)) = world.postgres_db {
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to drop test database");
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop test database");
        admin.close().await.ok();
    }
}

/// Runs `test` against a fresh app on `backend`, tears the world down even if the test
/// panics, then re-raises the panic.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with(backend, |_| {}, test).await
}

/// [`run`] with a config tweak.
pub async fn run_with<F, Fut>(backend: Backend, tweak: impl FnOnce(&mut Config), test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((app, world)) = spawn_app(backend, tweak).await else {
        return;
    };
    let result = tokio::spawn(test(app.clone())).await;
    teardown(app, world).await;
    if let Err(e) = result {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
}

/// Credentials for a request.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Key(&'a str),
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    pub team_id: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn authed(&self, req: reqwest::RequestBuilder, auth: Auth<'_>) -> reqwest::RequestBuilder {
        match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Key(k) => req.header("x-api-key", k),
        }
    }

    /// Sends and returns status and JSON body (`Value::Null` when empty).
    pub async fn send(&self, req: reqwest::RequestBuilder, auth: Auth<'_>) -> (StatusCode, Value) {
        let resp = self.authed(req, auth).send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not json ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)), auth).await
    }

    pub async fn delete(&self, path: &str, auth: Auth<'_>) -> (StatusCode, Value) {
        self.send(self.client.delete(self.url(path)), auth).await
    }

    pub async fn post(&self, path: &str, body: &Value, auth: Auth<'_>) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).json(body), auth)
            .await
    }

    /// Signs up `email` (password `password123`) and returns the session.
    pub async fn signup(&self, email: &str) -> Session {
        let (status, body) = self
            .post(
                "/v1/auth/signup",
                &json!({"email": email, "password": "password123"}),
                Auth::None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        session(&body)
    }

    /// Creates an API key in the session's team; returns (id, key).
    pub async fn create_key(&self, s: &Session, name: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/v1/api-keys",
                &json!({"name": name}),
                Auth::Bearer(&s.token),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (str_at(&body, "/id"), str_at(&body, "/key"))
    }
}

/// A session from an `AuthResponse` body.
pub fn session(body: &Value) -> Session {
    Session {
        token: str_at(body, "/token"),
        user_id: str_at(body, "/user/id"),
        team_id: str_at(body, "/team/id"),
    }
}

/// The string at a JSON pointer; panics naming the pointer if absent.
pub fn str_at(body: &Value, pointer: &str) -> String {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {body}"))
        .to_owned()
}

/// Asserts the response is our error shape with this status and code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "status of {body}");
    assert_eq!(
        body.pointer("/error/code").and_then(Value::as_str),
        Some(code),
        "code in {body}"
    );
    let message = body.pointer("/error/message").and_then(Value::as_str);
    assert!(message.is_some_and(|m| !m.is_empty()), "message in {body}");
}

/// Asserts a validation error names `field`.
#[track_caller]
pub fn assert_field_error(got: &(StatusCode, Value), field: &str) {
    assert_error(got, StatusCode::BAD_REQUEST, "validation_failed");
    let fields = got.1.pointer("/error/fields").and_then(Value::as_array);
    assert!(
        fields.is_some_and(|f| f
            .iter()
            .any(|e| e["field"] == field && e["message"].as_str().is_some_and(|m| !m.is_empty()))),
        "field {field} in {}",
        got.1
    );
}
