//! How the simulated host drives each node's `Ready` cycle: as unkindly as
//! the `Ready` contract allows. Drawn per seed from a stream of its own, so
//! a seed that draws the kind host (one `Ready` at a time, persisted whole
//! before the next input) replays exactly as it did before these existed.

use crate::checker::Checker;
use crate::disk::Reached;
use crate::rng::Rng;
use paxos_core::proto::{Entry, Snapshot};
use paxos_core::{MemStorage, Ready};

/// The host behaviours a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMix {
    /// `Ready`s a node may hand out before the host persists the oldest
    /// (1: each is persisted, sent, applied and advanced before the next
    /// input, the kind host). Above 1, peer messages, ticks and proposals
    /// are stepped between `ready()` and `advance()`, so a node's replies to
    /// itself arrive behind peer traffic.
    pub pipeline: u64,
    /// With `pipeline > 1`: the most time units (a tick is 100) before the
    /// host persists the `Ready`s it took (never above a third of the
    /// election timeout).
    pub flush_delay: u64,
    /// A `Ready`'s parts are persisted one at a time in the order the
    /// contract allows (snapshot, entries, then hard state with membership),
    /// with a chance of a crash between any two.
    pub torn_persist: bool,
    /// Mean ticks between host calls of `campaign()` at a random node
    /// (0: never).
    pub campaign_every: u64,
    /// The most time units a proposal waits before the host takes the
    /// node's next `Ready` (0: at once). Proposals arriving meanwhile share
    /// a slot (instance batching, rule L5), until any other input closes
    /// it.
    pub propose_delay: u64,
    /// The host applies a `Ready`'s decided entries, answers the clients
    /// waiting on them and serves its confirmed reads before persisting it;
    /// only its persisted messages wait for the sync (rule D5: decided
    /// entries are chosen, so their results do not depend on this node's
    /// disk).
    pub reveal_early: bool,
}

impl HostMix {
    /// The kind host: one `Ready` at a time, persisted whole, no campaigns.
    pub fn kind() -> Self {
        HostMix {
            pipeline: 1,
            flush_delay: 0,
            torn_persist: false,
            campaign_every: 0,
            propose_delay: 0,
            reveal_early: false,
        }
    }

    /// Draws the host for `seed`: about half the seeds pipeline, half of
    /// all persist torn, a quarter call `campaign()` at random, half reveal
    /// decided entries before the persist (drawn last, so the earlier
    /// draws are what they were before it existed).
    pub fn draw(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x4057_9ead_1e55);
        let mut mix = HostMix::kind();
        if rng.chance(0.5) {
            mix.pipeline = rng.pick(&[2, 3, 8, 64]);
            mix.flush_delay = rng.pick(&[1, 10, 50, 150, 400]);
        }
        mix.torn_persist = rng.chance(0.5);
        if rng.chance(0.25) {
            mix.campaign_every = rng.pick(&[3, 10, 40]);
        }
        if rng.chance(0.5) {
            mix.propose_delay = rng.pick(&[5, 30, 100, 250]);
        }
        mix.reveal_early = rng.chance(0.5);
        mix
    }

    /// The seed of the host's own stream of choices during a run.
    pub fn stream(seed: u64) -> Rng {
        Rng::new(seed ^ 0x4057_d1ce_5eed)
    }
}

/// A persist whose sync failed, and what of it reached the disk. The host
/// must then send, reveal and advance nothing of that `Ready` (beyond a
/// leader's `messages` sent already), must not retry the write, and must
/// stop the node so it restarts from storage (rule D4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncFailed(pub Reached);

/// Persists a `Ready`'s snapshot: the first part in the contract's order.
pub fn persist_snapshot(storage: &MemStorage, snapshot: &Snapshot) {
    storage.wl().apply_snapshot(snapshot.clone());
}

/// Persists entries of node `id`'s `Ready` (after its snapshot, before its
/// hard state) and shows them to the checker as the node's acceptances.
pub fn persist_entries(storage: &MemStorage, checker: &mut Checker, id: u64, entries: &[Entry]) {
    storage.wl().store_entries(entries);
    checker.on_persist(id, None, entries);
}

/// Persists a `Ready`'s membership and hard state, the last part in the
/// contract's order, and shows the hard state to the checker.
pub fn persist_state(storage: &MemStorage, checker: &mut Checker, id: u64, rd: &Ready) {
    {
        let mut disk = storage.wl();
        if let Some(cs) = rd.conf_state() {
            disk.set_conf_state(cs.clone());
        }
        if let Some(hs) = rd.hard_state() {
            disk.set_hard_state(*hs);
        }
    }
    checker.on_persist(id, rd.hard_state(), &[]);
}

/// Persists a whole `Ready` of node `id` in the contract's order: the
/// snapshot taken from it (if any), the entries, then the hard state with
/// the membership, each shown to the checker. With `failure`, the sync
/// fails: only the prefix it names reaches the disk, and the host must
/// stop the node (see [`SyncFailed`]).
pub fn persist(
    storage: &MemStorage,
    checker: &mut Checker,
    id: u64,
    rd: &Ready,
    snapshot: Option<&Snapshot>,
    failure: Option<Reached>,
) -> Result<(), SyncFailed> {
    if failure == Some(Reached::Nothing) {
        return Err(SyncFailed(Reached::Nothing));
    }
    if let Some(s) = snapshot {
        persist_snapshot(storage, s);
    }
    let entries = match failure {
        Some(Reached::Snapshot) => &[][..],
        Some(Reached::Entries(n)) => &rd.entries()[..n.min(rd.entries().len())],
        _ => rd.entries(),
    };
    persist_entries(storage, checker, id, entries);
    match failure {
        Some(reached) => Err(SyncFailed(reached)),
        None => {
            persist_state(storage, checker, id, rd);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_cover_every_behaviour_and_the_kind_host() {
        let draws: Vec<HostMix> = (0..400).map(HostMix::draw).collect();
        assert!(draws.iter().any(|m| m.propose_delay > 0));
        assert!(draws.iter().any(|m| *m == HostMix::kind()));
        assert!(draws.iter().any(|m| m.pipeline > 1 && m.torn_persist));
        assert!(draws.iter().any(|m| m.campaign_every > 0));
        assert!(draws
            .iter()
            .any(|m| m.pipeline > 1 && m.torn_persist && m.reveal_early));
        assert!(draws.iter().all(|m| m.pipeline == 1 || m.flush_delay > 0));
        assert_eq!(HostMix::draw(7), HostMix::draw(7), "a seed fixes its host");
    }
}
