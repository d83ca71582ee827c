//! The liveness phase and the end of a run: everything heals, the run
//! settles (or fails to), and the outcome is checked and reported.

use super::*;

impl Sim {
    pub(super) fn begin_liveness(&mut self) {
        self.faults_on = false;
        self.heal();
        self.trace(|| "LIVENESS: faults stop, every link heals, crashed nodes restart".to_string());
        self.hash.mix(&[self.now, TRACE_LIVENESS]);
        for id in 1..=self.total {
            if self.node(id).raw.is_none() {
                self.start(id);
                self.drive(id);
            }
        }
    }

    pub(super) fn liveness_failed(&mut self) {
        let pending = self.clients.iter().filter(|c| c.pending.is_some()).count();
        let applied: Vec<String> = (1..=self.total)
            .map(|id| {
                self.nodes[(id - 1) as usize]
                    .raw
                    .as_ref()
                    .map_or("down".to_string(), |r| {
                        format!("{}/{}", r.status().applied, r.status().committed)
                    })
            })
            .collect();
        self.checker
            .not_settled(self.opts.liveness_ticks, pending, &applied);
    }

    /// Checks after every event: leaders per ballot, and (once healed)
    /// whether the run has settled.
    pub(super) fn check_step(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(raw) = &node.raw {
                let st = raw.status();
                if st.role == StateRole::Leader {
                    let id = i as u64 + 1;
                    self.checker.on_leader(id, st.promised);
                    if !st.voters.contains(&id) {
                        self.checker.non_voter_leads(id, st.promised);
                    }
                }
            }
        }
        if self.faults_on || self.clients.iter().any(|c| c.pending.is_some()) {
            return;
        }
        // Every member of the final membership (as the leader knows it)
        // is up and has applied everything decided. Nodes removed, or
        // booted but never added, are not members.
        let members = self.final_members();
        let states: Vec<(u64, u64)> = members
            .iter()
            .filter_map(|&id| self.nodes[(id - 1) as usize].raw.as_ref())
            .map(|r| (r.status().applied, r.status().committed))
            .collect();
        // Every acknowledgement came from some node's apply: settled means
        // each member has applied at least as far as any node did.
        let settled = !members.is_empty()
            && states.len() == members.len()
            && states
                .iter()
                .all(|&(a, c)| a == c && a == states[0].0 && a >= self.max_applied);
        if settled {
            self.trace(|| format!("SETTLED at slot {}", states[0].0));
            self.done = true;
        }
    }

    /// Final checks (linearizability of the client history) and the outcome.
    pub fn finish(mut self) -> Outcome {
        // No acknowledged command is lost: its slot still holds it, and once
        // settled every node has applied it.
        let applied_min = self
            .final_members()
            .into_iter()
            .map(|id| {
                self.nodes[(id - 1) as usize]
                    .raw
                    .as_ref()
                    .map_or(0, |r| r.status().applied)
            })
            .min()
            .unwrap_or(0);
        for (at, data) in &self.acked {
            let held = self.checker.holds(*at, data);
            if !held {
                self.checker.acknowledged_lost(*at);
            }
            if self.done && applied_min < at.slot {
                self.checker.acknowledged_not_applied(at.slot);
            }
        }
        let mut undecided_keys = Vec::new();
        match check(&self.history, LIN_BUDGET) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { key, ops } => {
                self.checker.not_linearizable(key, ops.len());
            }
            Verdict::Undecided { key } => undecided_keys.push(key),
        }
        let completed = self.history.ops.iter().filter(|o| o.ret.is_some()).count();
        let diagram = self.rec.take().map(|mut d| {
            d.finish(self.now, self.checker.violations());
            d
        });
        Outcome {
            seed: self.opts.seed,
            nodes: self.voters,
            learners: self.n - self.voters,
            steps: self.now / TICK,
            events: self.events,
            decided: self.checker.chosen_count(),
            batched: self.checker.batched_count(),
            ops: (self.history.len(), completed),
            elections: self.checker.leadership_count(),
            snapshots_installed: self.checker.installs,
            replaced: self.retired.len() as u64,
            quorums: self.quorums,
            violations: self.checker.into_violations(),
            trace_hash: self.hash.value(),
            undecided_keys,
            mix: self.mix,
            host: self.host,
            disk: self.disk,
            sync_failures: self.sync_failures,
            diagram,
        }
    }
}
