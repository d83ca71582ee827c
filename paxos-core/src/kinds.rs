//! What each message kind is, in one place. Every property is an
//! exhaustive match with no catch-all arm, so a new kind does not compile
//! until it is classified.

use paxos_proto::Body;

/// Whether a message of this kind may leave before the `Ready` carrying it
/// is persisted (PROTOCOL.md rule D2): a leader's own traffic (its ballot
/// was promised durably before it won phase 1, every watermark it
/// announces counts its own acceptance only once durable, its entries bind
/// only the acceptors that persist them), a pre-vote (it changes nothing)
/// and a forwarded proposal. Replies, and a candidate's Prepare (its own
/// promise must be durable first, or a restart could reuse the ballot),
/// wait for the persist.
pub(crate) fn may_leave_before_persist(body: &Body) -> bool {
    match body {
        Body::Accept(_)
        | Body::Heartbeat(_)
        | Body::Decide(_)
        | Body::InstallSnapshot(_)
        | Body::TimeoutNow(_)
        | Body::PrePrepare(_)
        | Body::Propose(_) => true,
        Body::PrePrepareReply(_)
        | Body::Prepare(_)
        | Body::Promise(_)
        | Body::Accepted(_)
        | Body::Reject(_)
        | Body::HeartbeatReply(_)
        | Body::SnapshotReply(_) => false,
    }
}

/// Whether a message of this kind is a leader's or candidate's request,
/// which a node takes even from a sender outside the membership it knows:
/// a lagging node must hear leaders of memberships added after its decided
/// prefix, and ballots, not membership, decide whether they are obeyed.
/// Replies count only from the nodes asked; forwarded proposals and
/// transfer orders only from members.
pub(crate) fn is_leadership_request(body: &Body) -> bool {
    match body {
        Body::PrePrepare(_)
        | Body::Prepare(_)
        | Body::Accept(_)
        | Body::Heartbeat(_)
        | Body::Decide(_)
        | Body::InstallSnapshot(_) => true,
        Body::PrePrepareReply(_)
        | Body::Promise(_)
        | Body::Accepted(_)
        | Body::Reject(_)
        | Body::HeartbeatReply(_)
        | Body::SnapshotReply(_)
        | Body::Propose(_)
        | Body::TimeoutNow(_) => false,
    }
}
