//! The Neon provider against a local HTTP server that answers as the Neon API v2 does (Neon itself
//! cannot be reached from the test machines): create, list, protect, reset, delete, connection
//! URIs, operation polling, a 423 retried, a 401 reported clearly; and Neon restore points.

use todo_db_testkit::harness as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use todo_db_ops::branch::neon::NeonProvider;
use todo_db_ops::branch::{CreateOptions, Provider};
use todo_db_ops::neon::{Neon, NeonConfig};

const KEY: &str = "neon-test-key-0123456789";

#[derive(Default)]
struct Mock {
    branches: Vec<Value>,
    /// operation id -> polls left before it finishes
    ops: std::collections::HashMap<String, u32>,
    /// Answer the next N mutating calls with 423 Locked.
    locked: u32,
    posts: u32,
    polls: u32,
    last_create: Value,
    last_restore: Value,
    next: u32,
}

type Shared = Arc<Mutex<Mock>>;

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The 401 answer for a request without the right key.
fn unauthorized(h: &HeaderMap) -> Option<Response> {
    if h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}")) {
        None
    } else {
        Some((StatusCode::UNAUTHORIZED, Json(json!({"code": "", "message": "authorization failed"}))).into_response())
    }
}

fn op(m: &mut Mock, action: &str) -> Value {
    m.next += 1;
    let id = format!("op-{}", m.next);
    m.ops.insert(id.clone(), 2);
    json!({"id": id, "action": action, "status": "running"})
}

fn locked(m: &mut Mock) -> Option<Response> {
    if m.locked > 0 {
        m.locked -= 1;
        return Some(
            (StatusCode::LOCKED, Json(json!({"message": "project already has running conflicting operations"})))
                .into_response(),
        );
    }
    None
}

async fn list(State(s): State<Shared>, h: HeaderMap) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    Json(json!({"branches": s.lock().unwrap().branches})).into_response()
}

async fn create(State(s): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let mut m = s.lock().unwrap();
    m.posts += 1;
    m.last_create = body.clone();
    if let Some(r) = locked(&mut m) {
        return r;
    }
    m.next += 1;
    let b = &body["branch"];
    let branch = json!({
        "id": format!("br-{}", m.next), "name": b["name"], "parent_id": b["parent_id"], "default": false,
        "protected": false, "current_state": "init", "created_at": now(), "expires_at": b["expires_at"],
    });
    m.branches.push(branch.clone());
    let ops = vec![op(&mut m, "create_branch"), op(&mut m, "start_compute")];
    Json(json!({"branch": branch, "endpoints": [{"id": "ep-1", "host": "ep-1.example.neon.tech"}], "operations": ops}))
        .into_response()
}

async fn branch_op(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let mut m = s.lock().unwrap();
    if let Some(r) = locked(&mut m) {
        return r;
    }
    let Some(i) = m.branches.iter().position(|b| b["id"] == id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "branch not found"}))).into_response();
    };
    let branch = match body {
        None => m.branches.remove(i),
        Some(Json(patch)) => {
            for (k, v) in patch["branch"].as_object().unwrap() {
                m.branches[i][k] = v.clone();
            }
            m.branches[i].clone()
        }
    };
    let ops = vec![op(&mut m, "update")];
    Json(json!({"branch": branch, "operations": ops})).into_response()
}

async fn restore(
    State(s): State<Shared>,
    h: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let mut m = s.lock().unwrap();
    m.last_restore = body.clone();
    if body["source_branch_id"].as_str().is_none() {
        return (StatusCode::BAD_REQUEST, Json(json!({"message": "source_branch_id is required"}))).into_response();
    }
    let Some(i) = m.branches.iter().position(|b| b["id"] == id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "branch not found"}))).into_response();
    };
    m.next += 1;
    let mut preserved = m.branches[i].clone();
    preserved["id"] = json!(format!("br-{}", m.next));
    preserved["name"] = body["preserve_under_name"].clone();
    m.branches.push(preserved);
    let restored = m.branches[i].clone();
    let ops = vec![op(&mut m, "restore")];
    Json(json!({"branch": restored, "operations": ops})).into_response()
}

async fn operation(State(s): State<Shared>, h: HeaderMap, Path((_, id)): Path<(String, String)>) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let mut m = s.lock().unwrap();
    m.polls += 1;
    let left = m.ops.get_mut(&id).unwrap();
    *left = left.saturating_sub(1);
    let status = if *left == 0 { "finished" } else { "running" };
    Json(json!({"operation": {"id": id, "action": "x", "status": status}})).into_response()
}

async fn connection_uri(
    State(_): State<Shared>,
    h: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(r) = unauthorized(&h) {
        return r;
    }
    let host = if q.get("pooled").map(String::as_str) == Some("true") { "ep-1-pooler" } else { "ep-1" };
    let uri = format!(
        "postgresql://{}:secret@{host}.example.neon.tech/{}?sslmode=require&channel_binding=require",
        q["role_name"], q["database_name"]
    );
    Json(json!({"uri": uri, "branch": q["branch_id"]})).into_response()
}

/// Starts the mock; returns its base URL and state.
async fn mock() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Mock::default()));
    state.lock().unwrap().branches.push(json!({
        "id": "br-main", "name": "main", "parent_id": null, "default": true, "protected": false,
        "current_state": "ready", "created_at": now(),
    }));
    let app = Router::new()
        .route("/api/v2/projects/{project}/branches", get(list).post(create))
        .route("/api/v2/projects/{project}/branches/{id}", axum::routing::delete(branch_op).patch(branch_op))
        .route("/api/v2/projects/{project}/branches/{id}/restore", post(restore))
        .route("/api/v2/projects/{project}/operations/{id}", get(operation))
        .route("/api/v2/projects/{project}/connection_uri", get(connection_uri))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v2"), state)
}

fn provider(base: &str, key: &str) -> NeonProvider {
    let config = NeonConfig {
        base_url: base.into(),
        api_key: todo_db::Secret::new(key.into()),
        project_id: "proj-test".into(),
        attempts: 5,
        retry_delay: Duration::from_millis(20),
        poll_every: Duration::from_millis(10),
        poll_for: Duration::from_secs(5),
    };
    NeonProvider::new(Neon::new(config).unwrap(), "neondb", "neondb_owner")
}

#[tokio::test]
async fn create_list_protect_reset_url_and_delete_through_the_api() {
    let (base, state) = mock().await;
    let p = provider(&base, KEY);
    let dev = p
        .create("dev", &CreateOptions { expires_in: Some(Duration::from_secs(3600)), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(dev.parent.as_deref(), Some("main"));
    assert!(dev.expires_at.is_some());
    assert!(state.lock().unwrap().polls >= 2, "the create's operations were polled until finished");
    let feat = p.create("feat", &CreateOptions { from: Some("dev".into()), ..Default::default() }).await.unwrap();
    assert_eq!(feat.parent.as_deref(), Some("dev"));
    let names: Vec<String> = p.list().await.unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["main", "dev", "feat"]);
    // Children and protection block deletes; main is the default branch and protected.
    assert!(p.delete("dev", false).await.unwrap_err().to_string().contains("feat"));
    assert!(p.delete("main", false).await.is_err());
    let protected = p.protect("feat", true).await.unwrap();
    assert!(protected.protected);
    assert!(p.delete("feat", false).await.unwrap_err().to_string().contains("protected"));
    p.protect("feat", false).await.unwrap();
    // Reset keeps the old state under a preserved name.
    p.reset("feat", &CreateOptions::default()).await.unwrap();
    assert!(p.list().await.unwrap().iter().any(|b| b.name.starts_with("feat_old_")));
    // Connection URIs, direct and pooled.
    let direct = p.url("dev", false).await.unwrap();
    let pooled = p.url("dev", true).await.unwrap();
    assert!(direct.contains("@ep-1.example") && direct.contains("/neondb"), "{direct}");
    assert!(pooled.contains("-pooler"), "{pooled}");
    p.delete("feat", false).await.unwrap();
    assert!(!p.list().await.unwrap().iter().any(|b| b.name == "feat"));
}

#[tokio::test]
async fn a_locked_project_is_retried_and_a_bad_key_is_reported_without_the_key() {
    let (base, state) = mock().await;
    state.lock().unwrap().locked = 2;
    let p = provider(&base, KEY);
    p.create("retry", &CreateOptions::default()).await.unwrap();
    assert_eq!(state.lock().unwrap().posts, 3, "two 423 answers, then success");
    // Locked for longer than the attempts: a clear error, not a hang.
    state.lock().unwrap().locked = 10;
    let err = p.create("never", &CreateOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("locked by another operation"), "{err}");
    state.lock().unwrap().locked = 0;
    // A wrong key.
    let wrong = "neon-wrong-key-abcdef";
    let err = provider(&base, wrong).list().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("rejected NEON_API_KEY") && text.contains("401"), "{text}");
    assert!(!text.contains(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uses_the_neon_provider_when_configured() {
    let (base, _state) = mock().await;
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("todo-db"))
        .env("NEON_API_KEY", KEY)
        .env("NEON_PROJECT_ID", "proj-test")
        .env("NEON_API_URL", &base)
        .env("DATABASE_URL", "postgresql://neondb_owner:pw@ep-1.example.neon.tech/neondb?sslmode=require")
        .args(["branch", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "main");
    assert_eq!(list[0]["location"], "br-main");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_make_neon_restore_points_and_restore_a_branch_to_a_time() {
    let (base, state) = mock().await;
    let t = common::TestDb::new().await;
    let cli = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("todo-db"))
            .env("NEON_API_KEY", KEY)
            .env("NEON_PROJECT_ID", "proj-test")
            .env("NEON_API_URL", &base)
            .env("DATABASE_URL", &t.url)
            .env_remove("DATABASE_DIRECT_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["backup", "create", "--neon", "--expires-in", "2d", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = state.lock().unwrap().last_create.clone();
    assert_eq!(created["branch"]["parent_id"], "br-main");
    assert!(created["branch"]["name"].as_str().unwrap().starts_with("backup-"));
    assert!(created["branch"]["expires_at"].is_string(), "a restore point expires: {created}");
    assert!(created.get("endpoints").is_none(), "a restore point needs no compute");
    let out = cli(&["backup", "restore", "--neon", "--at", "2026-11-27T10:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restore = state.lock().unwrap().last_restore.clone();
    assert_eq!(restore["source_branch_id"], "br-main");
    assert_eq!(restore["source_timestamp"], "2026-11-27T10:00:00Z");
    assert!(restore["preserve_under_name"].as_str().unwrap().starts_with("main_before_restore_"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("previous state is kept"));
    // --at is required, and a bad time names the field.
    assert!(!cli(&["backup", "restore", "--neon"]).status.success());
    let out = cli(&["backup", "restore", "--neon", "--at", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid at"));
}
