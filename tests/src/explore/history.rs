//! The explored clients' history, checked for linearizability as the
//! simulator checks its clients' (`crate::linearizability`): each proposal
//! is a put of its number to one key, complete once some node applied it;
//! each read a get of that key, complete once confirmed, returning the
//! last value chosen at or below the read's index.

use crate::checker::Checker;
use crate::linearizability::{check, History, Op, Ret, Verdict};
use crate::scenario::Cluster;
use paxos_core::proto::Entry;
use std::collections::BTreeMap;

/// The one key every operation touches.
const KEY: u64 = 0;

/// Search steps per check: histories here hold a few operations.
const BUDGET: u64 = 100_000;

/// The history, with the operations still pending. Part of the explored
/// state, so its times count instants at which something happened, not
/// actions: states that differ only in how long nothing happened merge.
#[derive(Clone, Debug, Default, Hash)]
pub(super) struct ClientHistory {
    history: History,
    /// Pending puts: value number -> operation.
    puts: BTreeMap<u64, usize>,
    /// Pending gets: read context -> operation.
    gets: BTreeMap<u64, usize>,
    /// Instants at which an operation was invoked or returned.
    clock: u64,
    /// Whether the current action already has an instant.
    open: bool,
    /// The history was found not linearizable (reported once).
    broken: bool,
}

impl ClientHistory {
    /// The instant of the current action.
    fn now(&mut self) -> u64 {
        if !self.open {
            self.clock += 1;
            self.open = true;
        }
        self.clock
    }

    /// An action is over: the next event is a later instant.
    pub(super) fn close(&mut self) {
        self.open = false;
    }

    /// Value `n` (`v{n}`) was proposed and taken.
    pub(super) fn put(&mut self, n: u64) {
        let at = self.now();
        let id = self.history.invoke(0, Op::Put { key: KEY, value: n }, at);
        self.puts.insert(n, id);
    }

    /// A read with context `ctx` was asked.
    pub(super) fn get(&mut self, ctx: u64) {
        let at = self.now();
        let id = self.history.invoke(0, Op::Get { key: KEY }, at);
        self.gets.insert(ctx, id);
    }

    /// The read `ctx` was confirmed at `index`: it returns the last value
    /// chosen at or below it.
    pub(super) fn read_confirmed(&mut self, ctx: u64, index: u64, checker: &mut Checker) {
        let Some(id) = self.gets.remove(&ctx) else {
            return;
        };
        let value = (1..=index).rev().find_map(|slot| {
            let (kind, data) = checker.chosen(slot)?;
            let entry = Entry {
                slot,
                ballot: None,
                kind: *kind,
                data: data.clone(),
            };
            // A slot may hold several commands (instance batching): the
            // last numbered one is the slot's last write.
            let commands = entry.commands().ok()?;
            commands.filter_map(|c| number(&c.data)).last()
        });
        let at = self.now();
        self.history.complete(id, at, Ret::Value(value));
        self.judge(checker);
    }

    /// Completes every pending put some node has applied.
    pub(super) fn applied(&mut self, c: &mut Cluster) {
        let done: Vec<u64> = self
            .puts
            .keys()
            .copied()
            .filter(|&n| {
                c.applied
                    .values()
                    .any(|log| log.iter().any(|d| number(d) == Some(n)))
            })
            .collect();
        if done.is_empty() {
            return;
        }
        let at = self.now();
        for n in done {
            if let Some(id) = self.puts.remove(&n) {
                self.history.complete(id, at, Ret::Ok);
            }
        }
        self.judge(&mut c.checker);
    }

    /// Records a violation (once) if the history so far has no
    /// linearization. The histories here hold a few operations, far
    /// within the search budget, so no check comes back undecided.
    fn judge(&mut self, checker: &mut Checker) {
        if self.broken {
            return;
        }
        if let Verdict::NotLinearizable { key, ops } = check(&self.history, BUDGET) {
            self.broken = true;
            checker.not_linearizable(key, ops.len());
        }
    }
}

/// The number `n` of a proposed value `v{n}`.
fn number(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data.strip_prefix(b"v")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completed put and a later get that misses it: no linearization. A
    /// get that sees it, or one that was concurrent with it, is fine.
    #[test]
    fn a_get_after_a_completed_put_must_see_it() {
        let verdict = |seen: Option<u64>, get_first: bool| {
            let mut h = ClientHistory::default();
            if get_first {
                h.get(1);
                h.close();
            }
            h.put(1);
            h.close();
            let id = h.puts[&1];
            let at = h.now();
            h.history.complete(id, at, Ret::Ok);
            h.close();
            if !get_first {
                h.get(1);
                h.close();
            }
            let id = h.gets[&1];
            let at = h.now();
            h.history.complete(id, at, Ret::Value(seen));
            check(&h.history, BUDGET)
        };
        assert_eq!(verdict(Some(1), false), Verdict::Linearizable);
        assert!(matches!(
            verdict(None, false),
            Verdict::NotLinearizable { key: KEY, .. }
        ));
        assert_eq!(verdict(None, true), Verdict::Linearizable);
        assert_eq!(verdict(Some(1), true), Verdict::Linearizable);
    }

    #[test]
    fn only_proposed_values_have_numbers() {
        assert_eq!(number(b"v12"), Some(12));
        assert_eq!(number(b"v"), None);
        assert_eq!(number(b"x1"), None);
        assert_eq!(number(b""), None);
    }

    /// Events within one action share an instant; the next action's are
    /// later.
    #[test]
    fn one_instant_per_action() {
        let mut h = ClientHistory::default();
        h.put(1);
        h.get(1);
        h.close();
        h.put(2);
        let times: Vec<u64> = h.history.ops.iter().map(|o| o.invoke).collect();
        assert_eq!(times, [1, 1, 2]);
    }
}
