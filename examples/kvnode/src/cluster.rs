//! `kvnode cluster`: a local cluster for demos and experiments — N `serve`
//! processes on loopback (this same binary, re-executed), stopped together.

use crate::client::Client;
use crate::commands::fetch_status;
use crate::config::Member;
use crate::server::shutdown_signal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// What `cluster` is told on the command line.
#[derive(Clone, Debug)]
pub(crate) struct ClusterOptions {
    pub(crate) nodes: u64,
    pub(crate) data_dir: PathBuf,
    pub(crate) base_port: u16,
    pub(crate) cluster_id: u64,
    pub(crate) verbose: bool,
}

/// The members of a local cluster of `n` nodes: node i's peer port is
/// `base + i`, its HTTP port `base + 1000 + i`.
pub(crate) fn local_members(n: u64, base: u16) -> Result<Vec<Member>, String> {
    (1..=n)
        .map(|i| {
            let port = |off: u64| {
                u16::try_from(u64::from(base) + off + i)
                    .map_err(|_| format!("base port {base} leaves no room for {n} nodes"))
            };
            Ok(Member {
                id: i,
                peer: SocketAddr::from(([127, 0, 0, 1], port(0)?)),
                http: SocketAddr::from(([127, 0, 0, 1], port(1000)?)),
            })
        })
        .collect()
}

/// The `--peers` list for `members`.
pub(crate) fn peers_spec(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| format!("{}={}/{}", m.id, m.peer, m.http))
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts the members, reports who leads, and stops them all on Ctrl-C or
/// SIGTERM. A member that dies (say, killed to watch a failover) is
/// reported with the command that restarts it; the others keep running.
pub(crate) fn run(opts: ClusterOptions) -> Result<(), String> {
    let members = local_members(opts.nodes, opts.base_port)?;
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    // Peers speak mutual TLS with a throwaway CA kept beside the data
    // (reused on restart); the admin token sits there too.
    let certs =
        crate::tls::generate(&opts.data_dir.join("certs"), &ids, &[]).map_err(|e| e.to_string())?;
    let token_file = admin_token(&opts.data_dir)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let spec = peers_spec(&members);
        let mut children: Members = JoinSet::new();
        let mut pids = Vec::new();
        let mut restart = Vec::new();
        for (m, tls) in members.iter().zip(&certs) {
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--id".into(),
                m.id.to_string(),
                "--peers".into(),
                spec.clone(),
                "--data-dir".into(),
                opts.data_dir
                    .join(format!("node-{}", m.id))
                    .display()
                    .to_string(),
                "--cluster-id".into(),
                opts.cluster_id.to_string(),
                "--peer-cert".into(),
                tls.cert.display().to_string(),
                "--peer-key".into(),
                tls.key.display().to_string(),
                "--peer-ca".into(),
                tls.ca.display().to_string(),
                "--admin-token-file".into(),
                token_file.display().to_string(),
            ];
            if opts.verbose {
                args.push("-v".into());
            }
            let mut child: Child = Command::new(&exe)
                .args(&args)
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start node {}: {e}", m.id))?;
            if let Some(err) = child.stderr.take() {
                tokio::spawn(forward_log(m.id, err));
            }
            pids.push(child.id());
            restart.push(format!("{} {}", exe.display(), args.join(" ")));
            let id = m.id;
            children.spawn(async move { (id, child.wait().await) });
        }
        print_endpoints(&opts, &members, &token_file);
        let endpoints: Vec<String> = members.iter().map(|m| m.http.to_string()).collect();
        tokio::spawn(async move { report_leader(&endpoints).await });
        loop {
            tokio::select! {
                () = shutdown_signal() => return stop(children, &pids).await,
                next = children.join_next() => match next {
                    None => return Err("every member has exited".into()),
                    Some(Ok((id, status))) => {
                        let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        let cmd = usize::try_from(id - 1).ok().and_then(|i| restart.get(i));
                        println!("node {id} exited ({how}); the others keep running");
                        if let Some(cmd) = cmd {
                            println!("restart it with: {cmd}");
                        }
                    }
                    Some(Err(e)) => return Err(e.to_string()),
                },
            }
        }
    })
}

type Members = JoinSet<(u64, std::io::Result<std::process::ExitStatus>)>;

/// Prefixes every log line of member `id`, so the members' logs stay
/// readable on one terminal.
async fn forward_log(id: u64, err: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[node {id}] {line}");
    }
}

/// The admin token file under `data_dir`, made with a random token the
/// first time.
fn admin_token(data_dir: &std::path::Path) -> Result<PathBuf, String> {
    let path = data_dir.join("admin.token");
    if !path.exists() {
        std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        crate::tls::write_private(&path, &crate::ids::secret_hex()?).map_err(|e| e.to_string())?;
    }
    Ok(path)
}

fn print_endpoints(opts: &ClusterOptions, members: &[Member], token_file: &std::path::Path) {
    println!(
        "kvnode cluster: {} nodes, data in {}",
        members.len(),
        opts.data_dir.display()
    );
    println!("  {:>4}  {:<18} {:<18}", "node", "peer", "http");
    for m in members {
        println!("  {:>4}  {:<18} {:<18}", m.id, m.peer, m.http);
    }
    let first = members
        .first()
        .map(|m| m.http.to_string())
        .unwrap_or_default();
    let endpoints: Vec<String> = members.iter().map(|m| m.http.to_string()).collect();
    println!();
    println!("try:");
    println!("  curl -L -X PUT --data-binary hello http://{first}/kv/greeting");
    println!("  curl -L http://{first}/kv/greeting");
    println!("  curl http://{first}/status");
    println!(
        "  kvnode put greeting hello --endpoints {}",
        endpoints.join(",")
    );
    println!("  kvnode chain verify --endpoints {}", endpoints.join(","));
    println!(
        "  kvnode member remove --id {} --token-file {} --endpoints {}",
        members.len(),
        token_file.display(),
        endpoints.join(",")
    );
    println!("peers speak mutual TLS (certificates in {}); membership changes need the admin token in {}",
        opts.data_dir.join("certs").display(), token_file.display());
    println!("Ctrl-C stops the cluster.");
}

/// Polls the members until one leads (for up to 10 s) and says which.
async fn report_leader(endpoints: &[String]) {
    let Ok(client) = Client::new(endpoints, Duration::from_secs(1)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for ep in endpoints {
            if let Ok(st) = fetch_status(&client, ep).await {
                if st.role == "Leader" {
                    println!("node {} leads (ballot {}) at http://{ep}", st.id, st.ballot);
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("no leader after 10 s; the nodes' logs say why");
}

/// SIGTERM to every member, a grace period, then SIGKILL (by dropping them)
/// for any still running. Storage is crash-safe, so even that loses nothing
/// acknowledged.
async fn stop(mut children: Members, pids: &[Option<u32>]) -> Result<(), String> {
    println!("stopping the cluster");
    for pid in pids.iter().flatten() {
        let pid = i32::try_from(*pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            // Already gone (Ctrl-C reaches the whole process group) is fine.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let grace = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = children.join_next() => match next {
                Some(Ok((id, Ok(status)))) if !status.success() => {
                    println!("node {id} exited ({status})");
                }
                Some(_) => {}
                None => return Ok(()),
            },
            () = &mut grace => {
                children.shutdown().await;
                return Ok(());
            }
        }
    }
}
