//! Leadership transfer: the leader brings the target up to date, then tells
//! it to campaign at once; the target's pre-vote and phase 1 carry the
//! leader's ballot, and the voters that follow exactly that leadership
//! (the leader's lease is void once it asked) exempt them from stickiness. Meanwhile the leader
//! holds new proposals, and resumes if the transfer does not complete
//! within `election_ticks`.

use super::{Node, Role};
use crate::errors::{Error, Result};
use crate::storage::Storage;
use paxos_proto::{Ballot, Body, TimeoutNow};

/// A transfer in progress at the leader.
#[derive(Clone, Copy, Debug, Hash)]
pub(super) struct Transfer {
    pub(super) to: u64,
    /// Leader ticks since it began.
    pub(super) elapsed: u32,
    /// `TimeoutNow` went out.
    pub(super) sent: bool,
}

impl<S: Storage> Node<S> {
    pub(crate) fn transfer_leader(&mut self, to: u64) -> Result<()> {
        if !self.members.is_voter(to) {
            return Err(Error::NotVoter(to));
        }
        let Role::Leader(ls) = &mut self.role else {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        };
        if to == self.id {
            ls.transfer = None; // already there: a transfer to self cancels one
            return Ok(());
        }
        slog::info!(self.logger, "transferring leadership"; "to" => to);
        ls.transfer = Some(Transfer {
            to,
            elapsed: 0,
            sent: false,
        });
        ls.pending_flush = true; // replicate to the target at once
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// Sends `TimeoutNow` once the target holds everything we hold.
    ///
    /// Asked after every acceptance: the check for a transfer at all is
    /// inlined.
    #[inline]
    pub(super) fn maybe_send_timeout_now(&mut self) {
        if matches!(&self.role, Role::Leader(ls) if ls.transfer.is_some()) {
            self.send_timeout_now_if_caught_up();
        }
    }

    fn send_timeout_now_if_caught_up(&mut self) {
        let last = self.log.last();
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        let Some(t) = ls.transfer.as_mut() else {
            return;
        };
        let caught_up = ls
            .progress
            .iter()
            .any(|p| p.id == t.to && p.matched >= last);
        if t.sent || !caught_up {
            return;
        }
        t.sent = true;
        // The target may now be promised despite our followers' leases.
        ls.lease.void();
        let (to, ballot) = (t.to, Some(ls.ballot));
        self.send(to, Body::TimeoutNow(TimeoutNow { ballot }));
    }

    /// Counts a leader tick against the transfer; gives up after `election_ticks`.
    pub(super) fn tick_transfer(&mut self) {
        let limit = self.cfg.election_ticks;
        let Role::Leader(ls) = &mut self.role else {
            return;
        };
        if let Some(t) = ls.transfer.as_mut() {
            t.elapsed += 1;
            if t.elapsed >= limit {
                slog::warn!(self.logger, "leadership transfer timed out; resuming"; "to" => t.to);
                ls.transfer = None;
            }
        }
    }

    /// The leader of our promised ballot asks us to take over now.
    pub(super) fn on_timeout_now(&mut self, from: u64, b: Ballot) -> Result<()> {
        if b != self.promised || self.leader != Some(from) {
            return Ok(()); // stale, or not from the leader we follow
        }
        slog::info!(self.logger, "taking over leadership"; "from" => from);
        self.campaign(Some(b))
    }
}
