//! Counters and gauges, rendered as Prometheus text by `GET /metrics`.
//!
//! Plain atomics: the driver thread, the transport tasks and the HTTP
//! handlers all update them without taking a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why an incoming peer frame was refused (one counter each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    WrongCluster,
    UnknownNode,
    Empty,
    Malformed,
    TooLarge,
    /// A frame whose `from` is not the member its connection's certificate
    /// names.
    Impersonation,
}

const REJECTIONS: [(Rejection, &str); 6] = [
    (Rejection::WrongCluster, "wrong_cluster"),
    (Rejection::UnknownNode, "unknown_node"),
    (Rejection::Empty, "empty"),
    (Rejection::Malformed, "malformed"),
    (Rejection::TooLarge, "too_large"),
    (Rejection::Impersonation, "impersonation"),
];

/// Upper bounds (seconds) of the sync latency histogram buckets.
const SYNC_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
];

/// Every metric of one node.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) proposals: AtomicU64,
    pub(crate) proposals_refused: AtomicU64,
    pub(crate) entries_applied: AtomicU64,
    pub(crate) commands_applied: AtomicU64,
    pub(crate) reads_linearizable: AtomicU64,
    pub(crate) reads_stale: AtomicU64,
    pub(crate) role_changes: AtomicU64,
    pub(crate) elections: AtomicU64,
    pub(crate) leaderships: AtomicU64,
    pub(crate) step_errors: AtomicU64,
    pub(crate) redirects: AtomicU64,
    pub(crate) snapshots_taken: AtomicU64,
    pub(crate) snapshots_installed: AtomicU64,
    pub(crate) client_timeouts: AtomicU64,
    pub(crate) client_overloads: AtomicU64,
    pub(crate) peer_sent: AtomicU64,
    pub(crate) peer_received: AtomicU64,
    pub(crate) peer_send_dropped: AtomicU64,
    pub(crate) peer_recv_dropped: AtomicU64,
    pub(crate) peer_connects: AtomicU64,
    pub(crate) peer_conns_refused: AtomicU64,
    pub(crate) admin_refused: AtomicU64,
    pub(crate) leader_waits: AtomicU64,
    rejected: [AtomicU64; REJECTIONS.len()],
    /// Inputs waiting for the driver.
    pub(crate) driver_queue: AtomicI64,
    /// Messages waiting in the peers' send queues, all peers together.
    pub(crate) peer_queue: AtomicI64,
    /// Clients waiting for a decision or a read.
    pub(crate) waiting_clients: AtomicI64,
    pub(crate) sessions: AtomicI64,
    sync_count: AtomicU64,
    sync_micros: AtomicU64,
    sync_buckets: [AtomicU64; SYNC_BUCKETS.len()],
}

impl Metrics {
    pub(crate) fn reject(&self, why: Rejection) {
        if let Some(i) = REJECTIONS.iter().position(|(r, _)| *r == why) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    /// Records one synced storage transaction.
    pub(crate) fn sync(&self, took: Duration) {
        self.sync_count.fetch_add(1, Relaxed);
        self.sync_micros
            .fetch_add(took.as_micros().try_into().unwrap_or(u64::MAX), Relaxed);
        let secs = took.as_secs_f64();
        if let Some(i) = SYNC_BUCKETS.iter().position(|b| secs <= *b) {
            self.sync_buckets[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition of every metric, plus `gauges` (name,
    /// help, value) describing the node's protocol state.
    pub(crate) fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 24] = [
            (
                "proposals_total",
                "commands proposed as leader",
                &self.proposals,
            ),
            (
                "proposals_refused_total",
                "proposals refused (not leader, overload)",
                &self.proposals_refused,
            ),
            (
                "entries_applied_total",
                "decided entries applied (one block each)",
                &self.entries_applied,
            ),
            (
                "commands_applied_total",
                "client commands applied",
                &self.commands_applied,
            ),
            (
                "reads_linearizable_total",
                "reads served through read_index",
                &self.reads_linearizable,
            ),
            (
                "reads_stale_total",
                "reads served from local state",
                &self.reads_stale,
            ),
            (
                "role_changes_total",
                "changes of protocol role",
                &self.role_changes,
            ),
            (
                "elections_total",
                "elections started (phase 1 as candidate)",
                &self.elections,
            ),
            (
                "leaderships_total",
                "times this node became leader",
                &self.leaderships,
            ),
            (
                "step_errors_total",
                "peer messages the protocol refused",
                &self.step_errors,
            ),
            (
                "redirects_total",
                "client requests redirected to the leader",
                &self.redirects,
            ),
            (
                "snapshots_taken_total",
                "snapshots taken (each compacting the log behind it)",
                &self.snapshots_taken,
            ),
            (
                "snapshots_installed_total",
                "snapshots received from the leader and installed",
                &self.snapshots_installed,
            ),
            (
                "client_timeouts_total",
                "client requests that timed out waiting",
                &self.client_timeouts,
            ),
            (
                "client_overloads_total",
                "client requests refused because the driver queue was full",
                &self.client_overloads,
            ),
            (
                "peer_messages_sent_total",
                "protocol messages handed to the transport",
                &self.peer_sent,
            ),
            (
                "peer_messages_received_total",
                "protocol messages admitted from peers",
                &self.peer_received,
            ),
            (
                "peer_send_dropped_total",
                "messages dropped on a full send queue",
                &self.peer_send_dropped,
            ),
            (
                "peer_recv_dropped_total",
                "messages dropped on a full driver queue",
                &self.peer_recv_dropped,
            ),
            (
                "peer_connects_total",
                "outgoing peer connections established",
                &self.peer_connects,
            ),
            (
                "leader_waits_total",
                "times a client request waited for a leader instead of failing",
                &self.leader_waits,
            ),
            (
                "admin_requests_refused_total",
                "administrative requests without a valid admin token",
                &self.admin_refused,
            ),
            (
                "peer_connections_refused_total",
                "incoming peer connections closed before admitting a frame \
                 (over a limit, failed TLS handshake, silent too long)",
                &self.peer_conns_refused,
            ),
            (
                "syncs_total",
                "synced storage transactions (one per Ready)",
                &self.sync_count,
            ),
        ];
        for (name, help, c) in counters {
            metric(&mut out, name, help, "counter", "", c.load(Relaxed) as f64);
        }
        let _ = writeln!(
            out,
            "# HELP kvnode_peer_frames_rejected_total peer frames refused at admission"
        );
        let _ = writeln!(out, "# TYPE kvnode_peer_frames_rejected_total counter");
        for (i, (_, reason)) in REJECTIONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "kvnode_peer_frames_rejected_total{{reason=\"{reason}\"}} {}",
                self.rejected[i].load(Relaxed)
            );
        }
        for (name, help, g) in [
            (
                "driver_queue_depth",
                "inputs waiting for the driver",
                &self.driver_queue,
            ),
            (
                "peer_queue_depth",
                "messages waiting in peer send queues",
                &self.peer_queue,
            ),
            (
                "waiting_clients",
                "client requests waiting for a decision or read",
                &self.waiting_clients,
            ),
            (
                "client_sessions",
                "client sessions held (bounded; evicted least recently applied first)",
                &self.sessions,
            ),
        ] {
            metric(
                &mut out,
                name,
                help,
                "gauge",
                "",
                g.load(Relaxed).max(0) as f64,
            );
        }
        for (name, help, v) in gauges {
            metric(&mut out, name, help, "gauge", "", *v);
        }
        self.render_sync_histogram(&mut out);
        out
    }

    fn render_sync_histogram(&self, out: &mut String) {
        let name = "kvnode_sync_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} latency of one synced storage transaction"
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, le) in SYNC_BUCKETS.iter().enumerate() {
            cumulative += self.sync_buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.sync_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sync_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "# HELP kvnode_{name} {help}");
    let _ = writeln!(out, "# TYPE kvnode_{name} {kind}");
    let _ = writeln!(out, "kvnode_{name}{labels} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_rejections_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.proposals.fetch_add(3, Relaxed);
        m.reject(Rejection::WrongCluster);
        m.reject(Rejection::Malformed);
        m.sync(Duration::from_micros(300));
        m.sync(Duration::from_millis(3));
        let text = m.render(&[("committed", "last committed slot", 42.0)]);
        assert!(text.contains("kvnode_proposals_total 3\n"), "{text}");
        assert!(text.contains("kvnode_peer_frames_rejected_total{reason=\"wrong_cluster\"} 1\n"));
        assert!(text.contains("kvnode_committed 42\n"));
        assert!(text.contains("kvnode_sync_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("kvnode_sync_seconds_bucket{le=\"0.004\"} 2\n"));
        assert!(text.contains("kvnode_sync_seconds_count 2\n"));
    }
}
