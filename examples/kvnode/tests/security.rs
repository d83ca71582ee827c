//! Whole `kvnode` processes with peer mutual TLS and the admin token: who
//! may connect, who may speak as whom, who may change the membership, and
//! what silent connections cost.

mod support;

use kvnode::tls::{load_certs, load_key, load_roots, provider};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// A TLS connection to a member's peer port presenting `cert`/`key`, and
/// trusting `ca` for the member's own certificate, which must name `id`.
fn tls_to(
    addr: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
    id: u64,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(load_roots(ca).expect("ca"))
        .with_client_auth_cert(load_certs(cert).expect("cert"), load_key(key).expect("key"))
        .expect("client config");
    let name = ServerName::try_from(format!("node-{id}")).expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("connection");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    rustls::StreamOwned::new(conn, sock)
}

/// Whether the other end closed (or broke) the connection rather than
/// staying quiet; what it sends first (a TLS alert) is read past.
fn closed(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

fn put(c: &Cluster, key: &str) {
    let out = c.cli(&["put", key, "v"], &c.live_endpoints());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn only_members_of_the_ca_connect_and_each_speaks_only_as_itself() {
    let c = Cluster::start(3, &[]);
    c.leader();
    put(&c, "before");
    let (peer, ca) = (c.nodes[0].peer.clone(), c.certs_dir().join("ca.crt"));
    let certs = c.certs_dir();

    // A certificate naming node-2 but from another CA: the handshake fails.
    let other = c.tmp.path().join("other-ca");
    let out = Command::new(BIN)
        .arg("certs")
        .arg("--out")
        .arg(&other)
        .args(["--ids", "2"])
        .output()
        .expect("certs");
    assert!(out.status.success());
    let mut s = tls_to(
        &peer,
        &ca,
        &other.join("node-2.crt"),
        &other.join("node-2.key"),
        1,
    );
    let _ = s.write_all(&frame(1, 2, 1));
    assert!(closed(&mut s), "a stranger's certificate is refused");
    // Plaintext to a TLS peer port: never admitted, closed by the admit
    // timeout at the latest.
    let mut plain = TcpStream::connect(&peer).expect("connect");
    plain.write_all(&frame(1, 2, 1)).expect("write");
    plain
        .set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    assert!(closed(&mut plain), "plaintext is refused");
    wait_until(Duration::from_secs(5), "the refusals counted", || {
        let m = c.metrics(0);
        (metric(&m, "kvnode_peer_connections_refused_total") >= 2.0).then_some(())
    });

    // Node 3's genuine certificate, frames claiming to be node 2's: each
    // refused and counted; the connection itself stays up.
    let mut s = tls_to(
        &peer,
        &ca,
        &certs.join("node-3.crt"),
        &certs.join("node-3.key"),
        1,
    );
    for _ in 0..3 {
        s.write_all(&frame(1, 2, 1)).expect("write");
    }
    s.flush().expect("flush");
    wait_until(Duration::from_secs(5), "the impersonation counted", || {
        let m = c.metrics(0);
        let n = metric(
            &m,
            "kvnode_peer_frames_rejected_total{reason=\"impersonation\"}",
        );
        (n >= 3.0).then_some(())
    });
    assert!(!closed(&mut s), "a member's connection is not closed");

    // The dialer checks the name too: node 2's certificate is not node 1's.
    let mut s = tls_to(
        &peer,
        &ca,
        &certs.join("node-3.crt"),
        &certs.join("node-3.key"),
        2,
    );
    assert!(
        s.write_all(&frame(1, 3, 1))
            .and_then(|()| s.flush())
            .is_err(),
        "node 1's certificate does not pass for node 2's"
    );

    put(&c, "after");
    assert_eq!(
        stdout(&c.cli(&["get", "after"], &[])).trim(),
        "v",
        "the cluster still works"
    );
}

#[test]
fn membership_changes_need_the_admin_token() {
    let c = Cluster::start(3, &[]);
    c.leader();
    let eps = c.endpoints();
    let body = br#"{"op":"remove","id":3}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let none = call(&eps, "POST", "/members", &[], body, deadline).expect("answer");
    assert_eq!(none.status, 401, "{}", none.text());
    assert!(none.json()["error"].is_string());
    let wrong = [("Authorization", "Bearer not-the-token".to_owned())];
    let r = call(&eps, "POST", "/members", &wrong, body, deadline).expect("answer");
    assert_eq!(r.status, 403, "{}", r.text());
    // The CLI without --token-file says why.
    let out = Command::new(BIN)
        .args([
            "member",
            "remove",
            "--id",
            "3",
            "--endpoints",
            &eps.join(","),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let refused: f64 = (0..3)
        .map(|i| metric(&c.metrics(i), "kvnode_admin_requests_refused_total"))
        .sum();
    assert!(refused >= 3.0, "{refused}");
    // Nothing changed; with the token the change goes through.
    assert_eq!(
        c.status(0).expect("status")["voters"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let out = c.cli(&["member", "remove", "--id", "3"], &eps);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("voters [1, 2]"), "{}", stdout(&out));
}

#[test]
fn silent_connections_cannot_take_the_slots_of_real_peers() {
    let c = Cluster::start(3, &[]);
    c.leader();
    let peer = c.nodes[0].peer.clone();
    // Twenty silent connections from one address: all but the pending
    // limit (8) are closed at once, the rest after the admit timeout (5 s).
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| {
            let s = TcpStream::connect(&peer).expect("connect");
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let shut = silent.iter_mut().map(closed).filter(|&c| c).count();
    assert!(shut >= 12, "{shut} of 20 closed at once");
    // Meanwhile the members' own connections carry on.
    put(&c, "meanwhile");
    std::thread::sleep(Duration::from_secs(6));
    let shut = silent.iter_mut().map(closed).filter(|&c| c).count();
    assert_eq!(shut, 20, "every silent connection is closed after 5 s");
    assert!(metric(&c.metrics(0), "kvnode_peer_connections_refused_total") >= 20.0);
    put(&c, "after");
}

#[test]
fn a_leader_transfer_needs_the_token_and_hands_over_with_lease_reads_on() {
    let c = Cluster::start(3, &["--read-lease-ticks", "10"]);
    let old = c.leader();
    put(&c, "k");
    let to = c.nodes[(old + 1) % 3].id.to_string();
    let eps = c.endpoints();
    let plain = Command::new(BIN)
        .args([
            "leader",
            "transfer",
            "--to",
            &to,
            "--endpoints",
            &eps.join(","),
        ])
        .output()
        .expect("run");
    assert!(!plain.status.success());
    assert!(stderr(&plain).contains("401"), "{}", stderr(&plain));
    let out = c.cli(&["leader", "transfer", "--to", &to], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("node {to} leads")));
    assert_eq!(c.nodes[c.leader()].id.to_string(), to);
    // Linearizable reads at the new leader work with leases on.
    for _ in 0..5 {
        assert_eq!(stdout(&c.cli(&["get", "k"], &[])).trim(), "v");
    }
    let l = c.leader();
    assert!(metric(&c.metrics(l), "kvnode_reads_linearizable_total") >= 1.0);
}

/// `kvnode certs --out DIR --ids IDS --hosts 127.0.0.1`.
fn certs(dir: &Path, ids: &str) {
    let out = Command::new(BIN)
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--ids", ids, "--hosts", "127.0.0.1"])
        .output()
        .expect("certs");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_http_api_over_tls_trusts_its_ca_and_takes_client_certificates_as_admin() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (api, other) = (tmp.path().join("api"), tmp.path().join("other"));
    certs(&api, "1,99");
    certs(&other, "1");
    let file = |d: &Path, f: &str| d.join(f).display().to_string();
    let (cert, key, ca) = (
        file(&api, "node-1.crt"),
        file(&api, "node-1.key"),
        file(&api, "ca.crt"),
    );
    let c = Cluster::start(3, &["--cert", &cert, "--key", &key, "--client-ca", &ca]);
    let eps = c.endpoints().join(",");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .args(["--endpoints", &eps])
            .output()
            .expect("run")
    };
    let out = run(&["put", "k", "v", "--cacert", &ca, "--timeout", "20s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["get", "k", "--cacert", &ca]);
    assert_eq!(stdout(&out), "v\n", "{}", stderr(&out));
    // A CA that did not sign the members' certificates: said plainly.
    let out = run(&[
        "get",
        "k",
        "--cacert",
        &file(&other, "ca.crt"),
        "--timeout",
        "1s",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    // Plain HTTP to a TLS port gets nowhere.
    let out = run(&["get", "k", "--timeout", "1s"]);
    assert!(!out.status.success());
    // A client certificate from the client CA is an admin credential.
    let out = run(&[
        "member",
        "remove",
        "--id",
        "3",
        "--cacert",
        &ca,
        "--client-cert",
        &file(&api, "node-99.crt"),
        "--client-key",
        &file(&api, "node-99.key"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("voters [1, 2]"), "{}", stdout(&out));
    // Without it (and without the token): refused.
    let out = run(&["member", "remove", "--id", "2", "--cacert", &ca]);
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    // One from another CA does not even connect.
    let out = run(&[
        "member",
        "remove",
        "--id",
        "2",
        "--cacert",
        &ca,
        "--client-cert",
        &file(&other, "node-1.crt"),
        "--client-key",
        &file(&other, "node-1.key"),
        "--timeout",
        "1s",
    ]);
    assert!(!out.status.success());
}
