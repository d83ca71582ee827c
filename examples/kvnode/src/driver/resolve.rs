//! Addresses of members learned from the log (or a snapshot) are written
//! as the admin gave them: a literal `ip:port` or a `host:port` name. A
//! literal is used at once; a name is looked up on the runtime, never on
//! the driver thread (a lookup can take seconds), and the answer comes back
//! as an input, after which the driver points the transport at it.

use super::{Inbox, Input};
use crate::config::Member;
use crate::state::MemberAddress;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc::TrySendError;
use std::time::Duration;

/// How long one name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before a failed lookup is tried again, and the longest.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Hands `input` to the driver, waiting while its inbox is full; `false`
/// once the driver is gone.
async fn deliver(inbox: &Inbox, mut input: Input) -> bool {
    loop {
        match inbox.try_send(input) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                input = back;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// The driver's resolver: answers it has, and lookups under way.
#[derive(Debug)]
pub(crate) struct Resolver {
    inbox: Inbox,
    runtime: tokio::runtime::Handle,
    /// Per member: the address it was asked for, and the answer (`None`
    /// while the lookup runs, or after it failed).
    known: BTreeMap<u64, (MemberAddress, Option<Member>)>,
}

impl Resolver {
    /// A resolver answering through `inbox`, looking names up on `runtime`.
    pub(crate) fn new(inbox: Inbox, runtime: tokio::runtime::Handle) -> Self {
        Resolver {
            inbox,
            runtime,
            known: BTreeMap::new(),
        }
    }

    /// Member `a.id` at the addresses `a` names, if known now. A name not
    /// asked for yet starts its lookup; the answer arrives as
    /// [`Input::Resolved`].
    pub(crate) fn member(&mut self, a: &MemberAddress) -> Option<Member> {
        let literal = |s: &str| s.trim().parse::<SocketAddr>().ok();
        if let (Some(peer), Some(http)) = (literal(&a.peer), literal(&a.http)) {
            return Some(Member {
                id: a.id,
                peer,
                http,
            });
        }
        match self.known.get(&a.id) {
            Some((asked, answer)) if asked == a => return answer.clone(),
            _ => {}
        }
        self.known.insert(a.id, (a.clone(), None));
        let (inbox, a) = (self.inbox.clone(), a.clone());
        self.runtime.spawn(async move {
            let lookup = |s: String| async move {
                let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(s)).await;
                found.ok()?.ok()?.next()
            };
            // A failed lookup is tried again, every RETRY_MAX at the
            // latest, until it answers: a DNS hiccup must not cut a member
            // off until the next restart. The first failure is reported
            // (for the log), and the answer once it comes.
            let mut retry = RETRY_MIN;
            let mut reported = false;
            loop {
                let member = match (lookup(a.peer.clone()).await, lookup(a.http.clone()).await) {
                    (Some(peer), Some(http)) => Some(Member {
                        id: a.id,
                        peer,
                        http,
                    }),
                    _ => None,
                };
                let found = member.is_some();
                if found || !reported {
                    reported = true;
                    if !deliver(&inbox, Input::Resolved(a.clone(), member)).await {
                        return;
                    }
                }
                if found {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        });
        None
    }

    /// Records a lookup's answer (one for an address asked for since is
    /// ignored). A failure leaves the member unknown while its lookup
    /// goes on being retried.
    pub(crate) fn resolved(&mut self, a: MemberAddress, member: Option<Member>) {
        if let Some((asked, answer)) = self.known.get_mut(&a.id) {
            if *asked == a {
                *answer = member;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_answer_at_once_and_names_come_back_as_an_input() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let mut r = Resolver::new(tx, rt.handle().clone());
        let literal = MemberAddress {
            id: 4,
            peer: "127.0.0.1:7004".into(),
            http: "127.0.0.1:8004".into(),
        };
        assert_eq!(r.member(&literal).map(|m| m.peer.port()), Some(7004));
        let name = MemberAddress {
            id: 5,
            peer: "localhost:7005".into(),
            http: "localhost:8005".into(),
        };
        assert_eq!(r.member(&name), None, "not on this thread");
        assert_eq!(r.member(&name), None, "one lookup at a time");
        let input = rt.block_on(async {
            loop {
                if let Ok(i) = rx.try_recv() {
                    return i;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        let Input::Resolved(a, member) = input else {
            panic!("not an answer");
        };
        r.resolved(a, member);
        assert_eq!(r.member(&name).map(|m| m.http.port()), Some(8005));
    }
}
