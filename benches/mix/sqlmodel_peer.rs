//! The SQLModel + asyncpg side: benches/peers/sqlmodel_mix.py in a Python process of its own,
//! its virtual environment made (once, outside the clone) by scripts/install-peers, driven one
//! JSON command per line over stdin and stdout. The URLs go to it in its environment, never on its
//! command line.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use serde_json::{json, Value};

/// One run of the mix in the peer.
pub struct Run {
    pub rate: f64,
    pub latencies: Vec<Vec<f64>>,
    /// CPU seconds the peer's process spent over the run.
    pub cpu: f64,
}

pub struct Peer {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl Peer {
    /// Installs the peer when needed and starts it against `url` (the login user scopes use) and
    /// `slow_url` (the same through the latency proxy); prints the versions it runs.
    pub fn start(url: &str, slow_url: &str) -> anyhow::Result<Peer> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let install = Command::new(root.join("scripts/install-peers")).stderr(Stdio::inherit()).output()?;
        anyhow::ensure!(install.status.success(), "scripts/install-peers failed (its output is above)");
        let python = String::from_utf8(install.stdout)?.lines().last().unwrap_or_default().trim().to_string();
        let mut child = Command::new(&python)
            .arg(root.join("benches/peers/sqlmodel_mix.py"))
            .env("PEER_URL", url)
            .env("PEER_SLOW_URL", slow_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("could not start the SQLModel peer with {python}: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("the SQLModel peer has no stdin or stdout");
        };
        let peer = Peer { child, io: Mutex::new((stdin, BufReader::new(stdout))) };
        let ready = peer.read()?;
        println!("SQLModel side: {}", ready["versions"]);
        Ok(peer)
    }

    fn read(&self) -> anyhow::Result<Value> {
        let mut line = String::new();
        self.io.lock().expect("not poisoned").1.read_line(&mut line)?;
        anyhow::ensure!(!line.is_empty(), "the SQLModel peer exited (its error is above)");
        let v: Value = serde_json::from_str(&line)?;
        if let Some(e) = v.get("error") {
            anyhow::bail!("the SQLModel peer: {e}");
        }
        Ok(v)
    }

    fn call(&self, command: Value) -> anyhow::Result<Value> {
        tokio::task::block_in_place(|| {
            {
                let mut io = self.io.lock().expect("not poisoned");
                writeln!(io.0, "{command}")?;
                io.0.flush()?;
            }
            self.read()
        })
    }

    fn mix(&self, clients: u64, seconds: u64, via: &str) -> anyhow::Result<Run> {
        let v = self.call(json!({"cmd": "mix", "clients": clients, "seconds": seconds, "via": via}))?;
        let number = |k: &str| v[k].as_f64().ok_or_else(|| anyhow::anyhow!("the SQLModel peer's answer has no {k}"));
        let latencies = v["latencies"]
            .as_array()
            .map(|ops| {
                ops.iter().map(|l| l.as_array().into_iter().flatten().filter_map(Value::as_f64).collect()).collect()
            })
            .unwrap_or_default();
        Ok(Run { rate: number("ops")? / number("seconds")?, latencies, cpu: number("cpu")? })
    }

    /// The mix at `clients` for `seconds`, direct.
    pub fn run(&self, clients: u64, seconds: u64) -> anyhow::Result<Run> {
        self.mix(clients, seconds, "direct")
    }

    /// The mix through the latency proxy.
    pub fn run_via_proxy(&self, clients: u64, seconds: u64) -> anyhow::Result<Run> {
        self.mix(clients, seconds, "proxy")
    }

    /// Operation `op` alone, `samples` times direct and through the proxy, alternated: the two
    /// medians in ms.
    pub fn trips(&self, op: usize, samples: usize) -> anyhow::Result<[f64; 2]> {
        let v = self.call(json!({"cmd": "trips", "op": op, "samples": samples}))?;
        match (v["p50"][0].as_f64(), v["p50"][1].as_f64()) {
            (Some(direct), Some(proxy)) => Ok([direct, proxy]),
            _ => anyhow::bail!("the SQLModel peer's answer has no p50: {v}"),
        }
    }

    /// `user`'s first page of open tasks, as (task, owner) ids.
    pub fn list(&self, user: uuid::Uuid) -> anyhow::Result<Vec<(uuid::Uuid, uuid::Uuid)>> {
        let v = self.call(json!({"cmd": "list", "user": user.to_string()}))?;
        let ids = |t: &Value, i: usize| t[i].as_str().and_then(|s| s.parse().ok());
        v["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| ids(t, 0).zip(ids(t, 1)).ok_or_else(|| anyhow::anyhow!("the SQLModel peer's list: {t}")))
            .collect()
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        self.call(json!({"cmd": "stop"}))?;
        self.child.wait()?;
        Ok(())
    }
}
