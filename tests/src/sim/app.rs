//! The application on each simulated node: a KV state machine that applies
//! decided entries, installs leaders' snapshots and compacts its log.

use super::*;

impl Sim {
    /// The application replaces its state with a snapshot from the leader.
    pub(super) fn install(&mut self, id: u64, s: &paxos_core::proto::Snapshot) {
        let slot = s.metadata.as_ref().map_or(0, |m| m.slot);
        self.checker.on_install(id, slot, &s.data);
        self.hash.mix(&[self.now, TRACE_INSTALL, id, slot]);
        self.trace(|| format!("node {id} installs a snapshot at slot {slot}"));
        let Some(kv) = KvState::decode(&s.data) else {
            self.checker.snapshot_undecodable(id, slot);
            return;
        };
        let conf = s.metadata.as_ref().and_then(|m| m.conf_state.clone());
        let node = self.node(id);
        node.kv = kv;
        node.applied = slot;
        node.snapshot_slot = slot;
        node.conf = conf.unwrap_or_default();
        // Commands applied inside the snapshot were answered by whichever
        // node applied them; the client retries if that answer was lost.
        node.waiting.clear();
        self.max_applied = self.max_applied.max(slot);
    }

    /// The application snapshots its state every `compact_every` applied
    /// slots and lets storage discard the log below it.
    pub(super) fn maybe_compact(&mut self, id: u64) {
        let (every, keep) = (self.mix.compact_every, self.mix.compact_keep);
        let node = self.node(id);
        if every == 0 || node.applied < node.snapshot_slot + every {
            return;
        }
        let (slot, data) = (node.applied, node.kv.encode());
        node.snapshot_slot = slot;
        {
            let mut disk = node.storage.wl();
            disk.create_snapshot(slot, node.conf.clone(), data.clone());
            disk.compact(slot.saturating_sub(keep));
        }
        self.checker.on_snapshot(id, slot, &data);
        self.hash.mix(&[self.now, TRACE_SNAPSHOT, id, slot]);
        self.trace(|| format!("node {id} snapshots at slot {slot} and compacts"));
    }

    pub(super) fn apply(&mut self, id: u64, e: &paxos_core::proto::Entry) {
        self.checker.on_apply(id, e);
        self.node(id).applied = e.slot;
        self.max_applied = self.max_applied.max(e.slot);
        self.hash.mix(&[self.now, TRACE_APPLY, id, e.slot]);
        if let Some(cc) = e.conf_change() {
            match cc.ok().filter(|cc| cc.result.is_some()) {
                Some(cc) => match cc.outcome(&self.node(id).conf, e.slot) {
                    Some(cs) => {
                        self.trace(|| {
                            format!("node {id} applies slot {} membership {cs:?}", e.slot)
                        });
                        self.node(id).conf = cs;
                    }
                    None => self.trace(|| {
                        format!(
                            "node {id} applies slot {}: a void membership change",
                            e.slot
                        )
                    }),
                },
                None => self.checker.garbled_change_applied(id, e.slot),
            }
            return;
        }
        if e.kind == EntryKind::Noop as i32 {
            self.trace(|| format!("node {id} applies slot {} (no-op)", e.slot));
            return;
        }
        // The checker saw a malformed batch above.
        for c in e.commands().into_iter().flatten() {
            let Some(cmd) = Command::decode(&c.data) else {
                continue;
            };
            let node = self.node(id);
            let ret = node.kv.apply(&cmd);
            let waiting = node.waiting.remove(&(cmd.client, cmd.seq));
            self.trace(|| {
                format!(
                    "node {id} applies {} c{}#{} {:?} -> {ret:?}",
                    c.position, cmd.client, cmd.seq, cmd.op
                )
            });
            if let (true, Some(ret)) = (waiting, ret) {
                let reply = Reply::Done {
                    seq: cmd.seq,
                    at: Some(c.position),
                    ret,
                };
                self.send_to_client(cmd.client, reply);
            }
        }
    }
}
