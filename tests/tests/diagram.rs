//! Space-time diagrams: a clean run and a counterexample drawn to HTML,
//! checked against the recorder's own counts, then (where Chromium is
//! installed; CI must have it) rendered by a headless browser.

use paxos_core::PlantedBug;
use paxos_sim::diagram::{render, Diagram};
use paxos_sim::{run, Outcome, SimOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small clean run: 3 voters, 30 ticks of faults.
fn clean() -> SimOptions {
    SimOptions {
        seed: 2,
        nodes: Some(3),
        learners: Some(0),
        ticks: 30,
        liveness_ticks: 300,
        ..SimOptions::default()
    }
}

/// A counterexample: the planted `CommitWithoutQuorum` caught on 3 voters.
fn counterexample() -> SimOptions {
    SimOptions {
        seed: 3,
        nodes: Some(3),
        learners: Some(0),
        ticks: 30,
        liveness_ticks: 200,
        bug: Some(PlantedBug::CommitWithoutQuorum),
        ..SimOptions::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paxos-diagram-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `opts` recorded, and checks that recording changed nothing.
fn recorded(opts: SimOptions) -> (Outcome, String) {
    let plain = run(opts.clone());
    let out = run(SimOptions {
        record: true,
        ..opts
    });
    assert_eq!(plain.summary_line(), out.summary_line());
    assert!(plain.diagram.is_none());
    let html = render(&out).expect("a recorded run renders");
    (out, html)
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The page's elements match the recorder's counts, and it needs nothing
/// from outside.
fn check_structure(d: &Diagram, html: &str) {
    assert!(!d.full(), "a small run is drawn whole");
    assert_eq!(count(html, "class=\"lane\""), d.lanes.len());
    assert_eq!(count(html, "class=\"msg\""), d.received_arrows());
    assert_eq!(d.received_arrows() as u64, d.delivered);
    assert_eq!(
        count(html, "class=\"lost\""),
        d.arrows.iter().filter(|a| !a.received).count()
    );
    assert_eq!(d.arrows.len() as u64, d.delivered + d.lost);
    assert_eq!(count(html, "class=\"drop\""), d.drops.len());
    assert_eq!(d.drops.len() as u64, d.dropped);
    assert_eq!(count(html, "class=\"crash\""), d.downs.len());
    assert_eq!(count(html, "class=\"fault\""), d.faults.len());
    assert_eq!(count(html, "class=\"commit\""), d.commits.len());
    assert_eq!(
        count(html, "class=\"msg\" data-kind=\"Heartbeat\""),
        d.arrows
            .iter()
            .filter(|a| a.received && a.kind == "Heartbeat")
            .count()
    );
    for outside in ["http://", "https://", "src=", "<link", "@import"] {
        let allowed = if outside == "http://" {
            count(html, "xmlns=\"http://www.w3.org/2000/svg\"")
        } else {
            0
        };
        assert_eq!(count(html, outside), allowed, "{outside} in the page");
    }
}

#[test]
fn clean_run_draws_every_lane_and_delivery() {
    let (out, html) = recorded(clean());
    assert!(out.violations.is_empty(), "{:?}", out.violations);
    let d = out.diagram.as_deref().expect("recorded");
    assert_eq!(d.lanes.len(), 3);
    assert!(d.arrows.len() > 100, "{} arrows", d.arrows.len());
    assert!(d.violation.is_none());
    assert!(d.dropped > 0 && d.duplicated > 0);
    assert!(count(&html, "data-dup=\"1\"") > 0);
    assert!(d.commits.iter().any(|c| c.slot > 0));
    check_structure(d, &html);
    assert_eq!(count(&html, "class=\"violation\""), 0);
    let dir = temp_dir("clean");
    let path = dir.join("clean.html");
    std::fs::write(&path, &html).expect("write page");
    browse(&path, d, false);
}

#[test]
fn counterexample_is_drawn_with_its_violation() {
    let opts = counterexample();
    let (out, html) = recorded(opts.clone());
    assert!(!out.violations.is_empty(), "the planted bug is caught");
    let d = out.diagram.as_deref().expect("recorded");
    let (at, text) = d.violation.clone().expect("a violation");
    assert_eq!(text, out.violations[0]);
    assert!(at > 0 && at <= d.end);
    check_structure(d, &html);
    assert_eq!(count(&html, "class=\"violation\""), 1);
    assert!(html.contains(&format!(
        "First violation at t={}.{:02}",
        at / 100,
        at % 100
    )));
    // The binary's `--diagram` writes the very same page.
    let dir = temp_dir("counterexample");
    let path = dir.join("counterexample.html");
    let status = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["--seed", "3", "--nodes", "3", "--learners", "0"])
        .args(["--steps", "30", "--liveness", "200"])
        .args(["--bug", "CommitWithoutQuorum", "--diagram"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sim runs");
    assert!(!status.success(), "the run reports its violation");
    assert_eq!(std::fs::read_to_string(&path).expect("page written"), html);
    browse(&path, d, true);
}

/// Chromium, if installed.
fn chromium() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/bin/chromium");
    if fixed.exists() {
        return Some(fixed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.exists())
}

/// Runs headless Chromium with `args`, killed after a minute.
fn headless(browser: &Path, profile: &Path, args: &[String]) -> Vec<u8> {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).expect("stdout read");
        buf
    });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("chromium waits").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader joins")
}

/// The browser's DOM holds every lane and arrow (counted by the page's
/// own script after parsing), and its screenshot is a real picture.
fn browse(page: &Path, d: &Diagram, violation: bool) {
    let Some(browser) = chromium() else {
        println!("chromium not found: the browser part was skipped");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium for this test"
        );
        return;
    };
    let dir = page.parent().expect("page dir");
    let url = format!("file://{}", page.display());
    let dom = headless(
        &browser,
        &dir.join("profile-dom"),
        &["--dump-dom".to_string(), url.clone()],
    );
    let dom = String::from_utf8_lossy(&dom);
    let drawn = |k: &str, n: usize| {
        let attr = format!("data-{k}=\"{n}\"");
        assert!(dom.contains(&attr), "rendered DOM lacks {attr}");
    };
    drawn("lane", d.lanes.len());
    drawn("msg", d.received_arrows());
    drawn("drop", d.drops.len());
    drawn("crash", d.downs.len());
    drawn("violation", usize::from(violation));
    assert_eq!(count(&dom, "class=\"msg\""), d.received_arrows());
    let shot = dir.join("shot.png");
    headless(
        &browser,
        &dir.join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600".to_string(),
            url,
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
}
