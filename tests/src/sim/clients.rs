//! The simulated clients: commands and reads sent to a node, retried on
//! timeouts and redirects, answered once applied (or read at a confirmed
//! index).

use super::*;

impl Sim {
    pub(super) fn arrive(&mut self, id: u64, cmd: Command) {
        let data = cmd.encode();
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        let reply = match raw.propose(data.clone()) {
            Ok(Proposed::At(slot)) => {
                self.checker.on_propose(&cmd, &data);
                self.node(id).waiting.insert((cmd.client, cmd.seq));
                self.trace(|| {
                    format!(
                        "node {id} proposes c{}#{} at slot {slot}",
                        cmd.client, cmd.seq
                    )
                });
                None
            }
            Ok(Proposed::Forwarded(_)) => None,
            Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
            Err(Error::ProposalDropped(_)) => Some(Reply::Busy),
            Err(e) => {
                self.checker.proposal_failed(id, e);
                Some(Reply::Busy)
            }
        };
        if let Some(reply) = reply {
            self.send_to_client(cmd.client, reply);
        }
        self.drive_after_proposal(id);
    }

    /// A host that lets proposals gather takes the node's `Ready` a while
    /// later, so those arriving meanwhile share a slot; otherwise at once.
    fn drive_after_proposal(&mut self, id: u64) {
        let delay = self.host.propose_delay;
        if delay == 0 {
            return self.drive(id);
        }
        if !self.node(id).drive_scheduled {
            self.node(id).drive_scheduled = true;
            let at = self.now + self.host_rng.range_inclusive(1, delay);
            self.schedule(at, Ev::Drive(id));
        }
    }

    pub(super) fn arrive_read(&mut self, id: u64, cmd: Command) {
        let Op::Get { key } = cmd.op else {
            return;
        };
        // One context per attempt: a retried read must not take over the
        // bookkeeping of an earlier attempt that may still confirm.
        self.read_attempts += 1;
        let ctx = Bytes::from(self.read_attempts.to_be_bytes().to_vec());
        let Some(raw) = self.node(id).raw.as_mut() else {
            return;
        };
        let reply = match raw.read_index(ctx.clone()) {
            Ok(()) => {
                let floor = self.max_applied;
                self.node(id)
                    .reads_asked
                    .insert(ctx, (cmd.client, cmd.seq, key, floor));
                self.trace(|| format!("node {id} read_index c{}#{}", cmd.client, cmd.seq));
                None
            }
            Err(Error::NotLeader { leader }) => Some(Reply::NotLeader(leader)),
            Err(_) => Some(Reply::Busy),
        };
        if let Some(reply) = reply {
            self.send_to_client(cmd.client, reply);
        }
        self.drive(id);
    }

    /// Serves every confirmed read whose index the application reached.
    pub(super) fn serve_reads(&mut self, id: u64) {
        let node = self.node(id);
        let applied = node.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut node.reads_confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        node.reads_confirmed = waiting;
        for (index, ctx) in ready {
            let node = self.node(id);
            let Some((client, seq, key, floor)) = node.reads_asked.remove(&ctx) else {
                continue;
            };
            // PROTOCOL.md rule R1: the read index covers everything decided before the
            // read began; a slot some node had already applied is decided.
            if index < floor {
                self.checker.read_below_floor(id, index, floor);
            }
            let node = self.node(id);
            let ret = Ret::Value(node.kv.get(key));
            self.trace(|| {
                format!("node {id} serves read c{client}#{seq} at index {index} -> {ret:?}")
            });
            self.send_to_client(client, Reply::Done { seq, at: None, ret });
        }
    }

    pub(super) fn send_to_client(&mut self, client: u64, reply: Reply) {
        let at = self.now
            + self
                .net_rng
                .range_inclusive(self.mix.min_delay, self.mix.max_delay);
        self.schedule(at, Ev::Reply { client, reply });
    }

    pub(super) fn client_wake(&mut self, c: u64) {
        let now = self.now;
        let generating = self.faults_on;
        let cl = &mut self.clients[c as usize];
        match &cl.pending {
            None if generating => {
                cl.seq += 1;
                let key = self.rng.range_inclusive(1, self.mix.keys);
                let op = match self.rng.range_inclusive(0, 19) {
                    0..=9 => Op::Put {
                        key,
                        value: c * 1_000_000 + cl.seq,
                    },
                    10..=16 => Op::Get { key },
                    _ => Op::Delete { key },
                };
                let cmd = Command {
                    client: c,
                    seq: cl.seq,
                    op,
                };
                let hist = self.history.invoke(c, op, now);
                cl.pending = Some(Pending {
                    cmd,
                    hist,
                    deadline: 0,
                    rotate: false,
                    read: matches!(op, Op::Get { .. }) && self.rng.chance(0.5),
                });
                self.trace(|| format!("client {c} invokes #{} {op:?}", cmd.seq));
                self.client_send(c);
            }
            Some(p) if now >= p.deadline => {
                // Same command again: at the next node after a timeout, else
                // where the last answer pointed.
                let (rotate, hint) = (p.rotate, cl.hint);
                if rotate {
                    let next = self.next_present(hint);
                    self.clients[c as usize].hint = next;
                }
                self.client_send(c);
            }
            _ => {}
        }
    }

    pub(super) fn client_send(&mut self, c: u64) {
        let now = self.now;
        let cl = &mut self.clients[c as usize];
        let Some(p) = cl.pending.as_mut() else {
            return;
        };
        p.deadline = now + self.mix.client_timeout * TICK;
        p.rotate = true;
        let (cmd, mut node, deadline, read) = (p.cmd, cl.hint, p.deadline, p.read);
        if read && self.mix.read_anywhere > 0.0 && self.read_rng.chance(self.mix.read_anywhere) {
            let present = self.present_ids();
            node = present[self.read_rng.range_inclusive(0, present.len() as u64 - 1) as usize];
        }
        let lost = self.faults_on && self.net_rng.chance(self.mix.drop);
        if !lost {
            let at = now
                + self
                    .net_rng
                    .range_inclusive(self.mix.min_delay, self.mix.max_delay);
            self.schedule(at, Ev::Arrive { node, cmd, read });
        }
        self.schedule(deadline, Ev::Wake(c));
    }

    pub(super) fn client_reply(&mut self, c: u64, reply: Reply) {
        let now = self.now;
        let next = self.next_present(self.clients[c as usize].hint);
        // A hint names a node that exists (a planted bug may have a node
        // follow a garbage peer's claimed sender).
        let total = self.total;
        let cl = &mut self.clients[c as usize];
        let Some(p) = cl.pending.as_mut() else {
            return;
        };
        match reply {
            Reply::Done { seq, at, ret } if seq == p.cmd.seq => {
                self.history.complete(p.hist, now, ret);
                if let Some(at) = at {
                    self.acked.push((at, p.cmd.encode()));
                }
                self.hash.mix(&[now, TRACE_CLIENT_DONE, c, seq]);
                cl.pending = None;
                self.trace(|| format!("client {c} completes #{seq} -> {ret:?}"));
                let at = now + self.rng.range_inclusive(0, 3 * TICK);
                self.schedule(at, Ev::Wake(c));
            }
            Reply::Done { .. } => {}
            Reply::NotLeader(hint) => {
                cl.hint = hint.filter(|h| (1..=total).contains(h)).unwrap_or(next);
                p.deadline = now + TICK;
                p.rotate = false;
                self.schedule(now + TICK, Ev::Wake(c));
            }
            Reply::Busy => {
                p.deadline = now + 2 * TICK;
                p.rotate = false;
                self.schedule(now + 2 * TICK, Ev::Wake(c));
            }
        }
    }
}
