//! Test harness: real `kvnode` processes on loopback with free ports and
//! temporary data directories, and a tiny blocking HTTP/1.1 client (so a
//! test can also send what no well-behaved client would).
#![allow(dead_code)]

use bytes::BytesMut;
use kvnode::frame::{FrameCodec, PeerFrame};
use paxos_core::proto::{Ballot, Body, Heartbeat, Message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kvnode");

/// `n` distinct free loopback ports (all held while choosing, then freed).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `host:port` a redirect's `Location` points at.
    pub fn redirect_target(&self) -> String {
        let loc = self.header("location").unwrap_or_default();
        let auth = loc.trim_start_matches("http://");
        auth.split('/').next().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends raw bytes as a request and reads the whole answer (the request
/// asks the server to close the connection).
pub fn raw_http(addr: &str, request: &[u8]) -> std::io::Result<Resp> {
    let sock: SocketAddr = addr.parse().map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: buf[split + 4..].to_vec(),
    })
}

/// One request.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_http(addr, &bytes)
}

pub fn get(addr: &str, path: &str) -> std::io::Result<Resp> {
    http(addr, "GET", path, &[], b"")
}

/// What a patient client does: follow redirects, move on from members that
/// fail or know no leader, retry (same headers, so the same session) until
/// `deadline`. Returns the first answer that is neither.
pub fn call(
    endpoints: &[String],
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    deadline: Instant,
) -> Option<Resp> {
    let mut i = 0;
    let mut target = endpoints[0].clone();
    while Instant::now() < deadline {
        match http(&target, method, path, headers, body) {
            Ok(r) if r.status == 307 => {
                target = r.redirect_target();
                continue;
            }
            Ok(r) if r.status != 503 => return Some(r),
            _ => {}
        }
        i += 1;
        target = endpoints[i % endpoints.len()].clone();
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A member process.
pub struct Node {
    pub id: u64,
    pub peer: String,
    pub http: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// Set for a node that joined a running cluster: its `--peers`.
    pub joined: Option<String>,
}

/// A cluster of `kvnode serve` processes; killed when dropped.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub spec: String,
    pub extra_args: Vec<String>,
    /// Peers speak mutual TLS with certificates from `certs_dir()`.
    pub tls: bool,
}

/// The admin token every test cluster is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

impl Cluster {
    /// Starts `n` members (with `extra` arguments each), as `kvnode
    /// cluster` does: peer mutual TLS, and the admin token.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with(n, extra, true)
    }

    /// Starts `n` members whose peer transport is plaintext.
    pub fn start_plain(n: usize, extra: &[&str]) -> Cluster {
        Self::start_with(n, extra, false)
    }

    /// Where the cluster's CA and member certificates are.
    pub fn certs_dir(&self) -> PathBuf {
        self.tmp.path().join("certs")
    }

    /// The admin token's file.
    pub fn token_file(&self) -> PathBuf {
        self.tmp.path().join("admin.token")
    }

    /// Makes certificates for `ids` (the CA once, then reused).
    pub fn make_certs(&self, ids: &[u64]) {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        let out = Command::new(BIN)
            .arg("certs")
            .arg("--out")
            .arg(self.certs_dir())
            .args(["--ids", &ids.join(",")])
            .output()
            .expect("run kvnode certs");
        assert!(out.status.success(), "kvnode certs: {out:?}");
    }

    fn start_with(n: usize, extra: &[&str], tls: bool) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2 * n);
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                id: i as u64 + 1,
                peer: format!("127.0.0.1:{}", ports[2 * i]),
                http: format!("127.0.0.1:{}", ports[2 * i + 1]),
                dir: tmp.path().join(format!("node-{}", i + 1)),
                child: None,
                joined: None,
            })
            .collect();
        let spec = nodes
            .iter()
            .map(|n| format!("{}={}/{}", n.id, n.peer, n.http))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            tmp,
            nodes,
            spec,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            tls,
        };
        std::fs::write(c.token_file(), ADMIN_TOKEN).expect("token file");
        if tls {
            let ids: Vec<u64> = c.nodes.iter().map(|n| n.id).collect();
            c.make_certs(&ids);
        }
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("node-{}.log", i + 1))
    }

    /// (Re)starts member `i` from its data directory.
    pub fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        let n = &self.nodes[i];
        let mut join: Vec<String> = Vec::new();
        if n.joined.is_some() {
            join.push("--join".into());
        }
        join.push("--admin-token-file".into());
        join.push(self.token_file().display().to_string());
        if self.tls {
            let dir = self.certs_dir();
            for (flag, file) in [
                ("--peer-cert", format!("node-{}.crt", n.id)),
                ("--peer-key", format!("node-{}.key", n.id)),
                ("--peer-ca", "ca.crt".to_owned()),
            ] {
                join.push(flag.into());
                join.push(dir.join(file).display().to_string());
            }
        }
        let child = Command::new(BIN)
            .arg("serve")
            .args([
                "--id",
                &n.id.to_string(),
                "--peers",
                n.joined.as_ref().unwrap_or(&self.spec),
            ])
            .args(join)
            .arg("--data-dir")
            .arg(&n.dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn kvnode serve");
        self.nodes[i].child = Some(child);
        // An API over TLS is ready once it listens; a plain one once it
        // answers.
        let tls_api = self.extra_args.iter().any(|a| a == "--cert");
        wait_until(Duration::from_secs(10), "the HTTP API to answer", || {
            if tls_api {
                TcpStream::connect(&self.nodes[i].http).ok().map(|_| ())
            } else {
                get(&self.nodes[i].http, "/status").ok().map(|_| ())
            }
        });
    }

    /// Starts a new, empty node with `serve --join` (its `--peers`: every
    /// member so far and itself); returns its index. The cluster still has
    /// to add it.
    pub fn join(&mut self) -> usize {
        let ports = free_ports(2);
        let i = self.nodes.len();
        let id = i as u64 + 1;
        let (peer, http) = (
            format!("127.0.0.1:{}", ports[0]),
            format!("127.0.0.1:{}", ports[1]),
        );
        let spec = format!("{},{id}={peer}/{http}", self.spec);
        self.nodes.push(Node {
            id,
            peer,
            http,
            dir: self.tmp.path().join(format!("node-{id}")),
            child: None,
            joined: Some(spec),
        });
        if self.tls {
            self.make_certs(&[id]);
        }
        self.spawn(i);
        i
    }

    /// kill -9.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.http.clone()).collect()
    }

    pub fn live_endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.http.clone())
            .collect()
    }

    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let r = get(&self.nodes[i].http, "/status").ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// The index of the member every live member agrees leads.
    pub fn leader(&self) -> usize {
        wait_until(Duration::from_secs(15), "a leader", || {
            let live: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].child.is_some())
                .collect();
            let leaders: Vec<u64> = live
                .iter()
                .filter_map(|&i| self.status(i))
                .filter_map(|s| s["leader"].as_u64())
                .collect();
            let first = *leaders.first()?;
            let i = self.nodes.iter().position(|n| n.id == first)?;
            let leads = self.status(i)?["role"] == "Leader";
            (leaders.len() == live.len() && leaders.iter().all(|&l| l == first) && leads)
                .then_some(i)
        })
    }

    /// Runs a client command against `endpoints` (all members if empty).
    pub fn cli(&self, args: &[&str], endpoints: &[String]) -> Output {
        let eps = if endpoints.is_empty() {
            self.endpoints().join(",")
        } else {
            endpoints.join(",")
        };
        let mut cmd = Command::new(BIN);
        cmd.args(args).args(["--endpoints", &eps]);
        // Every client command but the load generator takes the token.
        if args.first() != Some(&"bench") {
            cmd.arg("--token-file").arg(self.token_file());
        }
        cmd.output().expect("run kvnode")
    }

    pub fn metrics(&self, i: usize) -> String {
        get(&self.nodes[i].http, "/metrics")
            .expect("metrics")
            .text()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- node {} log (last lines) ---", i + 1);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// Polls `f` until it returns `Some`, or panics after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A metric's value in Prometheus text (the first line starting with `name`).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// A peer frame of `cluster_id` carrying a heartbeat from `from` to `to`
/// in a ballot no one has started.
pub fn frame(cluster_id: u64, from: u64, to: u64) -> Vec<u8> {
    let body = Body::Heartbeat(Heartbeat {
        ballot: Some(Ballot::new(99, from)),
        committed: 1_000_000,
        seq: 1,
    });
    let mut buf = BytesMut::new();
    FrameCodec::new(1 << 20)
        .encode(
            &PeerFrame {
                cluster_id,
                message: Some(Message::new(from, to, body)),
            },
            &mut buf,
        )
        .expect("encode");
    buf.to_vec()
}

/// Sends `bytes` to a peer port; returns whether the node closed the
/// connection (within a short wait).
pub fn send_peer(addr: &str, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("write");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}
