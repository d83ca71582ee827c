//! One step of an explored trace, and the text form `--replay` reads.

use std::fmt;

/// One step of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the message at this position in flight.
    Deliver(usize),
    /// Deliver it twice.
    Duplicate(usize),
    /// Lose it.
    Drop(usize),
    /// Tick a node.
    Tick(u64),
    /// Every running node ticks `election_ticks` times.
    Wait,
    /// The node's host calls `campaign()`.
    Campaign(u64),
    /// The leader is given a new value to propose.
    Propose(u64),
    /// The leader is asked for a linearizable read (`read_index`).
    Read(u64),
    /// The leader (first) is asked to hand leadership to the second
    /// (`transfer_leader`).
    Transfer(u64, u64),
    /// The leader (first) proposes removing the second from the membership
    /// (`propose_conf_change`).
    Remove(u64, u64),
    /// A forged `Prepare` reaches the node: sent in the name of another
    /// member, in a ballot whose round no honest node reaches (above
    /// `MAX_ROUND`). The node must refuse it (rule V1).
    Forge(u64),
    /// The node's host snapshots its application at its applied slot and
    /// compacts its log up to there (a follower behind it then needs the
    /// snapshot).
    Compact(u64),
    /// The node crashes.
    Crash(u64),
    /// The crashed node restarts from its storage.
    Restart(u64),
    /// The node's host starts to lag: it takes each `Ready` and sends its
    /// `messages` at once, as the contract allows, but holds the rest of
    /// it (persist, the other sends, apply, advance) until a flush. A
    /// crash meanwhile loses what it held.
    Lag(u64),
    /// The lagging host completes the `Ready`s it holds, in order (a
    /// sync point). It keeps lagging: the `Ready`s that follow are held
    /// again.
    Flush(u64),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deliver(i) => write!(f, "deliver:{i}"),
            Action::Duplicate(i) => write!(f, "duplicate:{i}"),
            Action::Drop(i) => write!(f, "drop:{i}"),
            Action::Tick(n) => write!(f, "tick:{n}"),
            Action::Wait => write!(f, "wait:0"),
            Action::Campaign(n) => write!(f, "campaign:{n}"),
            Action::Propose(n) => write!(f, "propose:{n}"),
            Action::Read(n) => write!(f, "read:{n}"),
            Action::Transfer(n, to) => write!(f, "transfer:{n}-{to}"),
            Action::Remove(n, who) => write!(f, "remove:{n}-{who}"),
            Action::Forge(n) => write!(f, "forge:{n}"),
            Action::Compact(n) => write!(f, "compact:{n}"),
            Action::Crash(n) => write!(f, "crash:{n}"),
            Action::Restart(n) => write!(f, "restart:{n}"),
            Action::Lag(n) => write!(f, "lag:{n}"),
            Action::Flush(n) => write!(f, "flush:{n}"),
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        let (kind, arg) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("action {s:?}: expected kind:number"))?;
        let number = |a: &str| -> Result<u64, String> {
            a.parse()
                .map_err(|e| format!("action {s:?}: bad number: {e}"))
        };
        // Two-node actions: `kind:a-b`.
        let pair = || -> Result<(u64, u64), String> {
            let (a, b) = arg
                .split_once('-')
                .ok_or_else(|| format!("action {s:?}: expected kind:node-node"))?;
            Ok((number(a)?, number(b)?))
        };
        if let Some(a) = match kind {
            "transfer" => Some(pair().map(|(a, b)| Action::Transfer(a, b))?),
            "remove" => Some(pair().map(|(a, b)| Action::Remove(a, b))?),
            _ => None,
        } {
            return Ok(a);
        }
        let n = number(arg)?;
        let i = usize::try_from(n).map_err(|e| format!("action {s:?}: {e}"))?;
        Ok(match kind {
            "deliver" => Action::Deliver(i),
            "duplicate" => Action::Duplicate(i),
            "drop" => Action::Drop(i),
            "tick" => Action::Tick(n),
            "wait" => Action::Wait,
            "campaign" => Action::Campaign(n),
            "propose" => Action::Propose(n),
            "read" => Action::Read(n),
            "forge" => Action::Forge(n),
            "compact" => Action::Compact(n),
            "crash" => Action::Crash(n),
            "restart" => Action::Restart(n),
            "lag" => Action::Lag(n),
            "flush" => Action::Flush(n),
            other => return Err(format!("action {s:?}: unknown kind {other:?}")),
        })
    }
}

/// Parses a trace as [`Action`]'s `Display` writes it, comma-separated.
pub fn parse_trace(s: &str) -> Result<Vec<Action>, String> {
    s.split(',')
        .filter(|a| !a.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Shows a trace as [`parse_trace`] reads it.
pub fn show_trace(trace: &[Action]) -> String {
    trace
        .iter()
        .map(Action::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_round_trip() {
        let t = vec![
            Action::Campaign(1),
            Action::Deliver(0),
            Action::Drop(2),
            Action::Duplicate(1),
            Action::Propose(1),
            Action::Read(1),
            Action::Transfer(1, 2),
            Action::Remove(1, 3),
            Action::Forge(2),
            Action::Compact(3),
            Action::Crash(2),
            Action::Restart(2),
            Action::Tick(3),
            Action::Wait,
            Action::Lag(1),
            Action::Flush(1),
        ];
        assert_eq!(parse_trace(&show_trace(&t)), Ok(t));
        assert!(parse_trace("fly:1").is_err());
        assert!(parse_trace("transfer:1").is_err());
        assert!(parse_trace("remove:1-x").is_err());
    }
}
