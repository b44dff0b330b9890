//! A client for the parts of the Neon API v2 todo-db uses: branches (create, list, update,
//! delete, restore), connection URIs and operations. Calls that collide with a running operation
//! (HTTP 423) or hit the rate limit (429) are retried with backoff; the operations a call starts
//! are polled until they finish. The API key is sent only in the Authorization header and never
//! appears in errors or logs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use todo_db::error::{Error, Result};

pub const DEFAULT_BASE_URL: &str = "https://console.neon.tech/api/v2";

/// Where and how to reach the API.
#[derive(Clone)]
pub struct NeonConfig {
    pub base_url: String,
    pub api_key: todo_db::config::Secret<String>,
    pub project_id: String,
    /// Attempts for a call answered 423 or 429 (neonctl: 5, 3 s apart).
    pub attempts: u32,
    pub retry_delay: Duration,
    /// How often to poll an operation, and for how long at most.
    pub poll_every: Duration,
    pub poll_for: Duration,
}

impl NeonConfig {
    /// From `NEON_API_KEY`, `NEON_PROJECT_ID` and optionally `NEON_API_URL`; `None` unless both
    /// of the first two are set.
    pub fn from_env() -> Option<NeonConfig> {
        let get = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        Some(NeonConfig {
            base_url: get("NEON_API_URL").unwrap_or_else(|| DEFAULT_BASE_URL.into()),
            api_key: todo_db::config::Secret::new(get("NEON_API_KEY")?),
            project_id: get("NEON_PROJECT_ID")?,
            attempts: 5,
            retry_delay: Duration::from_secs(3),
            poll_every: Duration::from_millis(500),
            poll_for: Duration::from_secs(300),
        })
    }
}

/// A branch as the API reports it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct NeonBranch {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub current_state: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize)]
struct Operation {
    id: String,
    #[serde(default)]
    action: String,
    status: String,
    #[serde(default)]
    error: Option<String>,
}

pub struct Neon {
    config: NeonConfig,
    http: reqwest::Client,
}

impl Neon {
    pub fn new(config: NeonConfig) -> Result<Neon> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("todo-db/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the Neon API client: {e}")))?;
        Ok(Neon { config, http })
    }

    pub fn project(&self) -> &str {
        &self.config.project_id
    }

    fn url(&self, path: &str) -> String {
        format!("{}/projects/{}{path}", self.config.base_url.trim_end_matches('/'), self.config.project_id)
    }

    /// One API call, retried on 423 / 429; the JSON body of a success.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut attempt = 1;
        loop {
            let mut req = self
                .http
                .request(method.clone(), self.url(path))
                .bearer_auth(self.config.api_key.expose())
                .header("Accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| Error::Unavailable {
                target: "Neon API".into(),
                reason: e.without_url().to_string(),
                source: None,
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.text().await.unwrap_or_default();
            if matches!(status, 423 | 429) && attempt < self.config.attempts {
                let wait = retry_after.unwrap_or(self.config.retry_delay * attempt);
                tracing::info!(status, attempt, ?wait, "Neon API busy; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return answer(status, &text, attempt);
        }
    }

    /// Waits for the operations in a response to end; a failed one is an error.
    async fn settle(&self, response: &Value) -> Result<()> {
        let ops: Vec<Operation> = serde_json::from_value(response["operations"].clone()).unwrap_or_default();
        let deadline = std::time::Instant::now() + self.config.poll_for;
        for op in ops {
            let mut current = op;
            loop {
                match current.status.as_str() {
                    "finished" | "skipped" | "cancelled" => break,
                    "failed" => {
                        return Err(Error::validation(
                            "neon",
                            format!(
                                "operation {} ({}) failed: {}",
                                current.id,
                                current.action,
                                current.error.unwrap_or_default()
                            ),
                        ))
                    }
                    _ => {}
                }
                if std::time::Instant::now() > deadline {
                    return Err(Error::Unavailable {
                        target: "Neon API".into(),
                        reason: format!(
                            "operation {} still {} after {:?}",
                            current.id, current.status, self.config.poll_for
                        ),
                        source: None,
                    });
                }
                tokio::time::sleep(self.config.poll_every).await;
                let v = self.call(reqwest::Method::GET, &format!("/operations/{}", current.id), None).await?;
                current = serde_json::from_value(v["operation"].clone())
                    .map_err(|e| Error::Internal(format!("unexpected operation from Neon: {e}")))?;
            }
        }
        Ok(())
    }

    pub async fn list(&self) -> Result<Vec<NeonBranch>> {
        branches_of(&self.call(reqwest::Method::GET, "/branches", None).await?)
    }

    /// Creates a branch of `parent_id` (as of `at`, if given), with a read-write endpoint when
    /// `endpoint`, and waits until it is ready.
    pub async fn create(
        &self,
        name: &str,
        parent_id: &str,
        at: Option<OffsetDateTime>,
        expires_at: Option<OffsetDateTime>,
        endpoint: bool,
    ) -> Result<NeonBranch> {
        let rfc = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut branch = json!({"name": name, "parent_id": parent_id});
        if let Some(t) = at {
            branch["parent_timestamp"] = json!(rfc(t));
        }
        if let Some(t) = expires_at {
            branch["expires_at"] = json!(rfc(t));
        }
        let mut body = json!({"branch": branch});
        if endpoint {
            body["endpoints"] = json!([{"type": "read_write"}]);
        }
        let v = self.call(reqwest::Method::POST, "/branches", Some(&body)).await?;
        self.settle(&v).await?;
        branch_of(&v)
    }

    pub async fn delete(&self, id: &str) -> Result<()> {
        let v = self.call(reqwest::Method::DELETE, &format!("/branches/{id}"), None).await?;
        self.settle(&v).await
    }

    pub async fn update(&self, id: &str, patch: Value) -> Result<NeonBranch> {
        let v = self.call(reqwest::Method::PATCH, &format!("/branches/{id}"), Some(&json!({"branch": patch}))).await?;
        self.settle(&v).await?;
        branch_of(&v)
    }

    /// Restores branch `id` from `source_id` (its head, or as of `at`), keeping the old state
    /// under `preserve_under_name`.
    pub async fn restore(
        &self,
        id: &str,
        source_id: &str,
        at: Option<OffsetDateTime>,
        preserve_under_name: &str,
    ) -> Result<NeonBranch> {
        let mut body = json!({"source_branch_id": source_id, "preserve_under_name": preserve_under_name});
        if let Some(t) = at {
            body["source_timestamp"] =
                json!(t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
        }
        let v = self.call(reqwest::Method::POST, &format!("/branches/{id}/restore"), Some(&body)).await?;
        self.settle(&v).await?;
        branch_of(&v)
    }

    pub async fn connection_uri(&self, branch_id: &str, database: &str, role: &str, pooled: bool) -> Result<String> {
        let path = format!(
            "/connection_uri?branch_id={}&database_name={}&role_name={}&pooled={pooled}",
            enc(branch_id),
            enc(database),
            enc(role)
        );
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        v["uri"].as_str().map(String::from).ok_or_else(|| Error::Internal("Neon returned no connection URI".into()))
    }
}

/// What an API answer comes to, once no retry is left: a success's JSON body (`Null` when empty
/// or not JSON), or the error its status means, with the API's message (at most 200 characters).
pub fn answer(status: u16, text: &str, attempt: u32) -> Result<Value> {
    if (200..300).contains(&status) {
        return Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(text).unwrap_or(Value::Null) });
    }
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| text.to_string())
        .chars()
        .take(200)
        .collect::<String>();
    Err(match status {
        401 => Error::Config("the Neon API rejected NEON_API_KEY (401 Unauthorized): check or renew the key".into()),
        403 => Error::Config(format!("the Neon API key may not do this (403 Forbidden): {message}")),
        404 => Error::NotFound { entity: "Neon project or branch" },
        423 => Error::Unavailable {
            target: "Neon API".into(),
            reason: format!("still locked by another operation after {attempt} attempts: {message}"),
            source: None,
        },
        429 => Error::Unavailable {
            target: "Neon API".into(),
            reason: format!("rate limited after {attempt} attempts: {message}"),
            source: None,
        },
        s if s >= 500 => {
            Error::Unavailable { target: "Neon API".into(), reason: format!("HTTP {s}: {message}"), source: None }
        }
        s => Error::validation("neon", format!("HTTP {s}: {message}")),
    })
}

/// The branch of a response (`{"branch": ...}`).
pub fn branch_of(v: &Value) -> Result<NeonBranch> {
    serde_json::from_value(v["branch"].clone())
        .map_err(|e| Error::Internal(format!("unexpected branch from Neon: {e}")))
}

/// The branches of a list response (`{"branches": [...]}`).
pub fn branches_of(v: &Value) -> Result<Vec<NeonBranch>> {
    serde_json::from_value(v["branches"].clone())
        .map_err(|e| Error::Internal(format!("unexpected branches from Neon: {e}")))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
