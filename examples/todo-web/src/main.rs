//! todo-web: a small JSON service on todo-db, as a user's backend would write it.
//!
//! - `POST /signup` `{"email", "password", "display_name"}` -> 201 the user
//! - `POST /login` `{"email", "password"}` -> 200 `{"token", "expires_at"}` (a bearer token)
//! - with `Authorization: Bearer <token>`, everything under the caller's row-level-security scope:
//!   `POST /tasks` `{"title", "description"?, "priority"?}` -> 201 the task;
//!   `GET /tasks?completed=true|false` -> the first page; `POST /tasks/{id}/complete` -> the task;
//!   `POST /tasks/{id}/tags` `{"tags": [...]}` -> the task; `GET /summary` -> the summary view's row
//!
//! Errors are JSON `{"error", "field"?, "reason"?}`: 400 for bad input (naming the field), 401 for
//! bad credentials or a missing or unknown token, 404 for unknown rows, 409 for a conflict, 423 for
//! a locked account, 503 when the database is unavailable.
//!
//! Configuration: todo-db's (`DATABASE_URL`, required, and `APP_DATABASE_URL` for the login user
//! scopes use; see its README) and `TODO_WEB_LISTEN` (default 127.0.0.1:3000). On the embedded
//! local cluster: `DATABASE_URL=$(todo-db local url) APP_DATABASE_URL=$(todo-db local url --app)`.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use todo_db::model::{NewTask, NewUser, Priority, TagName, TaskFilter, TaskId};
use todo_db::security::{self, tokens, ClientInfo, LockoutPolicy, Password};
use todo_db::views::{self, ReportOptions, TaskSummary};
use todo_db::{Db, Error, Settings, UserScope};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = Db::connect(&Settings::from_env()?).await?;
    let listen = std::env::var("TODO_WEB_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let app = Router::new()
        .route("/signup", post(signup))
        .route("/login", post(login))
        .route("/tasks", post(create_task).get(list_tasks))
        .route("/tasks/{id}/complete", post(complete_task))
        .route("/tasks/{id}/tags", post(tag_task))
        .route("/summary", get(summary))
        .with_state(db.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("todo-web listening on {}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); }).await?;
    db.close();
    Ok(())
}

/// An error as the service answers it.
struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self.0 {
            Error::Validation { field, reason } => {
                (StatusCode::BAD_REQUEST, json!({"error": "invalid input", "field": field, "reason": reason}))
            }
            Error::NotFound { entity } => (StatusCode::NOT_FOUND, json!({"error": format!("no such {entity}")})),
            Error::Conflict { field, .. } => (StatusCode::CONFLICT, json!({"error": "conflict", "field": field})),
            Error::InvalidCredentials | Error::Unauthorized => {
                (StatusCode::UNAUTHORIZED, json!({"error": "invalid credentials"}))
            }
            Error::Locked { .. } => (StatusCode::LOCKED, json!({"error": "account locked; try again later"})),
            e if e.is_retryable() => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "try again"})),
            e => {
                eprintln!("todo-web: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error"}))
            }
        };
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The request body as `T`; a body that is not JSON or misses a field is a 400 naming it.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(raw).map_err(|e| ApiError(Error::validation("body", e.to_string())))
}

fn client(headers: &HeaderMap) -> ClientInfo {
    let user_agent = headers.get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_string);
    ClientInfo { addr: None, user_agent }
}

/// The caller's scope, from its bearer token.
async fn caller(db: &Db, headers: &HeaderMap) -> Result<UserScope, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError(Error::Unauthorized))?;
    Ok(tokens::authenticate(db, token.trim(), &client(headers)).await?)
}

#[derive(Deserialize)]
struct SignUp {
    email: String,
    password: String,
    display_name: String,
}

async fn signup(State(db): State<Db>, headers: HeaderMap, raw: axum::body::Bytes) -> ApiResult {
    let req: SignUp = body(&raw)?;
    // Everything is checked before anything is written.
    Password::parse(&req.password)?;
    let new = NewUser::new(&req.email, &req.display_name)?;
    let user = db.admin().users().create(&new).await?;
    security::set_password(&db.user(user.id), &req.password, &client(&headers)).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": user.id, "email": user.email}))).into_response())
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

async fn login(State(db): State<Db>, headers: HeaderMap, raw: axum::body::Bytes) -> ApiResult {
    let req: Login = body(&raw)?;
    let who = client(&headers);
    let user = security::login(&db, &req.email, &req.password, &who, &LockoutPolicy::default()).await?;
    let issued = tokens::issue(&db.user(user), "todo-web session", Duration::from_secs(3600), &who).await?;
    let expires_at = issued.expires_at.format(&Rfc3339).unwrap_or_default();
    Ok(Json(json!({"token": issued.token.expose(), "expires_at": expires_at})).into_response())
}

#[derive(Deserialize)]
struct CreateTask {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    priority: Option<String>,
}

async fn create_task(State(db): State<Db>, headers: HeaderMap, raw: axum::body::Bytes) -> ApiResult {
    let me = caller(&db, &headers).await?;
    let req: CreateTask = body(&raw)?;
    let mut new = NewTask::new(&req.title)?;
    if let Some(d) = &req.description {
        new = new.description(d)?;
    }
    if let Some(p) = &req.priority {
        new = new.priority(p.parse::<Priority>()?);
    }
    let task = me.tasks().create(&new).await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    completed: Option<bool>,
}

async fn list_tasks(State(db): State<Db>, headers: HeaderMap, Query(q): Query<ListQuery>) -> ApiResult {
    let me = caller(&db, &headers).await?;
    let page = me.tasks().list(&TaskFilter { completed: q.completed, ..Default::default() }).await?;
    Ok(Json(page).into_response())
}

async fn complete_task(State(db): State<Db>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let me = caller(&db, &headers).await?;
    let task = me.tasks().complete(TaskId::parse(&id)?).await?;
    Ok(Json(task).into_response())
}

#[derive(Deserialize)]
struct Tags {
    tags: Vec<String>,
}

async fn tag_task(State(db): State<Db>, headers: HeaderMap, Path(id): Path<String>, raw: axum::body::Bytes) -> ApiResult {
    let me = caller(&db, &headers).await?;
    let id = TaskId::parse(&id)?;
    let req: Tags = body(&raw)?;
    let names = req.tags.iter().map(|t| TagName::parse(t)).collect::<todo_db::Result<Vec<_>>>()?;
    let task = me.tasks().tag(id, &names).await?;
    Ok(Json(task).into_response())
}

async fn summary(State(db): State<Db>, headers: HeaderMap) -> ApiResult {
    let me = caller(&db, &headers).await?;
    let rows = views::read::<TaskSummary>(&me, &ReportOptions::default()).await?;
    let row: Value = match rows.into_iter().next() {
        Some(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        None => json!({"total_tasks": 0, "completed_tasks": 0, "pending_tasks": 0, "overdue_tasks": 0, "due_today": 0}),
    };
    Ok(Json(row).into_response())
}
