//! Faults and membership churn: scripted or random faults applied to the
//! network and the nodes, and voters replaced one at a time.

use super::*;

impl Sim {
    /// One step of membership churn: pick a voter to replace with the next
    /// spare, then walk add, catch up, promote, remove, retire.
    pub(super) fn reconfig(&mut self) {
        if !self.faults_on {
            return;
        }
        self.schedule(self.now + self.mix.reconfig_every * TICK, Ev::Reconfig);
        let Some(leader) = self.current_leader() else {
            return;
        };
        let Some(st) = self.node(leader).raw.as_ref().map(|r| r.status()) else {
            return;
        };
        if self.replacement.is_none() {
            let spare = self.n + self.joined.len() as u64 + 1;
            if spare > self.total {
                return;
            }
            // Half the time the leader itself is replaced.
            let old = if self.rng.chance(0.5) {
                leader
            } else {
                st.voters[self.rng.range_inclusive(0, st.voters.len() as u64 - 1) as usize]
            };
            self.replacement = Some(Replacement::new(spare, old));
        }
        let Some(mut r) = self.replacement else {
            return;
        };
        let slack = self.mix.inflight_slots / 2;
        let caught_up = self
            .node(r.new)
            .raw
            .as_ref()
            .is_some_and(|n| n.status().applied + slack >= st.committed);
        let action = r.next(&st.voters, &st.learners, caught_up);
        self.replacement = Some(r);
        self.trace(|| format!("RECONFIG {action:?}"));
        self.hash.mix(&[self.now, TRACE_RECONFIG, r.new, r.old]);
        match action {
            Action::Boot(id) => {
                self.joined.insert(id);
                self.node(id).boot_conf = Some(ConfState {
                    voters: st.voters.clone(),
                    learners: st.learners.iter().copied().chain([id]).collect(),
                    since: 0,
                    ..Default::default()
                });
                self.start(id);
                self.drive(id);
            }
            Action::Propose(t, id) => {
                let cc = ConfChange {
                    change_type: t as i32,
                    node_id: id,
                    ..ConfChange::default()
                };
                if let Some(raw) = self.node(leader).raw.as_mut() {
                    // Refusals (pending change, learner behind) retry later.
                    if let Err(e) = raw.propose_conf_change(cc) {
                        self.trace(|| format!("membership change refused: {e}"));
                    }
                }
                self.drive(leader);
            }
            Action::Retire(id) => {
                self.crash(id);
                self.retired.insert(id);
                self.replacement = None;
            }
            Action::Wait => {}
        }
    }

    pub(super) fn apply_fault(&mut self, f: Fault) {
        let valid = |x: u64| (1..=self.total).contains(&x);
        self.trace(|| format!("FAULT {f}"));
        match f {
            Fault::Crash { node, down } if valid(node) => {
                self.crash(node);
                self.schedule(self.now + down.max(1) * TICK, Ev::Restart(node));
            }
            Fault::Isolate(a) if valid(a) => {
                for b in 1..=self.total {
                    if b != a {
                        self.net.cut_both(a, b);
                    }
                }
            }
            Fault::Split(mask) => {
                // Bit i is the i-th node present (node i+1 unless churned).
                let present = self.present_ids();
                let side = |x: u64| {
                    present
                        .iter()
                        .position(|&p| p == x)
                        .map_or(0, |i| (mask >> i) & 1)
                };
                for a in 1..=self.total {
                    for b in 1..=self.total {
                        if side(a) != side(b) {
                            self.net.cut(a, b);
                        }
                    }
                }
            }
            Fault::OneWay { from, to } if valid(from) && valid(to) => self.net.cut(from, to),
            Fault::CutPair(a, b) if valid(a) && valid(b) => self.net.cut_both(a, b),
            Fault::Clog { from, to, ticks } if valid(from) && valid(to) => {
                self.net.clog(from, to, self.now + ticks * TICK);
            }
            Fault::Heal => self.heal(),
            Fault::Stall(a) if valid(a) => {
                for b in 1..=self.total {
                    if b != a {
                        self.net.cut_both(a, b);
                    }
                }
                let node = self.node(a);
                if node.stalled_period.is_none() {
                    node.stalled_period = Some(node.tick_period);
                    node.tick_period *= 4;
                }
            }
            Fault::Campaign(id) if valid(id) => {
                if let Some(raw) = self.node(id).raw.as_mut() {
                    let result = raw.campaign();
                    self.trace(|| format!("HOST campaign() at node {id}: {result:?}"));
                }
                self.drive(id);
            }
            Fault::Transfer(to) if valid(to) => {
                if let Some(l) = self.current_leader() {
                    if let Some(raw) = self.node(l).raw.as_mut() {
                        // Refusals (a transfer to itself) are fine.
                        let _ = raw.transfer_leader(to);
                    }
                    self.drive(l);
                }
            }
            _ => {}
        }
        self.hash.mix(&[self.now, TRACE_FAULT, fault_word(&f)]);
        if self.rec.is_some() {
            self.record_fault(&f);
        }
    }

    /// Restores every link and every stalled clock.
    pub(super) fn heal(&mut self) {
        self.net.heal();
        for node in &mut self.nodes {
            if let Some(period) = node.stalled_period.take() {
                node.tick_period = period;
            }
        }
    }
}

pub(super) fn fault_word(f: &Fault) -> u64 {
    match *f {
        Fault::Crash { node, down } => 1 << 56 | node << 32 | down,
        Fault::Isolate(n) => 2 << 56 | n,
        Fault::Split(m) => 3 << 56 | m,
        Fault::OneWay { from, to } => 4 << 56 | from << 32 | to,
        Fault::CutPair(a, b) => 5 << 56 | a << 32 | b,
        Fault::Clog { from, to, ticks } => 6 << 56 | from << 40 | to << 32 | ticks,
        Fault::Heal => 7 << 56,
        Fault::Transfer(n) => 8 << 56 | n,
        Fault::Stall(n) => 9 << 56 | n,
        Fault::Campaign(n) => 10 << 56 | n,
    }
}
