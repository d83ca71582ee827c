//! What clients see while leaders die: writers with one request in flight
//! each, through a client that only follows redirects and moves on from
//! members that refuse connections, while the leader is killed (kill -9)
//! and restarted. `KVNODE_KILLS` sets how many kills (one every 5 s;
//! default 1).

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// Writers running at once.
const WRITERS: u64 = 8;

/// What one attempt at a write came to.
#[derive(Debug)]
enum Attempt {
    /// 200, with its answer.
    Applied(Resp),
    /// An HTTP answer other than 200 or a redirect: a client-visible error
    /// (its status and body).
    Refused(u16, String),
    /// The connection broke after the request went out: outcome unknown.
    Unknown(std::io::Error),
}

/// One write through a plain client: it follows redirects and moves past
/// members that refuse the connection (nothing was asked of them), and
/// reports the first answer.
fn attempt(
    endpoints: &[String],
    first: usize,
    (method, path): (&str, &str),
    session: &[(&str, String)],
    body: &[u8],
) -> Attempt {
    let mut i = first;
    let mut target = endpoints[i % endpoints.len()].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match http(&target, method, path, session, body) {
            Ok(r) if r.status == 307 => {
                target = r.redirect_target();
            }
            Ok(r) if r.status == 200 => return Attempt::Applied(r),
            Ok(r) => return Attempt::Refused(r.status, r.text()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                i += 1;
                target = endpoints[i % endpoints.len()].clone();
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Attempt::Unknown(e),
        }
    }
    Attempt::Refused(0, "no answer in 30 s".to_owned())
}

#[test]
fn client_visible_errors_across_leader_kills_are_bounded() {
    let kills: usize = std::env::var("KVNODE_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(1);
    let mut c = Cluster::start(3, &[]);
    c.leader();
    let endpoints = c.endpoints();
    let stop = Arc::new(AtomicBool::new(false));
    let (applied, refused, unknown) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let endpoints = endpoints.clone();
            let (stop, applied, refused, unknown) = (
                stop.clone(),
                applied.clone(),
                refused.clone(),
                unknown.clone(),
            );
            std::thread::spawn(move || {
                let mut seq = 1u64;
                while !stop.load(Relaxed) {
                    let session = [
                        ("x-client-id", (1000 + w).to_string()),
                        ("x-seq", seq.to_string()),
                    ];
                    let path = format!("/kv/f{w}");
                    // A failed attempt is retried with the same session:
                    // the write applies at most once whatever happened.
                    let body = seq.to_string();
                    match attempt(
                        &endpoints,
                        w as usize,
                        ("PUT", &path),
                        &session,
                        body.as_bytes(),
                    ) {
                        Attempt::Applied(_) => {
                            applied.fetch_add(1, Relaxed);
                            seq += 1;
                        }
                        Attempt::Refused(status, body) => {
                            refused.fetch_add(1, Relaxed);
                            eprintln!("writer {w} seq {seq}: {status} {body}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Attempt::Unknown(e) => {
                            eprintln!("writer {w} seq {seq}: unknown ({e})");
                            unknown.fetch_add(1, Relaxed);
                        }
                    }
                }
                seq - 1
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..kills {
        let l = c.leader();
        c.kill(l);
        std::thread::sleep(Duration::from_secs(1));
        c.spawn(l);
        std::thread::sleep(Duration::from_secs(4));
    }
    stop.store(true, Relaxed);
    let last: Vec<u64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    let (applied, refused, unknown) = (
        applied.load(Relaxed),
        refused.load(Relaxed),
        unknown.load(Relaxed),
    );
    eprintln!(
        "{kills} leader kill(s): {applied} writes applied, {refused} refused (client-visible \
         errors), {unknown} of unknown outcome (connection lost in flight)"
    );
    // Every writer's last acknowledged write is what a linearizable read
    // finds.
    assert!(applied > 0);
    let live = c.live_endpoints();
    for (w, seq) in last.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = call(&live, "GET", &format!("/kv/f{w}"), &[], b"", deadline).expect("read");
        assert_eq!((r.status, r.text()), (200, seq.to_string()), "writer {w}");
    }
    // The bound: a request never gets an error answer for an election.
    // Only connections open to the killed leader as it dies lose their
    // answer: the request in flight, and at most one immediate retry that
    // races the dying process's sockets (2 per writer per kill); each is
    // retried under its session.
    assert_eq!(refused, 0, "client-visible errors");
    assert!(
        unknown <= 2 * WRITERS * kills as u64,
        "{unknown} unknown outcomes for {WRITERS} writers and {kills} kill(s)"
    );
}

#[test]
fn a_client_with_eight_writes_in_flight_across_a_leader_kill_gets_each_applied_once() {
    let mut c = Cluster::start(3, &[]);
    c.leader();
    let endpoints = c.endpoints();
    let stop = Arc::new(AtomicBool::new(false));
    // The client's open sequences: it takes a new one only while it stays
    // within the session window of its lowest unanswered one, as a client
    // with several writes in flight must.
    let open: Arc<Mutex<(u64, BTreeSet<u64>)>> = Arc::new(Mutex::new((1, BTreeSet::new())));
    let take = |open: &Mutex<(u64, BTreeSet<u64>)>| loop {
        {
            let mut o = open.lock().expect("lock");
            let next = o.0;
            let lowest = o.1.first().copied().unwrap_or(next);
            if next < lowest + kvnode::state::WINDOW as u64 {
                o.0 += 1;
                o.1.insert(next);
                return next;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // One client, eight threads: eight sequences in flight at once, each a
    // compare-and-swap creating its own key. Applied twice, a CAS would
    // answer "not swapped"; lost, its key would be missing.
    let threads: Vec<_> = (0..8usize)
        .map(|t| {
            let (endpoints, stop, open) = (endpoints.clone(), stop.clone(), open.clone());
            std::thread::spawn(move || {
                let mut done = Vec::new();
                while !stop.load(Relaxed) {
                    let seq = take(&open);
                    let session = [
                        ("x-client-id", "4242".to_owned()),
                        ("x-seq", seq.to_string()),
                    ];
                    let path = format!("/kv/c{seq}/cas");
                    let body = br#"{"expected":null,"new":"v"}"#;
                    loop {
                        match attempt(&endpoints, t, ("POST", &path), &session, body) {
                            Attempt::Applied(r) => {
                                assert_eq!(r.json()["swapped"], true, "seq {seq}: {}", r.text());
                                break;
                            }
                            Attempt::Refused(status, body) => {
                                panic!("seq {seq}: answered {status} {body}")
                            }
                            Attempt::Unknown(_) => {}
                        }
                    }
                    open.lock().expect("lock").1.remove(&seq);
                    done.push(seq);
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let l = c.leader();
    c.kill(l);
    std::thread::sleep(Duration::from_secs(1));
    c.spawn(l);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Relaxed);
    let mut done: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("writer"))
        .collect();
    done.sort_unstable();
    assert_eq!(done, (1..=done.len() as u64).collect::<Vec<_>>());
    let live = c.live_endpoints();
    for seq in &done {
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = call(&live, "GET", &format!("/kv/c{seq}"), &[], b"", deadline).expect("read");
        assert_eq!((r.status, r.text()), (200, "v".to_owned()), "c{seq}");
    }
}

#[test]
fn the_sessions_table_stays_bounded_under_client_churn() {
    let mut c = Cluster::start(3, &[]);
    c.leader();
    // Every write under a new client id, 100,000 of them: six times the
    // table's 16,384 (as many rounds as this machine needs).
    let mut applied = 0.0;
    for _ in 0..60 {
        let out = c.cli(
            &[
                "bench",
                "--duration",
                "5s",
                "--concurrency",
                "256",
                "--clients",
                "1000000000",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        applied = metric(&c.metrics(c.leader()), "kvnode_commands_applied_total");
        if applied >= 100_000.0 {
            break;
        }
    }
    let held: Vec<f64> = (0..3)
        .map(|i| metric(&c.metrics(i), "kvnode_client_sessions"))
        .collect();
    eprintln!("{applied} writes under distinct clients; sessions held {held:?}");
    for h in &held {
        assert!(*h <= 16_384.0, "{held:?}");
    }
    assert!(applied >= 100_000.0, "too few writes: {applied}");
    assert_eq!(held[c.leader()], 16_384.0);
    // A member restarted from its store holds the same bounded table.
    c.kill(2);
    c.spawn(2);
    wait_until(
        Duration::from_secs(20),
        "the restarted member's table",
        || (metric(&c.metrics(2), "kvnode_client_sessions") == 16_384.0).then_some(()),
    );
}
