//! Snapshots: a peer that needs slots the leader has compacted receives the
//! leader's snapshot instead, in bounded chunks, and continues the log after
//! it (PROTOCOL.md rules S1-S3: "a peer behind the leader's compacted prefix gets a
//! snapshot instead").
//!
//! A snapshot covers only decided slots (the application snapshots what it
//! applied), so installing one never accepts anything: it tells the peer
//! that every slot it covers is chosen, with the state those values produce.

use super::{malformed, Node, Role};
use crate::errors::Result;
use crate::progress::Progress;
use crate::storage::Storage;
use bytes::{Bytes, BytesMut};
use paxos_proto::{Ballot, Body, InstallSnapshot, Snapshot, SnapshotMetadata, SnapshotReply};

/// A snapshot being assembled from chunks, keyed by (ballot, slot): a new
/// leader, or a newer snapshot, starts over.
#[derive(Clone, Debug, Hash)]
pub(super) struct SnapshotRecv {
    ballot: Ballot,
    metadata: SnapshotMetadata,
    buf: BytesMut,
}

/// The next chunk to send for the transfer in `p`, if one is due.
pub(super) fn next_chunk(p: &mut Progress, ballot: Ballot, max_bytes: u64) -> Option<Body> {
    let s = p.snapshot.as_mut()?;
    if s.chunk_sent {
        return None;
    }
    let total = s.snapshot.data.len() as u64;
    let offset = s.acked.min(total);
    let end = offset.saturating_add(max_bytes.max(1)).min(total);
    s.chunk_sent = true;
    Some(Body::InstallSnapshot(Box::new(InstallSnapshot {
        ballot: Some(ballot),
        metadata: s.snapshot.metadata.clone(),
        offset,
        data: s.snapshot.data.slice(offset as usize..end as usize),
        done: end == total,
    })))
}

/// The peer `p` needs slot `p.next`, which storage compacted: switch it to
/// the snapshot, if the snapshot covers that slot (rule S1).
pub(super) fn start_snapshot<S: Storage>(
    p: &mut Progress,
    storage: &S,
    logger: &slog::Logger,
) -> bool {
    match storage.snapshot() {
        Ok(snap) if snap.metadata.as_ref().is_some_and(|m| m.slot >= p.next) => {
            slog::info!(logger, "sending snapshot"; "peer" => p.id,
                "slot" => snap.metadata.as_ref().map_or(0, |m| m.slot),
                "bytes" => snap.data.len(), "peer_next" => p.next);
            p.become_snapshot(snap);
            true
        }
        Ok(snap) => {
            slog::error!(logger, "snapshot does not cover the compacted prefix";
                "peer" => p.id, "needed" => p.next,
                "snapshot" => snap.metadata.as_ref().map_or(0, |m| m.slot));
            false
        }
        Err(e) => {
            slog::warn!(logger, "cannot read snapshot"; "peer" => p.id, "error" => %e);
            false
        }
    }
}

impl<S: Storage> Node<S> {
    /// Leader: a peer reports how much of the snapshot it holds.
    pub(super) fn on_snapshot_reply(&mut self, from: u64, b: Ballot, r: &SnapshotReply) {
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if b != ls.ballot {
            return;
        }
        let Some(i) = ls.progress.iter().position(|p| p.id == from) else {
            return;
        };
        let p = &mut ls.progress[i];
        p.recent_active = true;
        let Some(s) = p.snapshot.as_mut().filter(|s| s.slot() == r.slot) else {
            return; // a reply to an older transfer
        };
        if r.matched >= r.slot {
            // Installed (or the peer already had it): continue with the log.
            // The snapshot is what this leadership sent; more is not claimed.
            p.sent = p.sent.max(r.slot);
            p.matched = p.matched.max(r.matched.min(p.sent));
            p.become_probe();
        } else if r.received > s.acked {
            s.acked = r.received;
            s.chunk_sent = false;
        } else {
            // A duplicate, or the peer lost its partial copy (it restarted):
            // only a stall makes the leader resend, so that duplicated
            // replies cannot multiply chunks.
            s.resume_at = Some(r.received);
            return;
        }
        self.send_accepts_to(from);
    }

    /// Follower: a chunk of the leader's snapshot.
    pub(super) fn on_install_snapshot(
        &mut self,
        from: u64,
        b: Ballot,
        m: InstallSnapshot,
    ) -> Result<()> {
        let Some(metadata) = m.metadata else {
            return Err(malformed(from, "snapshot chunk without metadata"));
        };
        if let Some(cs) = &metadata.conf_state {
            if !cs.voters.is_empty()
                && crate::membership::Membership::new(&cs.voters, &cs.learners).is_err()
            {
                return Err(malformed(from, "snapshot with an invalid membership"));
            }
        }
        if b < self.promised {
            self.reject(from, b);
            return Ok(());
        }
        // A snapshot tells this node that every slot it covers is chosen,
        // and replaces its membership: it is taken only from the leader it
        // already follows in its promised ballot (that leader's Accepts and
        // heartbeats come first, and a stalled transfer is resent), never
        // from a stale ballot or a sender it does not follow. The leader
        // may be a member this node has not learned of yet (a lagging node
        // learns of later members from the leader's own messages), so its
        // membership is not checked: telling members from strangers is the
        // transport's authentication.
        if b != self.promised || self.leader != Some(from) {
            slog::debug!(self.logger, "snapshot chunk ignored: not from the leader followed";
                "from" => from, "ballot" => %b, "leader" => ?self.leader);
            return Ok(());
        }
        self.follow(b.node);
        let slot = metadata.slot;
        if slot <= self.log.committed {
            // Everything it covers is decided here already.
            self.snap_recv = None;
            self.snapshot_reply(from, b, slot, m.offset, self.accept_prefix);
            return Ok(());
        }
        let same = |r: &SnapshotRecv| r.ballot == b && r.metadata.slot == slot;
        if m.offset == 0 && !self.snap_recv.as_ref().is_some_and(same) {
            self.snap_recv = Some(SnapshotRecv {
                ballot: b,
                metadata,
                buf: BytesMut::new(),
            });
        }
        let received = match &mut self.snap_recv {
            Some(r) if same(r) => {
                if r.buf.len() as u64 == m.offset {
                    let total = (r.buf.len() as u64).saturating_add(m.data.len() as u64);
                    if total > self.cfg.max_snapshot_bytes {
                        self.snap_recv = None;
                        return Err(malformed(from, "snapshot larger than max_snapshot_bytes"));
                    }
                    r.buf.extend_from_slice(&m.data);
                    if m.done {
                        let r = self.snap_recv.take().map(|r| (r.metadata, r.buf.freeze()));
                        if let Some((metadata, data)) = r {
                            self.install_snapshot(metadata, data);
                        }
                        self.snapshot_reply(from, b, slot, m.offset, self.accept_prefix);
                        return Ok(());
                    }
                }
                self.snap_recv.as_ref().map_or(0, |r| r.buf.len() as u64)
            }
            _ => 0,
        };
        self.snapshot_reply(from, b, slot, received, 0);
        Ok(())
    }

    fn snapshot_reply(&mut self, to: u64, b: Ballot, slot: u64, received: u64, matched: u64) {
        self.send(
            to,
            Body::SnapshotReply(SnapshotReply {
                ballot: Some(b),
                slot,
                received,
                matched,
            }),
        );
    }

    /// Every slot <= the snapshot's slot is decided, with the state it
    /// carries: the log continues after it, and the next `Ready` hands the
    /// snapshot to the host to persist and install.
    fn install_snapshot(&mut self, metadata: SnapshotMetadata, data: Bytes) {
        let slot = metadata.slot;
        slog::info!(self.logger, "installing snapshot"; "slot" => slot, "bytes" => data.len());
        #[cfg(feature = "planted-bugs")]
        let floor = self.storage.first_slot().unwrap_or(1).saturating_sub(1);
        self.log.install(slot);
        #[cfg(feature = "planted-bugs")]
        if planted!(self.cfg, ReportUnpersistedSnapshot) {
            self.log.forget_snapshot_floor(floor);
        }
        self.accept_prefix = self.accept_prefix.max(slot);
        self.extend_accept_prefix();
        if let Some(cs) = metadata
            .conf_state
            .as_ref()
            .filter(|cs| !cs.voters.is_empty())
        {
            if let Ok(m) = crate::membership::Membership::from_conf_state(cs) {
                self.set_members(m);
            }
        }
        self.hs_dirty = true;
        self.pending_snapshot = Some(Snapshot {
            metadata: Some(metadata),
            data,
        });
    }
}
