//! Whole `kvnode` processes on loopback: the client commands, redirects,
//! exactly-once sessions, crashes (kill -9) and restarts, hostile input on
//! both ports, and the `cluster` launcher.

mod support;

use bytes::BytesMut;
use kvnode::frame::{FrameCodec, PeerFrame};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn bogus_configuration_is_a_clear_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(2);
    let good = format!("1=127.0.0.1:{}/127.0.0.1:{}", ports[0], ports[1]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = format!(
        "1={}/127.0.0.1:{}",
        taken.local_addr().expect("addr"),
        ports[1]
    );
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("identity"), "cluster 1 node 2\n").expect("identity");
    let dir = |name: &str| tmp.path().join(name).display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--id", "1", "--peers", "1=oops", "--data-dir", &dir("a")],
            "bad member entry",
        ),
        (
            vec![
                "--id",
                "1",
                "--peers",
                "/no/such/members",
                "--data-dir",
                &dir("a"),
            ],
            "cannot read members file",
        ),
        (
            vec!["--id", "2", "--peers", &good, "--data-dir", &dir("a")],
            "node 2 is not in the member list",
        ),
        (
            vec![
                "--id",
                "1",
                "--peers",
                &good,
                "--data-dir",
                &dir("a"),
                "--http",
                "nowhere",
            ],
            "bad --http address",
        ),
        (
            vec![
                "--id",
                "1",
                "--peers",
                &good,
                "--data-dir",
                &dir("b"),
                "--heartbeat-ticks",
                "5",
                "--election-ticks",
                "3",
            ],
            "election_ticks (3) must exceed heartbeat_ticks (5)",
        ),
        (
            vec![
                "--id",
                "1",
                "--peers",
                &good,
                "--data-dir",
                &other.display().to_string(),
            ],
            "belongs to cluster 1 node 2",
        ),
        (
            vec!["--id", "1", "--peers", &busy, "--data-dir", &dir("c")],
            "cannot listen on",
        ),
        (
            vec![
                "--id",
                "1",
                "--peers",
                &good,
                "--data-dir",
                &dir("d"),
                "--phase2-quorum",
                "2",
            ],
            "phase-2 quorum of 2 is out of range for 1 voters",
        ),
    ]
    .into_iter()
    .map(|(args, want)| (args.into_iter().map(str::to_owned).collect(), want))
    .collect();
    for (args, want) in cases {
        let out = Command::new(BIN)
            .arg("serve")
            .args(&args)
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error:") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let usage = Command::new(BIN)
        .args(["cas", "k", "--new", "v"])
        .output()
        .expect("run");
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&usage)
    );
}

#[test]
fn writes_and_reads_through_any_member_apply_exactly_once_and_survive_restarts() {
    let mut c = Cluster::start(3, &[]);
    let l = c.leader();
    let f = (l + 1) % 3;
    let follower = vec![c.nodes[f].http.clone()];

    // Through a follower alone: the client follows the redirect.
    let out = c.cli(&["put", "color", "blue"], &follower);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "OK\n");
    let out = c.cli(&["get", "color"], &follower);
    assert_eq!(stdout(&out), "blue\n", "{}", stderr(&out));
    wait_until(Duration::from_secs(5), "the follower to apply", || {
        let r = get(&c.nodes[f].http, "/kv/color?stale=true").ok()?;
        (r.status == 200 && r.body == b"blue").then_some(())
    });
    let r = http(&c.nodes[f].http, "PUT", "/kv/raw", &[], b"x").expect("put");
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{}/kv/raw", c.nodes[l].http).as_str())
    );
    assert_eq!(r.json()["leader"], c.nodes[l].id);

    // Compare-and-swap.
    let out = c.cli(&["cas", "color", "--expect", "blue", "--new", "green"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "swapped (was blue)\n");
    let out = c.cli(&["cas", "color", "--expect", "blue", "--new", "red"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "not swapped: color holds green\n");
    let out = c.cli(&["cas", "fresh", "--expect-absent", "--new", "1"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Delete.
    assert!(c.cli(&["delete", "color"], &[]).status.success());
    let out = c.cli(&["get", "color"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("key not found"));

    // Exactly once: a retry with the same session returns the first
    // outcome and changes nothing, also after later sequences.
    let session = |seq: &str| ["--client-id", "77", "--seq", seq].map(str::to_owned);
    let put = |v: &str, seq: &str| {
        let mut args = vec!["put".to_owned(), "once".into(), v.into()];
        args.extend(session(seq));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.cli(&args, &[])
    };
    assert!(put("a", "1").status.success());
    assert!(put("b", "1").status.success(), "a retry succeeds");
    assert_eq!(
        stdout(&c.cli(&["get", "once"], &[])),
        "a\n",
        "and applies nothing"
    );
    assert!(put("c", "2").status.success());
    let late = put("d", "1");
    assert!(late.status.success(), "{}", stderr(&late));
    assert_eq!(stdout(&c.cli(&["get", "once"], &[])), "c\n");
    let out = c.cli(&["chain", "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The status table and a short load run.
    let out = c.cli(&["status"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).matches("Leader").count(),
        1,
        "{}",
        stdout(&out)
    );
    let out = c.cli(
        &[
            "bench",
            "--duration",
            "1s",
            "--concurrency",
            "4",
            "--read-ratio",
            "0.5",
        ],
        &[],
    );
    let report = stdout(&out);
    assert!(out.status.success(), "{report}{}", stderr(&out));
    assert!(
        report.contains("errors 0") && report.contains("p999"),
        "{report}"
    );

    // Every member killed at once: all of it comes back from disk.
    let height = c.status(l).expect("status")["height"]
        .as_u64()
        .expect("height");
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.spawn(i);
    }
    c.leader();
    assert_eq!(stdout(&c.cli(&["get", "once"], &[])), "c\n");
    assert_eq!(stdout(&c.cli(&["get", "fresh"], &[])), "1\n");
    let out = c.cli(&["chain", "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for i in 0..3 {
        let h = c.status(i).expect("status")["height"]
            .as_u64()
            .expect("height");
        assert!(
            h >= height,
            "node {} restarted at height {h} < {height}",
            i + 1
        );
    }
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3, &[]);
    let old = c.leader();
    let endpoints = c.endpoints();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::default();
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let (endpoints, stop, acked) = (endpoints.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let (key, value) = (format!("w{t}-{seq}"), format!("v{seq}"));
                    let session = [
                        ("x-client-id", (100 + t).to_string()),
                        ("x-seq", seq.to_string()),
                    ];
                    let deadline = Instant::now() + Duration::from_secs(20);
                    let r = call(
                        &endpoints,
                        "PUT",
                        &format!("/kv/{key}"),
                        &session,
                        value.as_bytes(),
                        deadline,
                    )
                    .unwrap_or_else(|| panic!("write {key} got no answer in 20 s"));
                    assert_eq!(r.status, 200, "{key}: {}", r.text());
                    acked
                        .lock()
                        .expect("lock")
                        .push((key, value, Instant::now()));
                }
            })
        })
        .collect();
    let count = |after: Instant| {
        acked
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, t)| *t > after)
            .count()
    };
    let begin = Instant::now();
    wait_until(Duration::from_secs(20), "writes before the crash", || {
        (count(begin) >= 40).then_some(())
    });
    let killed = Instant::now();
    c.kill(old);
    wait_until(Duration::from_secs(20), "writes after the crash", || {
        (count(killed) >= 40).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    let resumed = acked
        .iter()
        .filter(|(_, _, t)| *t > killed)
        .map(|(_, _, t)| *t - killed)
        .min()
        .expect("writes after the crash");
    eprintln!(
        "{} writes acknowledged; writes resumed {resumed:?} after the leader was killed",
        acked.len()
    );
    assert!(
        resumed < Duration::from_secs(10),
        "resumed after {resumed:?}"
    );
    let new = c.leader();
    assert_ne!(new, old);

    // Every acknowledged write is there (linearizable reads).
    let live = c.live_endpoints();
    for (key, value, _) in &acked {
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = call(&live, "GET", &format!("/kv/{key}"), &[], b"", deadline).expect("read");
        assert_eq!((r.status, r.text()), (200, value.clone()), "{key}");
    }

    // The killed node comes back, catches up, and holds the same chain.
    c.spawn(old);
    let target = c.status(new).expect("status")["applied"]
        .as_u64()
        .expect("applied");
    wait_until(
        Duration::from_secs(20),
        "the restarted node to catch up",
        || {
            let s = c.status(old)?;
            (s["applied"].as_u64()? >= target).then_some(())
        },
    );
    let out = c.cli(&["chain", "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("3 member(s) agree"),
        "{}",
        stdout(&out)
    );
    let heads: Vec<String> = (0..3)
        .map(|i| {
            c.status(i).expect("status")["head"]
                .as_str()
                .expect("head")
                .to_owned()
        })
        .collect();
    assert!(
        heads.iter().all(|h| *h == heads[0]),
        "heads differ: {heads:?}"
    );
}

#[test]
fn hostile_frames_and_bad_requests_are_refused_counted_and_survived() {
    let c = Cluster::start_plain(3, &["--cluster-id", "42", "-v"]);
    c.leader();
    let (t, peer) = (0, c.nodes[0].peer.clone());
    let id = c.nodes[t].id;

    // Peer port: an oversize length and undecodable bytes close that
    // connection; a frame of another cluster, one from a stranger and an
    // empty one are refused without closing it.
    assert!(send_peer(&peer, &u32::MAX.to_be_bytes()), "oversize closes");
    assert!(
        send_peer(&peer, &[0, 0, 0, 3, 0xFF, 0xFF, 0xFF]),
        "garbage closes"
    );
    let mut s = TcpStream::connect(&peer).expect("connect");
    s.write_all(&frame(7, 2, id)).expect("write");
    s.write_all(&frame(42, 9, id)).expect("write");
    let mut empty = BytesMut::new();
    FrameCodec::new(1 << 20)
        .encode(
            &PeerFrame {
                cluster_id: 42,
                message: None,
            },
            &mut empty,
        )
        .expect("encode");
    s.write_all(&empty).expect("write");
    for reason in [
        "too_large",
        "malformed",
        "wrong_cluster",
        "unknown_node",
        "empty",
    ] {
        let name = format!("kvnode_peer_frames_rejected_total{{reason=\"{reason}\"}}");
        wait_until(Duration::from_secs(5), &name.clone(), || {
            (metric(&c.metrics(t), &name) >= 1.0).then_some(())
        });
    }
    // The stranger's heartbeat (ballot 99) deposed nobody.
    c.leader();

    // HTTP: every bad request gets a JSON error, none takes the node down.
    let node = c.nodes[t].http.clone();
    let long_key = format!("/kv/{}", "k".repeat(2000));
    let r = http(&node, "PUT", &long_key, &[], b"v").expect("long key");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .expect("error")
        .contains("longer than"));
    let r = http(&node, "PUT", "/kv/big", &[], &vec![b'x'; (1 << 20) + 1]).expect("big value");
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string());
    // The largest value allowed replicates (one entry above the per-message
    // byte limit travels alone) and reads back whole.
    let big = vec![b'y'; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(20);
    let eps = c.endpoints();
    let r = call(&eps, "PUT", "/kv/big", &[], &big, deadline).expect("put 1 MiB");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&eps, "GET", "/kv/big", &[], b"", deadline).expect("get 1 MiB");
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    for (method, path, headers, body) in [
        ("POST", "/kv/k/cas", vec![], &b"{not json"[..]),
        ("POST", "/kv/k/cas", vec![], &br#"{"expected":"a"}"#[..]),
        (
            "PUT",
            "/kv/k",
            vec![("x-client-id", "1".to_owned()), ("x-seq", "abc".to_owned())],
            &b"v"[..],
        ),
        (
            "PUT",
            "/kv/k",
            vec![("x-client-id", "1".to_owned())],
            &b"v"[..],
        ),
        ("GET", "/chain?from=abc", vec![], &b""[..]),
        ("GET", "/kv/k?stale=perhaps", vec![], &b""[..]),
    ] {
        let r = http(&node, method, path, &headers, body).expect("answer");
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{method} {path}");
    }
    let r = get(&node, "/no/such/thing").expect("404");
    assert_eq!((r.status, r.json()["error"].is_string()), (404, true));
    let r = http(&node, "PATCH", "/kv/k", &[], b"").expect("405");
    assert_eq!(r.status, 405);
    // Even what hyper refuses before the router sees it answers the same
    // JSON shape: a bad request line, headers past its limit.
    let huge = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(600 << 10)
    );
    for (raw, status) in [
        (b"THIS IS NOT HTTP\r\n\r\n".to_vec(), 400),
        (huge.into_bytes(), 431),
    ] {
        let r = raw_http(&node, &raw).expect("an answer");
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }

    // Still serving, and says what it refused.
    let out = c.cli(&["put", "still", "here"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = c.metrics(t);
    assert!(
        metric(
            &text,
            "kvnode_peer_frames_rejected_total{reason=\"wrong_cluster\"}"
        ) >= 1.0
    );
    // -v: every protocol message on one readable line.
    let log = std::fs::read_to_string(c.log_path(t)).expect("log");
    assert!(
        log.contains("send 1->") && log.contains("recv "),
        "no message trace in the log"
    );
    assert!(log.contains("Heartbeat b="), "no heartbeat in the trace");
}

#[test]
fn the_cluster_command_starts_members_and_stops_them_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A base port whose six ports are free now.
    let base = (0..200)
        .map(|i| 20_000 + (std::process::id() as u16 % 100) * 100 + i * 7)
        .find(|b| {
            [1u16, 2, 3, 1001, 1002, 1003]
                .iter()
                .all(|o| std::net::TcpListener::bind(("127.0.0.1", b + o)).is_ok())
        })
        .expect("free ports");
    let mut child = Command::new(BIN)
        .args(["cluster", "--nodes", "3", "--base-port", &base.to_string()])
        .arg("--data-dir")
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cluster");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let endpoints: Vec<String> = (1001..=1003)
        .map(|o| format!("127.0.0.1:{}", base + o))
        .collect();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !printed.iter().any(|l: &String| l.contains("leads")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("no leader reported: {printed:#?}"),
        }
    }
    let printed = printed.join("\n");
    assert!(
        printed.contains(&format!("http://{}/kv/greeting", endpoints[0])),
        "{printed}"
    );
    let put = Command::new(BIN)
        .args(["put", "k", "v", "--endpoints", &endpoints.join(",")])
        .output()
        .expect("put");
    assert!(put.status.success(), "{}", stderr(&put));
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = wait_until(Duration::from_secs(15), "the cluster to stop", || {
        child.try_wait().expect("wait")
    });
    assert!(status.success(), "{status}");
    for ep in &endpoints {
        assert!(get(ep, "/status").is_err(), "{ep} still answers");
    }
}

/// Flexible quorums from the command line: every member reports the sizes
/// in effect, and writes commit under them.
#[test]
fn quorum_sizes_from_the_command_line_govern_and_show_in_status() {
    let c = Cluster::start(3, &["--phase2-quorum", "3"]);
    let endpoints = c.endpoints();
    put_acked(&endpoints, "q", "v");
    for i in 0..3 {
        let st = wait_until(Duration::from_secs(20), "a member's status", || {
            c.status(i)
                .filter(|st| st["applied"].as_u64().is_some_and(|a| a >= 1))
        });
        // Phase 1 keeps its majority: 2 + 3 > 3 already intersects.
        assert_eq!(st["phase1_quorum"], 2, "{st}");
        assert_eq!(st["phase2_quorum"], 3, "{st}");
    }
}

/// Puts `key=value` through any of `endpoints`, retrying until acknowledged.
fn put_acked(endpoints: &[String], key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = call(
        endpoints,
        "PUT",
        &format!("/kv/{key}"),
        &[],
        value.as_bytes(),
        deadline,
    )
    .unwrap_or_else(|| panic!("put {key}: no answer"));
    assert_eq!(r.status, 200, "put {key}: {}", r.text());
}

/// Waits until member `i` applied at least what member `leader` has.
fn wait_caught_up(c: &Cluster, i: usize, leader: usize) {
    let target = c.status(leader).expect("status")["applied"]
        .as_u64()
        .expect("applied");
    wait_until(Duration::from_secs(20), "a member to catch up", || {
        (c.status(i)?["applied"].as_u64()? >= target).then_some(())
    });
}

#[test]
fn a_member_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut c = Cluster::start(3, &["--snapshot-every", "20", "--log-tail", "5"]);
    let l = c.leader();
    let down = (l + 1) % 3;
    c.kill(down);
    let live = c.live_endpoints();
    for i in 0..60 {
        put_acked(&live, &format!("s{i}"), &format!("v{i}"));
    }
    c.spawn(down);
    let l = c.leader();
    wait_caught_up(&c, down, l);
    assert!(metric(&c.metrics(down), "kvnode_snapshots_installed_total") >= 1.0);
    let r = get(&c.nodes[down].http, "/kv/s0?stale=true").expect("read");
    assert_eq!((r.status, r.text()), (200, "v0".to_owned()));
    let out = c.cli(&["chain", "verify"], &[]);
    let report = stdout(&out);
    assert!(out.status.success(), "{report}{}", stderr(&out));
    assert!(
        report.contains("pruned below") && report.contains("state ok"),
        "{report}"
    );

    // Every member's log stays bounded, on disk too; every member restarts
    // from its compacted store.
    for i in 0..3 {
        c.kill(i);
    }
    for n in &c.nodes {
        let s = kvnode::storage::RedbStorage::open(n.dir.join("kvnode.redb")).expect("open");
        use paxos_core::Storage;
        let (first, last) = (s.first_slot().expect("first"), s.last_slot().expect("last"));
        let held = s
            .entries(first, last, usize::MAX, u64::MAX)
            .expect("entries");
        assert!(
            first > 1 && held.len() <= 40,
            "node {}: {} entries from {first}",
            n.id,
            held.len()
        );
    }
    for i in 0..3 {
        c.spawn(i);
    }
    c.leader();
    assert_eq!(stdout(&c.cli(&["get", "s59"], &[])), "v59\n");
    put_acked(&c.endpoints(), "after", "restart");
    let out = c.cli(&["chain", "verify"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_node_joins_is_promoted_and_a_voter_leaves_without_losing_a_write() {
    let mut c = Cluster::start(3, &["--snapshot-every", "20", "--log-tail", "5"]);
    c.leader();
    let eps = c.endpoints();
    let mut acked = Vec::new();
    let mut write = |c: &Cluster, i: usize| {
        let (k, v) = (format!("m{i}"), format!("v{i}"));
        put_acked(&c.live_endpoints(), &k, &v);
        acked.push((k, v));
    };
    for i in 0..40 {
        write(&c, i);
    }
    let new = c.join();
    let (id, peer, http_addr) = (
        c.nodes[new].id.to_string(),
        c.nodes[new].peer.clone(),
        c.nodes[new].http.clone(),
    );

    // Refusals are typed: 409 with the protocol's reason, 400 for bad input.
    let admin = [("Authorization", format!("Bearer {ADMIN_TOKEN}"))];
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = format!(r#"{{"op":"promote","id":{id}}}"#);
    let r = call(&eps, "POST", "/members", &admin, body.as_bytes(), deadline).expect("answer");
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (409, Some("not_learner"))
    );
    for bad in [
        &br#"{"op":"add","id":9}"#[..],
        br#"{"op":"grow","id":9}"#,
        br#"{"op":"remove","id":0}"#,
        br#"{"op":"add","id":9,"peer":"nowhere","http":"127.0.0.1:1"}"#,
        b"{nope",
    ] {
        let r = http(&eps[0], "POST", "/members", &admin, bad).expect("answer");
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.json()["error"].is_string());
    }

    // Add it: it catches up (the log it needs is compacted: a snapshot).
    let add = [
        "member", "add", "--id", &id, "--peer", &peer, "--http", &http_addr,
    ];
    let out = c.cli(&add, &eps);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("learners [{id}]")),
        "{}",
        stdout(&out)
    );
    let again = c.cli(&add, &eps);
    assert!(stderr(&again).contains("409"), "{}", stderr(&again));
    let l = c.leader();
    wait_caught_up(&c, new, l);
    assert!(metric(&c.metrics(new), "kvnode_snapshots_installed_total") >= 1.0);

    // Promote it once the leader sees it caught up.
    wait_until(Duration::from_secs(20), "the promotion", || {
        let out = c.cli(&["member", "promote", "--id", &id], &eps);
        if out.status.success() {
            return Some(());
        }
        let err = stderr(&out);
        assert!(
            err.contains("not caught up") || err.contains("pending"),
            "{err}"
        );
        None
    });
    // Remove node 1, perhaps the leader, and stop it.
    let out = c.cli(&["member", "remove", "--id", "1"], &eps);
    assert!(out.status.success(), "{}", stderr(&out));
    c.kill(0);
    for i in 40..60 {
        write(&c, i);
    }
    let l = c.leader();
    let st = c.status(new).expect("status");
    assert_eq!(st["voters"], serde_json::json!([2, 3, 4]), "{st}");
    wait_caught_up(&c, new, l);
    for (k, v) in &acked {
        let r = get(&c.nodes[new].http, &format!("/kv/{k}?stale=true")).expect("read");
        assert_eq!((r.status, r.text()), (200, v.clone()), "{k}");
    }
    let out = c.cli(&["chain", "verify"], &c.live_endpoints());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
