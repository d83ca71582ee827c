//! Linearizability checker for client histories over a small key-value model.
//!
//! The model is a map from `u64` keys to `u64` values in which every key starts
//! absent. `Put` sets a key, `Delete` removes it and `Get` returns its current
//! value (or `None`).
//!
//! Because each operation touches exactly one key, the model is
//! P-compositional: a history is linearizable iff every per-key sub-history is.
//! [`check`] therefore splits the history by key and checks each key in
//! ascending key order with the Wing & Gong search as improved by Lowe (the
//! "WGL" algorithm used by Porcupine and Knossos):
//!
//! * the key's operations become a doubly-linked list of call and return
//!   events ordered by time;
//! * the search repeatedly tries to linearize a call that appears before the
//!   first remaining return event (i.e. an operation that may take effect
//!   before every not-yet-linearized completed operation has returned),
//!   lifting it and its return out of the list;
//! * configurations `(set of linearized operations, model state)` that have
//!   been seen before are pruned via a cache;
//! * reaching a return event whose call has not been linearized means the
//!   current prefix is a dead end, so the search backtracks.
//!
//! Operations that never returned (`ret == None`) have an infinite return
//! time: they have a call event but no return event, so they may be
//! linearized at any point after their invocation, or not at all. The search
//! succeeds as soon as every *completed* operation is linearized. Pending
//! operations that provably can never be needed (pending gets, and pending
//! writes whose resulting state no completed get ever returned) are left out
//! of the search.
//!
//! Events with equal timestamps are ordered calls-before-returns, so an
//! operation invoked at the very instant another one returns is treated as
//! concurrent with it (the permissive reading, as in Porcupine).

use std::collections::{BTreeMap, HashSet};

/// A key-value operation as a client issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key written.
        key: u64,
        /// The value written.
        value: u64,
    },
    /// Read the current value of `key`.
    Get {
        /// The key read.
        key: u64,
    },
    /// Remove `key`.
    Delete {
        /// The key removed.
        key: u64,
    },
}

impl Op {
    /// The key this operation touches.
    pub fn key(&self) -> u64 {
        match *self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } => key,
        }
    }
}

/// What an operation returned.
///
/// `Put` and `Delete` return [`Ret::Ok`]; `Get` returns [`Ret::Value`] holding
/// the current value, or `None` if the key is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// Acknowledgement of a `Put` or `Delete`.
    Ok,
    /// The result of a `Get`: the value, or `None` if the key is absent.
    Value(Option<u64>),
}

/// One operation: invoked at `invoke`, returned at `ret` (None = never
/// returned: it may or may not have taken effect).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The client that issued the operation.
    pub client: u64,
    /// The operation itself.
    pub op: Op,
    /// Invocation time.
    pub invoke: u64,
    /// Return time and return value, or `None` if the operation never
    /// returned.
    pub ret: Option<(u64, Ret)>,
}

/// A history of operations (times are any monotonic u64 clock; invoke <
/// return time).
#[derive(Clone, Debug, Default, Hash)]
pub struct History {
    /// All recorded operations, indexed by the id returned from
    /// [`History::invoke`].
    pub ops: Vec<Operation>,
}

impl History {
    /// Creates an empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invocation, returns its index.
    pub fn invoke(&mut self, client: u64, op: Op, time: u64) -> usize {
        self.ops.push(Operation {
            client,
            op,
            invoke: time,
            ret: None,
        });
        self.ops.len() - 1
    }

    /// Records the return of operation `id`.
    ///
    /// # Panics
    ///
    /// Panics if `id` is not a recorded operation or has already completed.
    pub fn complete(&mut self, id: usize, time: u64, ret: Ret) {
        let len = self.ops.len();
        let Some(operation) = self.ops.get_mut(id) else {
            panic!("complete: operation {id} does not exist (history has {len} operations)");
        };
        assert!(
            operation.ret.is_none(),
            "complete: operation {id} has already completed"
        );
        operation.ret = Some((time, ret));
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation has been recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// No linearization exists for the sub-history of this key; `ops` are the
    /// indices (into History::ops) of that key's operations.
    NotLinearizable {
        /// The key whose sub-history is not linearizable.
        key: u64,
        /// Indices into [`History::ops`] of all of that key's operations
        /// (including pending ones), in ascending order.
        ops: Vec<usize>,
    },
    /// The search budget ran out before a verdict (never silently "pass").
    Undecided {
        /// The (smallest) key whose search ran out of budget.
        key: u64,
    },
}

/// Checks the history; `budget` bounds the number of search steps per key.
///
/// Keys are checked in ascending order. If any key is not linearizable, the
/// result is [`Verdict::NotLinearizable`] for the smallest such key (a
/// definite failure takes precedence over an exhausted budget elsewhere).
/// Otherwise, if any key's search exceeded `budget` steps, the result is
/// [`Verdict::Undecided`] for the smallest such key. Otherwise the history is
/// [`Verdict::Linearizable`].
///
/// An operation whose recorded return time is earlier than its invocation
/// time can never be linearized, so it makes its key not linearizable.
pub fn check(history: &History, budget: u64) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.ops.iter().enumerate() {
        by_key.entry(operation.op.key()).or_default().push(index);
    }

    let mut undecided = None;
    for (key, indices) in by_key {
        match check_key(&history.ops, &indices, budget) {
            KeyOutcome::Linearizable => {}
            KeyOutcome::NotLinearizable => {
                return Verdict::NotLinearizable { key, ops: indices };
            }
            KeyOutcome::OutOfBudget => {
                undecided.get_or_insert(key);
            }
        }
    }
    match undecided {
        Some(key) => Verdict::Undecided { key },
        None => Verdict::Linearizable,
    }
}

/// Result of checking one key's sub-history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyOutcome {
    Linearizable,
    NotLinearizable,
    OutOfBudget,
}

/// Per-key model state: the key's current value.
type State = Option<u64>;

/// Applies `op` to `state`. Returns the new state if `expected` (the recorded
/// return, `None` for a pending operation) is consistent with the model.
fn step(state: State, op: Op, expected: Option<Ret>) -> Option<State> {
    let (next, output) = match op {
        Op::Put { value, .. } => (Some(value), Ret::Ok),
        Op::Delete { .. } => (None, Ret::Ok),
        Op::Get { .. } => (state, Ret::Value(state)),
    };
    match expected {
        Some(ret) if ret != output => None,
        _ => Some(next),
    }
}

/// Sentinel "no node" link.
const NIL: usize = usize::MAX;
/// Index of the list head sentinel node.
const HEAD: usize = 0;

/// One operation as the per-key search sees it.
#[derive(Clone, Copy, Debug)]
struct SearchOp {
    op: Op,
    /// Recorded return value, `None` if pending.
    ret: Option<Ret>,
}

/// Doubly-linked list of call/return events with O(1) lift and unlift
/// ("dancing links"). Node 0 is the head sentinel.
#[derive(Debug)]
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Search-op id of each node (unused for the head).
    op_of: Vec<usize>,
    /// For call nodes: the matching return node, or `NIL` if pending.
    /// For return nodes and the head: `NIL`.
    ret_node: Vec<usize>,
    /// Whether each node is a call event.
    is_call: Vec<bool>,
}

impl EventList {
    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Removes a call and its return (if any) from the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.ret_node[call];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes [`EventList::lift`]; must be applied in LIFO order.
    fn unlift(&mut self, call: usize) {
        let ret = self.ret_node[call];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// Whether a pending operation can be left out of the search without
/// changing the verdict, given the set of values returned by completed gets.
///
/// A pending operation is optional, so a linearization never needs it if
/// removing it from any linearization leaves a valid one:
///
/// * a pending `Get` has no recorded result and does not change the state;
/// * a pending `Put { value }` (or `Delete`) sets the state to `Some(value)`
///   (or `None`); the operations linearized after it up to the next write are
///   completed gets, which would all have to return that state. If no
///   completed get returns it, the next operation is a write (or nothing),
///   whose result does not depend on the state, so the pending write can be
///   removed. This keeps unobserved pending writes (e.g. timed-out requests)
///   from inflating the search space, where each would otherwise double it.
fn prunable_pending(op: Op, observed: &HashSet<Option<u64>>) -> bool {
    match op {
        Op::Get { .. } => true,
        Op::Put { value, .. } => !observed.contains(&Some(value)),
        Op::Delete { .. } => !observed.contains(&None),
    }
}

/// Runs the WGL search on the operations `indices` (all on one key).
fn check_key(all: &[Operation], indices: &[usize], budget: u64) -> KeyOutcome {
    // Values returned by completed gets on this key.
    let observed: HashSet<Option<u64>> = indices
        .iter()
        .filter_map(|&index| match all[index].ret {
            Some((_, Ret::Value(value))) => Some(value),
            _ => None,
        })
        .collect();
    // Build the search ops and their events, dropping pending operations
    // that can never be needed (see `prunable_pending`).
    let mut ops: Vec<SearchOp> = Vec::with_capacity(indices.len());
    // (time, kind: 0 = call / 1 = return, search op id)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * indices.len());
    for &index in indices {
        let operation = &all[index];
        if operation.ret.is_none() && prunable_pending(operation.op, &observed) {
            continue;
        }
        let id = ops.len();
        events.push((operation.invoke, 0, id));
        if let Some((time, _)) = operation.ret {
            if time < operation.invoke {
                return KeyOutcome::NotLinearizable;
            }
            events.push((time, 1, id));
        }
        ops.push(SearchOp {
            op: operation.op,
            ret: operation.ret.map(|(_, ret)| ret),
        });
    }
    // Calls before returns at equal times; the op id makes the order total.
    events.sort_unstable();

    let nodes = events.len() + 1;
    let mut list = EventList {
        next: (1..=nodes)
            .map(|n| if n == nodes { NIL } else { n })
            .collect(),
        prev: (0..nodes)
            .map(|n| if n == 0 { NIL } else { n - 1 })
            .collect(),
        op_of: vec![NIL; nodes],
        ret_node: vec![NIL; nodes],
        is_call: vec![false; nodes],
    };
    let mut call_node = vec![NIL; ops.len()];
    for (i, &(_, kind, id)) in events.iter().enumerate() {
        let node = i + 1;
        list.op_of[node] = id;
        if kind == 0 {
            list.is_call[node] = true;
            call_node[id] = node;
        } else {
            list.ret_node[call_node[id]] = node;
        }
    }

    // Number of completed operations not yet linearized; the search succeeds
    // when it reaches zero (pending operations are optional).
    let mut remaining = ops.iter().filter(|o| o.ret.is_some()).count();
    let words = ops.len().div_ceil(64);
    // Cache key layout: `words` bitset words, then two words encoding the
    // state (presence flag, value). Kept in one Vec so lookups borrow a slice.
    let mut config: Vec<u64> = vec![0; words + 2];
    let mut cache: HashSet<Vec<u64>> = HashSet::new();
    // Linearized call nodes with the state before each was applied.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut entry = list.next[HEAD];
    let mut steps: u64 = 0;

    while remaining > 0 {
        if steps >= budget {
            return KeyOutcome::OutOfBudget;
        }
        steps += 1;
        // Invariant: `entry` is at or before the first remaining return event,
        // and one exists because `remaining > 0`.
        debug_assert_ne!(entry, NIL);
        let id = list.op_of[entry];
        if list.is_call[entry] {
            let search_op = ops[id];
            if let Some(new_state) = step(state, search_op.op, search_op.ret) {
                let (word, bit) = (id / 64, 1u64 << (id % 64));
                config[word] |= bit;
                config[words] = u64::from(new_state.is_some());
                config[words + 1] = new_state.unwrap_or(0);
                if !cache.contains(config.as_slice()) {
                    cache.insert(config.clone());
                    stack.push((entry, state));
                    state = new_state;
                    list.lift(entry);
                    if search_op.ret.is_some() {
                        remaining -= 1;
                    }
                    entry = list.next[HEAD];
                    continue;
                }
                config[word] &= !bit;
            }
            entry = list.next[entry];
        } else {
            // A return whose call is not linearized: dead end, backtrack.
            let Some((call, previous)) = stack.pop() else {
                return KeyOutcome::NotLinearizable;
            };
            let undone = list.op_of[call];
            config[undone / 64] &= !(1u64 << (undone % 64));
            state = previous;
            list.unlift(call);
            if ops[undone].ret.is_some() {
                remaining += 1;
            }
            entry = list.next[call];
        }
    }
    KeyOutcome::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::SplitMix64;

    const BUDGET: u64 = 1_000_000;

    fn put(key: u64, value: u64) -> Op {
        Op::Put { key, value }
    }

    fn get(key: u64) -> Op {
        Op::Get { key }
    }

    fn del(key: u64) -> Op {
        Op::Delete { key }
    }

    fn val(v: Option<u64>) -> Ret {
        Ret::Value(v)
    }

    /// One row: (client, op, invoke, Some((return time, ret)) or None).
    type Row = (u64, Op, u64, Option<(u64, Ret)>);

    fn history(rows: &[Row]) -> History {
        History {
            ops: rows
                .iter()
                .map(|&(client, op, invoke, ret)| Operation {
                    client,
                    op,
                    invoke,
                    ret,
                })
                .collect(),
        }
    }

    fn assert_linearizable(rows: &[Row]) {
        assert_eq!(check(&history(rows), BUDGET), Verdict::Linearizable);
    }

    fn assert_not_linearizable(rows: &[Row], key: u64) {
        let h = history(rows);
        let ops: Vec<usize> = (0..h.len()).filter(|&i| h.ops[i].op.key() == key).collect();
        assert_eq!(check(&h, BUDGET), Verdict::NotLinearizable { key, ops });
    }

    // ---------------------------------------------------------------- API

    #[test]
    fn history_api_records_invocations_and_returns() {
        let mut h = History::new();
        assert!(h.is_empty());
        let a = h.invoke(1, put(1, 10), 0);
        let b = h.invoke(2, get(1), 1);
        assert_eq!((a, b, h.len()), (0, 1, 2));
        h.complete(a, 2, Ret::Ok);
        h.complete(b, 3, val(Some(10)));
        assert_eq!(h.ops[a].ret, Some((2, Ret::Ok)));
        assert_eq!(h.ops[b].ret, Some((3, val(Some(10)))));
        assert!(!h.is_empty());
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    #[should_panic(expected = "already completed")]
    fn history_api_rejects_double_completion() {
        let mut h = History::new();
        let a = h.invoke(1, put(1, 10), 0);
        h.complete(a, 2, Ret::Ok);
        h.complete(a, 3, Ret::Ok);
    }

    // ------------------------------------------------------- linearizable

    #[test]
    fn lin_empty_history() {
        assert_linearizable(&[]);
    }

    #[test]
    fn lin_sequential_put_get_put_get() {
        assert_linearizable(&[
            (1, get(1), 0, Some((1, val(None)))),
            (1, put(1, 5), 2, Some((3, Ret::Ok))),
            (2, get(1), 4, Some((5, val(Some(5))))),
            (2, put(1, 6), 6, Some((7, Ret::Ok))),
            (1, get(1), 8, Some((9, val(Some(6))))),
        ]);
    }

    #[test]
    fn lin_concurrent_puts_either_order_first_wins() {
        // Two overlapping puts; a later read sees 1, so put(2) went first.
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((10, Ret::Ok))),
            (2, put(1, 2), 1, Some((9, Ret::Ok))),
            (3, get(1), 11, Some((12, val(Some(1))))),
        ]);
    }

    #[test]
    fn lin_concurrent_puts_either_order_second_wins() {
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((10, Ret::Ok))),
            (2, put(1, 2), 1, Some((9, Ret::Ok))),
            (3, get(1), 11, Some((12, val(Some(2))))),
        ]);
    }

    #[test]
    fn lin_get_sees_concurrent_put() {
        assert_linearizable(&[
            (1, put(1, 7), 0, Some((10, Ret::Ok))),
            (2, get(1), 2, Some((5, val(Some(7))))),
        ]);
    }

    #[test]
    fn lin_get_misses_concurrent_put() {
        assert_linearizable(&[
            (1, put(1, 7), 0, Some((10, Ret::Ok))),
            (2, get(1), 2, Some((5, val(None)))),
            // A later read (still concurrent with the put) may see it.
            (2, get(1), 6, Some((8, val(Some(7))))),
        ]);
    }

    #[test]
    fn lin_delete_semantics() {
        assert_linearizable(&[
            (1, put(1, 3), 0, Some((1, Ret::Ok))),
            (1, del(1), 2, Some((3, Ret::Ok))),
            (2, get(1), 4, Some((5, val(None)))),
            (2, del(1), 6, Some((7, Ret::Ok))), // deleting an absent key is fine
            (1, put(1, 4), 8, Some((9, Ret::Ok))),
            (2, get(1), 10, Some((11, val(Some(4))))),
        ]);
    }

    #[test]
    fn lin_concurrent_delete_and_get_old_value() {
        assert_linearizable(&[
            (1, put(1, 3), 0, Some((1, Ret::Ok))),
            (1, del(1), 2, Some((10, Ret::Ok))),
            (2, get(1), 3, Some((4, val(Some(3))))),
            (2, get(1), 5, Some((6, val(None)))),
            (3, get(1), 11, Some((12, val(None)))),
        ]);
    }

    #[test]
    fn lin_pending_put_later_read() {
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((1, Ret::Ok))),
            (2, put(1, 9), 2, None),
            (3, get(1), 3, Some((4, val(Some(1))))),
            (3, get(1), 50, Some((51, val(Some(9))))),
            (3, get(1), 60, Some((61, val(Some(9))))),
        ]);
    }

    #[test]
    fn lin_pending_put_never_observed() {
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((1, Ret::Ok))),
            (2, put(1, 9), 2, None),
            (3, get(1), 3, Some((4, val(Some(1))))),
            (3, get(1), 50, Some((51, val(Some(1))))),
        ]);
    }

    #[test]
    fn lin_pending_delete_later_observed_and_pending_get_ignored() {
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((1, Ret::Ok))),
            (2, del(1), 2, None),
            (4, get(1), 2, None),
            (3, get(1), 3, Some((4, val(Some(1))))),
            (3, get(1), 5, Some((6, val(None)))),
        ]);
    }

    #[test]
    fn lin_equal_timestamps_are_concurrent() {
        // The get is invoked at the instant the put returns: concurrent, so
        // it may be ordered before the put.
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((5, Ret::Ok))),
            (2, get(1), 5, Some((6, val(None)))),
        ]);
    }

    #[test]
    fn lin_multiple_keys_all_fine() {
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((3, Ret::Ok))),
            (2, put(2, 2), 1, Some((4, Ret::Ok))),
            (3, get(2), 2, Some((5, val(Some(2))))),
            (1, get(1), 4, Some((6, val(Some(1))))),
            (2, del(2), 5, Some((7, Ret::Ok))),
            (3, get(2), 8, Some((9, val(None)))),
            (1, get(3), 8, Some((9, val(None)))),
        ]);
    }

    #[test]
    fn lin_many_concurrent_writers_and_readers() {
        // Five overlapping puts; reads in real-time order observe a
        // consistent order 3, 1, 5.
        assert_linearizable(&[
            (1, put(1, 1), 0, Some((100, Ret::Ok))),
            (2, put(1, 2), 0, Some((100, Ret::Ok))),
            (3, put(1, 3), 0, Some((100, Ret::Ok))),
            (4, put(1, 4), 0, Some((100, Ret::Ok))),
            (5, put(1, 5), 0, Some((100, Ret::Ok))),
            (6, get(1), 10, Some((11, val(Some(3))))),
            (6, get(1), 20, Some((21, val(Some(1))))),
            (6, get(1), 30, Some((31, val(Some(5))))),
            (6, get(1), 101, Some((102, val(Some(5))))),
        ]);
    }

    // --------------------------------------------------- not linearizable

    #[test]
    fn nonlin_stale_read_after_completed_overwrite() {
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((1, Ret::Ok))),
                (1, put(1, 2), 2, Some((3, Ret::Ok))),
                (2, get(1), 4, Some((5, val(Some(1))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_read_of_value_never_written() {
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((10, Ret::Ok))),
                (2, get(1), 1, Some((5, val(Some(42))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_get_none_after_completed_put() {
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((1, Ret::Ok))),
                (2, get(1), 2, Some((3, val(None)))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_read_before_write_invoked() {
        assert_not_linearizable(
            &[
                (2, get(1), 0, Some((1, val(Some(7))))),
                (1, put(1, 7), 2, Some((3, Ret::Ok))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_pending_put_seen_then_old_value() {
        // The pending put's value is observed, and then a strictly later read
        // sees the old value again.
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((1, Ret::Ok))),
                (2, put(1, 9), 2, None),
                (3, get(1), 3, Some((4, val(Some(9))))),
                (3, get(1), 5, Some((6, val(Some(1))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_value_survives_completed_delete() {
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((1, Ret::Ok))),
                (1, del(1), 2, Some((3, Ret::Ok))),
                (2, get(1), 4, Some((5, val(Some(1))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_multiple_keys_names_the_bad_key() {
        assert_not_linearizable(
            &[
                (1, put(3, 1), 0, Some((1, Ret::Ok))),
                (2, put(7, 1), 0, Some((1, Ret::Ok))),
                (1, get(3), 2, Some((3, val(Some(1))))),
                (2, del(7), 2, Some((3, Ret::Ok))),
                (3, get(7), 4, Some((5, val(Some(1))))), // bad: deleted
                (3, get(9), 4, Some((5, val(None)))),
            ],
            7,
        );
    }

    #[test]
    fn nonlin_smallest_bad_key_is_reported() {
        assert_not_linearizable(
            &[
                (1, get(9), 0, Some((1, val(Some(1))))),
                (1, get(4), 2, Some((3, val(Some(1))))),
                (1, get(2), 4, Some((5, val(None)))),
            ],
            4,
        );
    }

    #[test]
    fn nonlin_flip_flop_between_concurrent_puts() {
        // Two concurrent puts, then sequential reads see 1, 2, 1: would need
        // put(1) linearized twice.
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((100, Ret::Ok))),
                (2, put(1, 2), 0, Some((100, Ret::Ok))),
                (3, get(1), 10, Some((11, val(Some(1))))),
                (3, get(1), 20, Some((21, val(Some(2))))),
                (3, get(1), 30, Some((31, val(Some(1))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_new_then_old_during_concurrent_put() {
        // Both reads overlap the put, but the first (in real time) sees the
        // new value and the second sees the old one.
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, Some((1, Ret::Ok))),
                (2, put(1, 2), 2, Some((100, Ret::Ok))),
                (3, get(1), 10, Some((11, val(Some(2))))),
                (4, get(1), 12, Some((13, val(Some(1))))),
            ],
            1,
        );
    }

    #[test]
    fn nonlin_get_some_on_fresh_key_after_delete() {
        assert_not_linearizable(
            &[
                (1, del(5), 0, Some((1, Ret::Ok))),
                (2, get(5), 0, Some((2, val(Some(0))))),
            ],
            5,
        );
    }

    #[test]
    fn nonlin_wrong_return_kind() {
        assert_not_linearizable(&[(1, put(1, 1), 0, Some((1, val(None))))], 1);
        assert_not_linearizable(&[(1, get(1), 0, Some((1, Ret::Ok)))], 1);
        assert_not_linearizable(&[(1, del(1), 0, Some((1, val(None))))], 1);
    }

    #[test]
    fn nonlin_return_before_invoke() {
        assert_not_linearizable(&[(1, put(1, 1), 5, Some((4, Ret::Ok)))], 1);
    }

    #[test]
    fn nonlin_two_pending_puts_cannot_both_be_latest() {
        // Pending puts may take effect at most once each.
        assert_not_linearizable(
            &[
                (1, put(1, 1), 0, None),
                (2, put(1, 2), 0, None),
                (3, get(1), 10, Some((11, val(Some(1))))),
                (3, get(1), 20, Some((21, val(Some(2))))),
                (3, get(1), 30, Some((31, val(Some(1))))),
            ],
            1,
        );
    }

    // ------------------------------------------------------------- budget

    #[test]
    fn budget_exhaustion_is_undecided() {
        let rows = [
            (1, put(1, 1), 0, Some((10, Ret::Ok))),
            (2, get(1), 1, Some((5, val(Some(1))))),
        ];
        let h = history(&rows);
        assert_eq!(check(&h, 0), Verdict::Undecided { key: 1 });
        assert_eq!(check(&h, 1), Verdict::Undecided { key: 1 });
        assert_eq!(check(&h, 100), Verdict::Linearizable);
    }

    #[test]
    fn not_linearizable_takes_precedence_over_undecided() {
        let h = history(&[
            (1, put(1, 1), 0, Some((10, Ret::Ok))),
            (2, get(1), 1, Some((5, val(Some(1))))),
            (2, get(1), 11, Some((12, val(Some(1))))),
            (1, get(2), 20, Some((21, val(Some(3))))),
        ]);
        // Key 1 needs three steps; key 2 fails after two.
        assert_eq!(
            check(&h, 3),
            Verdict::NotLinearizable {
                key: 2,
                ops: vec![3]
            }
        );
        assert_eq!(
            check(&h, 2),
            Verdict::NotLinearizable {
                key: 2,
                ops: vec![3]
            }
        );
        let h = history(&[(1, put(1, 1), 0, Some((10, Ret::Ok)))]);
        assert_eq!(check(&h, 0), Verdict::Undecided { key: 1 });
        // Only pending gets: nothing to search, decided without steps.
        let h = history(&[(1, get(1), 0, None)]);
        assert_eq!(check(&h, 0), Verdict::Linearizable);
    }

    // ---------------------------------------------------------- randomized

    /// Builds a linearizable history: operation `k` takes effect at time
    /// `10 * (k + 1)`, its interval is chosen around that point on a client
    /// that is idle, and returns are computed from the sequential model.
    fn random_linearizable_history(
        rng: &mut SplitMix64,
        n_ops: usize,
        n_keys: u64,
        n_clients: usize,
        max_tail: u64,
    ) -> History {
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        let mut client_free = vec![0u64; n_clients]; // earliest next invoke
        let mut h = History::new();
        for k in 0..n_ops as u64 {
            let point = 10 * (k + 1);
            let start = rng.range(0, n_clients as u64) as usize;
            let client = (0..n_clients)
                .map(|i| (start + i) % n_clients)
                .find(|&c| client_free[c] < point)
                .unwrap_or_else(|| panic!("no idle client at op {k}"));
            let invoke = client_free[client] + rng.range(0, point - client_free[client]);
            let ret_time = point + 1 + rng.range(0, max_tail);
            client_free[client] = ret_time + 1;
            let key = rng.range(0, n_keys);
            let (op, ret) = match rng.range(0, 10) {
                0..=3 => {
                    let value = 1 + rng.range(0, 1000);
                    model.insert(key, value);
                    (put(key, value), Ret::Ok)
                }
                4..=7 => (get(key), val(model.get(&key).copied())),
                _ => {
                    model.remove(&key);
                    (del(key), Ret::Ok)
                }
            };
            let id = h.invoke(client as u64, op, invoke);
            h.complete(id, ret_time, ret);
        }
        h
    }

    #[test]
    fn randomized_large_history_then_corrupted() {
        let mut rng = SplitMix64::new(0x5eed_1234_abcd_0001);
        let mut h = random_linearizable_history(&mut rng, 300, 3, 6, 40);
        assert_eq!(h.len(), 300);
        // Sanity: the intervals really overlap.
        let overlapping = (1..h.len())
            .filter(|&i| h.ops[i].invoke < h.ops[i - 1].ret.map_or(u64::MAX, |r| r.0))
            .count();
        assert!(overlapping > 100, "only {overlapping} overlapping pairs");
        assert_eq!(check(&h, 10_000_000), Verdict::Linearizable);

        // Corrupt a get in the middle to return a value never written.
        let gets: Vec<usize> = (0..h.len())
            .filter(|&i| matches!(h.ops[i].op, Op::Get { .. }))
            .collect();
        let victim = gets[gets.len() / 2];
        let key = h.ops[victim].op.key();
        let ret_time = h.ops[victim].ret.map_or(0, |r| r.0);
        h.ops[victim].ret = Some((ret_time, val(Some(1_000_000))));
        let ops: Vec<usize> = (0..h.len()).filter(|&i| h.ops[i].op.key() == key).collect();
        assert_eq!(check(&h, 10_000_000), Verdict::NotLinearizable { key, ops });
    }

    #[test]
    fn randomized_single_key_eight_clients() {
        // 300 operations on one key with 8 clients and long intervals; the
        // corrupted read is the last one, so the search must exhaust every
        // configuration before it.
        let mut rng = SplitMix64::new(0xdead_beef);
        let mut h = random_linearizable_history(&mut rng, 300, 1, 8, 60);
        assert_eq!(check(&h, 10_000_000), Verdict::Linearizable);
        let victim = (0..h.len())
            .rev()
            .find(|&i| matches!(h.ops[i].op, Op::Get { .. }))
            .unwrap_or_else(|| panic!("no get generated"));
        let ret_time = h.ops[victim].ret.map_or(0, |r| r.0);
        h.ops[victim].ret = Some((ret_time, val(Some(1_000_000))));
        let ops: Vec<usize> = (0..h.len()).collect();
        assert_eq!(
            check(&h, 10_000_000),
            Verdict::NotLinearizable { key: 0, ops }
        );
    }

    #[test]
    fn randomized_histories_with_pending_ops_stay_linearizable() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..20 {
            let mut h = random_linearizable_history(&mut rng, 150, 2, 6, 40);
            // Forget some returns: a completed op that "never returned" is
            // still allowed to have taken effect.
            for i in 0..h.len() {
                if rng.range(0, 25) == 0 {
                    h.ops[i].ret = None;
                }
            }
            assert_eq!(check(&h, 10_000_000), Verdict::Linearizable);
        }
    }

    /// Exhaustive reference: tries every order of every subset that contains
    /// all completed operations and respects real time.
    fn brute_force_key(ops: &[Operation]) -> bool {
        fn go(ops: &[Operation], used: &mut Vec<bool>, state: State) -> bool {
            if (0..ops.len()).all(|i| used[i] || ops[i].ret.is_none()) {
                return true;
            }
            for x in 0..ops.len() {
                if used[x] {
                    continue;
                }
                // x may go next only if no unused completed op returned
                // strictly before x was invoked.
                let blocked = (0..ops.len()).any(|y| {
                    !used[y] && y != x && ops[y].ret.is_some_and(|(t, _)| t < ops[x].invoke)
                });
                if blocked {
                    continue;
                }
                if let Some(next) = step(state, ops[x].op, ops[x].ret.map(|r| r.1)) {
                    used[x] = true;
                    let found = go(ops, used, next);
                    used[x] = false;
                    if found {
                        return true;
                    }
                }
            }
            false
        }
        go(ops, &mut vec![false; ops.len()], None)
    }

    #[test]
    fn randomized_small_histories_match_brute_force() {
        let mut rng = SplitMix64::new(7);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..3000 {
            let n = 1 + rng.range(0, 7) as usize;
            let mut h = History::new();
            for _ in 0..n {
                let invoke = rng.range(0, 12);
                let op = match rng.range(0, 3) {
                    0 => put(1, 1 + rng.range(0, 2)),
                    1 => get(1),
                    _ => del(1),
                };
                let id = h.invoke(rng.range(0, 3), op, invoke);
                if rng.range(0, 6) != 0 {
                    let ret = match op {
                        Op::Get { .. } => match rng.range(0, 3) {
                            0 => val(None),
                            v => val(Some(v)),
                        },
                        _ => Ret::Ok,
                    };
                    h.complete(id, invoke + rng.range(0, 6), ret);
                }
            }
            let expected = brute_force_key(&h.ops);
            let verdict = check(&h, BUDGET);
            if expected {
                yes += 1;
                assert_eq!(verdict, Verdict::Linearizable, "{h:?}");
            } else {
                no += 1;
                let ops: Vec<usize> = (0..n).collect();
                assert_eq!(verdict, Verdict::NotLinearizable { key: 1, ops }, "{h:?}");
            }
        }
        assert!(yes > 300 && no > 300, "unbalanced sample: {yes} / {no}");
    }
}
