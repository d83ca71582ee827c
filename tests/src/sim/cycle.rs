//! The host's `Ready` cycle for one simulated node: take, persist, send,
//! apply, advance — pipelined, torn and crashed as the [`HostMix`] of the
//! run says, within what the `Ready` contract allows.
//!
//! [`HostMix`]: crate::host::HostMix

use super::{Ev, Sim, TICK};
use crate::disk::Reached;
use crate::host;
use crate::trace::TRACE_HOST_CAMPAIGN;
use paxos_core::proto::{Body, Message, Snapshot};
use paxos_core::Ready;

/// Chance of a crash at each of the four points inside a Ready cycle.
const READY_CRASH_CHANCE: f64 = 0.0015;
/// Chance of a crash between two parts of a torn persist.
const TORN_CRASH_CHANCE: f64 = 0.003;
/// Readies one input may cause before the host loop counts as spinning.
const MAX_READIES_PER_DRIVE: usize = 10_000;

impl Sim {
    pub(super) fn drive(&mut self, id: u64) {
        self.drive_with(id, false, None);
    }

    /// Takes the node's `Ready`s until it has nothing to do. A kind host
    /// (pipeline 1) completes each before taking the next; otherwise they
    /// wait for a flush while later inputs are stepped, and only a full
    /// pipeline makes the host complete the oldest first. Every input's
    /// `Ready` is taken right after it, so the observer judges each grant in
    /// the state the node made it in.
    pub(super) fn drive_with(&mut self, id: u64, was_leader: bool, exempt: Option<u64>) {
        let pipeline = self.host.pipeline;
        for _ in 0..MAX_READIES_PER_DRIVE {
            let node = self.node(id);
            let Some(raw) = node.raw.as_mut() else {
                return;
            };
            if !raw.has_ready() {
                self.schedule_flush(id);
                return;
            }
            if pipeline > 1 && self.node(id).inflight.len() as u64 >= pipeline {
                let oldest = self.node(id).inflight.pop_front();
                if let Some(rd) = oldest {
                    if !self.complete(id, rd) {
                        return;
                    }
                }
                continue;
            }
            let Some(raw) = self.node(id).raw.as_mut() else {
                return;
            };
            let mut rd = raw.ready();
            // The observer judges a grant when the node makes it, whatever
            // arrives before the host gets to send it.
            let grants: Vec<Message> = rd
                .messages()
                .iter()
                .chain(rd.persisted_messages())
                .filter(|m| {
                    matches!(
                        m.body,
                        Some(
                            Body::Promise(_)
                                | Body::PrePrepareReply(_)
                                | Body::PrePrepare(_)
                                | Body::Prepare(_)
                        )
                    )
                })
                .cloned()
                .collect();
            for m in &grants {
                self.check_stickiness(id, m, was_leader, exempt == Some(m.to));
            }
            // A leader's own traffic leaves before its disk write (and a
            // crash may come right after). Drained, and decided entries
            // read in place: the Ready's vectors go back to the node for
            // reuse, so every fault also exercises buffer reuse (a stale
            // message in a reused buffer would be sent twice).
            for m in rd.drain_messages() {
                self.send(id, m);
            }
            if self.ready_crash(id, "before persisting") {
                return;
            }
            if pipeline > 1 {
                self.node(id).inflight.push_back(rd);
            } else if !self.complete(id, rd) {
                return;
            }
        }
        self.checker.endless_readies(id, MAX_READIES_PER_DRIVE);
        self.done = true;
    }

    /// Makes sure a flush of the node's taken `Ready`s is scheduled.
    fn schedule_flush(&mut self, id: u64) {
        let node = self.node(id);
        if node.inflight.is_empty() || node.flush_scheduled {
            return;
        }
        node.flush_scheduled = true;
        // A disk slower than a third of the election timeout keeps any
        // election from completing: no deployment may run so, and liveness
        // could not be asked of it.
        let most = self.host.flush_delay.min(self.election_ticks * TICK / 3);
        let at = self.now + self.host_rng.range_inclusive(1, most);
        self.schedule(at, Ev::Flush(id));
    }

    /// The host gets to the `Ready`s it took: completes them in order, then
    /// takes what their advances (the node's replies to itself) caused.
    pub(super) fn flush(&mut self, id: u64) {
        self.node(id).flush_scheduled = false;
        while let Some(rd) = self.node(id).inflight.pop_front() {
            if !self.complete(id, rd) {
                return;
            }
        }
        self.drive(id);
    }

    /// Persists, sends, applies and advances one `Ready`, with a chance of
    /// crashing between each pair of steps. False if the node crashed.
    fn complete(&mut self, id: u64, mut rd: Ready) -> bool {
        let snapshot = rd.take_snapshot();
        let early = self.opts.ack_before_sync;
        // Decided entries may be revealed before the sync (rule D5); the
        // planted bug goes further and sends the persisted messages too.
        let reveal_early = early || self.host.reveal_early;
        let mut applied_any = false;
        if early {
            // The planted host bug: replies leave before the sync, and stay
            // out when it fails.
            for m in rd.drain_persisted_messages() {
                self.send(id, m);
            }
        }
        if reveal_early {
            applied_any = self.reveal(id, &mut rd, snapshot.as_ref(), false);
        }
        if !self.persist(id, &rd, snapshot.as_ref()) {
            return false;
        }
        if self.ready_crash(id, "after persisting, before sending") {
            return false;
        }
        for m in rd.drain_persisted_messages() {
            self.send(id, m);
        }
        if self.ready_crash(id, "after sending, before applying") {
            return false;
        }
        if reveal_early {
            // Compaction waits for the persist: the log may drop only what
            // a durable snapshot covers.
            self.maybe_compact(id);
        } else {
            applied_any = self.reveal(id, &mut rd, snapshot.as_ref(), true);
        }
        if self.ready_crash(id, "after applying, before advancing") {
            return false;
        }
        if let Some(raw) = self.node(id).raw.as_mut() {
            raw.advance(rd);
        }
        if applied_any {
            self.check_membership(id);
        }
        true
    }

    /// Installs the `Ready`'s snapshot, applies its decided entries
    /// (answering the clients waiting here), compacts if `compact`, and
    /// serves the reads it confirmed. True if anything was applied.
    fn reveal(
        &mut self,
        id: u64,
        rd: &mut Ready,
        snapshot: Option<&Snapshot>,
        compact: bool,
    ) -> bool {
        let applied_any = snapshot.is_some() || !rd.committed_entries().is_empty();
        if let Some(s) = snapshot {
            self.install(id, s);
        }
        for e in rd.committed_entries() {
            self.apply(id, e);
        }
        if compact {
            self.maybe_compact(id);
        }
        let confirmed = rd.take_read_states();
        self.node(id)
            .reads_confirmed
            .extend(confirmed.into_iter().map(|r| (r.index, r.ctx)));
        self.serve_reads(id);
        applied_any
    }

    /// Persists a `Ready` in the contract's order: the snapshot, the
    /// entries, then the hard state with the membership. A failing disk's
    /// sync may fail, leaving a prefix of that on disk: the host then stops
    /// the node, which restarts from storage (rule D4). A torn host makes
    /// each part durable on its own, and may crash between them. False if
    /// the node stopped.
    fn persist(&mut self, id: u64, rd: &Ready, snapshot: Option<&Snapshot>) -> bool {
        let storage = self.node(id).storage.clone();
        let state = rd.hard_state().is_some() || rd.conf_state().is_some();
        let failed = if self.faults_on {
            self.disk.sync(
                &mut self.disk_rng,
                snapshot.is_some(),
                rd.entries().len(),
                state,
            )
        } else {
            None
        };
        let (failure, point) = match failed {
            Some(reached) => (Some(reached), None),
            None => match self.torn_point(rd, snapshot.is_some(), state) {
                Some((reached, point)) => (Some(reached), Some(point)),
                None => (None, None),
            },
        };
        let Err(host::SyncFailed(reached)) =
            host::persist(&storage, &mut self.checker, id, rd, snapshot, failure)
        else {
            return true;
        };
        let down = match point {
            Some(point) => {
                self.trace(|| format!("crash inside a torn persist, {point}"));
                self.crash(id);
                self.host_rng.range_inclusive(1, 40)
            }
            None => {
                self.sync_failures += 1;
                self.trace(|| {
                    format!(
                        "node {id}: sync fails ({reached:?} reached the disk); the host stops it"
                    )
                });
                self.crash(id);
                self.disk_rng.range_inclusive(1, 10)
            }
        };
        self.schedule(self.now + down * TICK, Ev::Restart(id));
        false
    }

    /// Where a torn persist crashes, if it does: after the snapshot, or
    /// after the entries (before the hard state that follows them).
    fn torn_point(
        &mut self,
        rd: &Ready,
        snapshot: bool,
        state: bool,
    ) -> Option<(Reached, &'static str)> {
        if !self.host.torn_persist {
            return None;
        }
        if snapshot && self.torn_crash() {
            return Some((Reached::Snapshot, "after the snapshot"));
        }
        if state && !rd.entries().is_empty() && self.torn_crash() {
            return Some((Reached::AllButState, "after the entries"));
        }
        None
    }

    fn torn_crash(&mut self) -> bool {
        self.faults_on && self.host_rng.chance(TORN_CRASH_CHANCE)
    }

    fn ready_crash(&mut self, id: u64, point: &str) -> bool {
        if self.faults_on && self.mix.ready_crashes && self.rng.chance(READY_CRASH_CHANCE) {
            self.trace(|| format!("crash inside the Ready cycle {point}"));
            self.crash(id);
            let down = self.rng.range_inclusive(1, 40);
            self.schedule(self.now + down * TICK, Ev::Restart(id));
            return true;
        }
        false
    }

    /// The host calls `campaign()` at a random node, as an operator or a
    /// host's own failure detector might. Refusals (a learner, a lease held)
    /// are fine.
    pub(super) fn host_campaign(&mut self) {
        if !self.faults_on || self.host.campaign_every == 0 {
            return;
        }
        let next = self.now
            + self
                .host_rng
                .range_inclusive(1, 2 * self.host.campaign_every)
                * TICK;
        self.schedule(next, Ev::HostCampaign);
        let present = self.present_ids();
        let id = present[self.host_rng.range_inclusive(0, present.len() as u64 - 1) as usize];
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        let result = raw.campaign();
        self.trace(|| format!("HOST campaign() at node {id}: {result:?}"));
        self.hash.mix(&[self.now, TRACE_HOST_CAMPAIGN, id]);
        self.drive(id);
    }
}
