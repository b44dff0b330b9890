//! `serve`: the HTTP service for orchestrators and Prometheus (`/livez`, `/readyz`, `/health`,
//! `/metrics`), and the audit log's scheduled sealing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use todo_db::config::parse_duration;
use todo_db::{Db, Settings};
use todo_db_ops::health::{self, Status, Thresholds};

use super::admin_url;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", env = "TODO_DB_LISTEN")]
    listen: SocketAddr,
    /// How long /readyz waits for the database before answering 503.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration)]
    ready_deadline: Duration,
    /// Seal the audit log this often (0 disables).
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration, env = "TODO_DB_SEAL_EVERY")]
    seal_every: Duration,
    /// Reuse a health report for this long: `/health` and `/metrics` requests within it (and all
    /// those that arrive while a run is in progress) share one run of the checks.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = parse_duration, env = "TODO_DB_REPORT_MAX_AGE")]
    report_max_age: Duration,
}

struct AppState {
    db: Db,
    health: health::Shared,
    ready_deadline: Duration,
    metrics: Mutex<HttpMetrics>,
}

/// Request counts and latency histograms by route and status code.
#[derive(Default)]
struct HttpMetrics {
    /// (route, code) -> count
    requests: BTreeMap<(&'static str, u16), u64>,
    /// route -> (bucket counts, sum of seconds, count)
    latency: BTreeMap<&'static str, ([u64; BUCKETS.len()], f64, u64)>,
}

const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const ROUTES: [&str; 4] = ["/livez", "/readyz", "/health", "/metrics"];

impl ServeArgs {
    pub async fn run(self, settings: &Settings) -> anyhow::Result<ExitCode> {
        let url = admin_url(settings).await?;
        let db = Db::connect_url(&url, settings).await?;
        let state = Arc::new(AppState {
            db: db.clone(),
            health: health::Shared::new(db.clone(), Thresholds::from_env()?, self.report_max_age),
            ready_deadline: self.ready_deadline,
            metrics: Mutex::default(),
        });
        if !self.seal_every.is_zero() {
            tokio::spawn(seal_on_schedule(db.clone(), self.seal_every));
        }
        let app = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/health", get(health_report))
            .route("/metrics", get(metrics))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        let addr = listener.local_addr()?;
        println!("todo-db serving on http://{addr} (database {})", db.target());
        tracing::info!(%addr, database = %db.target(), "serving");
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        tracing::info!("shut down");
        db.close();
        Ok(ExitCode::SUCCESS)
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn seal_on_schedule(db: Db, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match todo_db::audit::seal(&db, Duration::from_secs(30)).await {
            Ok(Some(seal)) => tracing::info!(seal = seal.id, entries = seal.entries, "sealed the audit log"),
            Ok(None) => tracing::debug!("audit log: nothing new to seal"),
            Err(e) => tracing::warn!(error = %e, "scheduled audit seal failed"),
        }
    }
}

/// Counts and times every request by route.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = ROUTES.iter().copied().find(|r| *r == request.uri().path()).unwrap_or("other");
    let started = Instant::now();
    let response = next.run(request).await;
    let secs = started.elapsed().as_secs_f64();
    let mut m = state.metrics.lock().expect("not poisoned");
    *m.requests.entry((route, response.status().as_u16())).or_default() += 1;
    let (buckets, sum, count) = m.latency.entry(route).or_insert(([0; BUCKETS.len()], 0.0, 0));
    for (i, le) in BUCKETS.iter().enumerate() {
        if secs <= *le {
            buckets[i] += 1;
        }
    }
    *sum += secs;
    *count += 1;
    response
}

/// The process is alive. Never touches the database.
async fn livez() -> &'static str {
    "ok\n"
}

/// The database answers within the deadline and its migrations are current.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let check = async {
        let status = state.db.admin().with_connection(async |conn| todo_db::schema::status(conn).await).await?;
        let behind: Vec<String> = status
            .iter()
            .filter(|s| s.state != todo_db::schema::MigrationState::Applied)
            .map(|s| format!("{:04}_{} {:?}", s.version, s.name, s.state).to_lowercase())
            .collect();
        Ok::<_, todo_db::Error>(behind)
    };
    let (code, body) = match tokio::time::timeout(state.ready_deadline, check).await {
        Ok(Ok(behind)) if behind.is_empty() => (StatusCode::OK, serde_json::json!({"ready": true})),
        Ok(Ok(behind)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": format!("migrations not current: {}", behind.join(", "))}),
        ),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"ready": false, "reason": e.to_string()})),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": format!("database did not answer within {:?}", state.ready_deadline)}),
        ),
    };
    (code, Json(body)).into_response()
}

/// The full report as JSON: 200 unless a check is critical (503).
async fn health_report(State(state): State<Arc<AppState>>) -> Response {
    match state.health.report().await {
        Ok((report, _)) => {
            let code = if report.status == Status::Critical { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
            (code, Json(&*report)).into_response()
        }
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": e.to_string()}))).into_response()
        }
    }
}

/// Prometheus text exposition format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    if let Ok((r, age)) = state.health.report().await {
        let _ =
            writeln!(out, "# HELP todo_db_health_status Worst check status: 0 ok, 1 warning, 2 critical, 3 unknown.");
        let _ = writeln!(out, "# TYPE todo_db_health_status gauge");
        let _ = writeln!(out, "todo_db_health_status {}", r.status.exit_code());
        let _ = writeln!(out, "# HELP todo_db_check_status Check status: 0 ok, 1 warning, 2 critical, 3 unknown.");
        let _ = writeln!(out, "# TYPE todo_db_check_status gauge");
        for c in &r.checks {
            let _ = writeln!(out, "todo_db_check_status{{check=\"{}\"}} {}", c.name, c.status.exit_code());
        }
        let _ = writeln!(out, "# HELP todo_db_check_value The value each check measured, in its unit.");
        let _ = writeln!(out, "# TYPE todo_db_check_value gauge");
        for c in &r.checks {
            if let Some(v) = c.value {
                let _ = writeln!(out, "todo_db_check_value{{check=\"{}\",unit=\"{}\"}} {}", c.name, c.unit, number(v));
            }
        }
        let _ = writeln!(out, "# HELP todo_db_check_duration_seconds How long each check took.");
        let _ = writeln!(out, "# TYPE todo_db_check_duration_seconds gauge");
        for c in &r.checks {
            let _ =
                writeln!(out, "todo_db_check_duration_seconds{{check=\"{}\"}} {}", c.name, number(c.millis / 1000.0));
        }
        let _ =
            writeln!(out, "# HELP todo_db_health_report_age_seconds How long ago the checks behind this report ran.");
        let _ = writeln!(out, "# TYPE todo_db_health_report_age_seconds gauge");
        let _ = writeln!(out, "todo_db_health_report_age_seconds {}", number(age.as_secs_f64()));
    }
    let _ = writeln!(
        out,
        "# HELP todo_db_health_runs_total Runs of the health checks (shared by the requests they answered)."
    );
    let _ = writeln!(out, "# TYPE todo_db_health_runs_total counter");
    let _ = writeln!(out, "todo_db_health_runs_total {}", state.health.runs());
    let p = state.db.pool_status();
    let _ = writeln!(out, "# HELP todo_db_pool_connections Pool connections by state.");
    let _ = writeln!(out, "# TYPE todo_db_pool_connections gauge");
    for (label, v) in [("open", p.open), ("idle", p.idle), ("waiting", p.waiting), ("max", p.max_size)] {
        let _ = writeln!(out, "todo_db_pool_connections{{state=\"{label}\"}} {v}");
    }
    let m = state.metrics.lock().expect("not poisoned");
    let _ = writeln!(out, "# HELP todo_db_http_requests_total HTTP requests by route and status code.");
    let _ = writeln!(out, "# TYPE todo_db_http_requests_total counter");
    for ((route, code), n) in &m.requests {
        let _ = writeln!(out, "todo_db_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP todo_db_http_request_duration_seconds HTTP request latency by route.");
    let _ = writeln!(out, "# TYPE todo_db_http_request_duration_seconds histogram");
    for (route, (buckets, sum, count)) in &m.latency {
        for (le, n) in BUCKETS.iter().zip(buckets) {
            let _ = writeln!(out, "todo_db_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "todo_db_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "todo_db_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", number(*sum));
        let _ = writeln!(out, "todo_db_http_request_duration_seconds_count{{route=\"{route}\"}} {count}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}
