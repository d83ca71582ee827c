//! The peer transport: TCP carrying length-prefixed [`PeerFrame`]s.
//!
//! Each node dials one outgoing connection per peer and sends on it only;
//! it receives on the connections its peers dialed. Every queue is bounded
//! and drops on overflow: the protocol resends what matters (heartbeats,
//! per-peer progress), while a queue that blocked would stall the driver.
//!
//! With [`PeerTls`] every connection is mutual TLS: the dialer checks that
//! the dialed member's certificate names it, the listener that the
//! dialer's chains to the cluster CA, and each connection then carries
//! frames from the one member its certificate names (any other `from` is
//! refused and counted). An incoming connection must admit a frame within
//! [`ADMIT_TIMEOUT`] and may then stay silent for at most
//! [`IDLE_TIMEOUT`]; one source address (an IPv6 /64) holds at most
//! [`MAX_PENDING_PER_SOURCE`] connections that have not admitted a frame
//! yet, and all of them together at most half of the node's slots, so
//! silent or slow clients cannot take the slots of real peers.

use crate::config::{Directory, Member};
use crate::driver::{Inbox, Input};
use crate::frame::{admit, FrameCodec, FrameError, PeerFrame};
use crate::metrics::{Metrics, Rejection};
use crate::tls::{names_member, PeerTls};
use bytes::BytesMut;
use paxos_core::proto::Message;
use rustls::pki_types::CertificateDer;
use slog::Logger;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

/// Largest frame accepted or sent: above the core's per-message byte limit
/// (1 MiB, a single larger entry travelling alone) with room for a maximal
/// value (1 MiB) plus its key and envelope.
pub(crate) const MAX_FRAME: usize = 8 << 20;
/// Messages queued per peer before new ones are dropped.
const SEND_QUEUE: usize = 4096;
/// Bytes gathered into one write.
const WRITE_BATCH: usize = 1 << 20;
/// Incoming connections served at once; more are closed on accept.
const MAX_INBOUND: usize = 64;
/// Incoming connections from one address (an IPv6 /64) that have not
/// admitted a frame yet; more are closed on accept.
pub(crate) const MAX_PENDING_PER_SOURCE: usize = 8;
/// Incoming connections in all that have not admitted a frame yet: the
/// rest of `MAX_INBOUND` stays for connections that did.
const MAX_PENDING: usize = MAX_INBOUND / 2;
/// How long an incoming connection has to finish its TLS handshake and
/// admit its first frame.
pub(crate) const ADMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admitted connection may stay silent (peers send at least a
/// heartbeat every few ticks while they have something to say; a closed
/// one is redialed when they do again).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dialing a peer (TCP and TLS) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
/// A member that restarts hears its peers again within this (a longer
/// back-off left it answering "no leader known" for a second).
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// The driver's handle for sending: one bounded queue per peer.
#[derive(Debug)]
pub(crate) struct Outbox {
    me: u64,
    cluster_id: u64,
    /// Each peer's queue, and the address its sender task dials.
    peers: BTreeMap<u64, (SocketAddr, mpsc::Sender<Message>)>,
    metrics: Arc<Metrics>,
    logger: Logger,
    /// Where sender tasks run (the driver is a plain thread).
    runtime: tokio::runtime::Handle,
    /// Set by `-v`: every message sent is logged on one line.
    trace: Option<Logger>,
    /// Mutual TLS, when configured.
    tls: Option<PeerTls>,
}

impl Outbox {
    /// Queues `msgs` for their peers without blocking; a full queue drops.
    pub(crate) fn send(&self, msgs: impl IntoIterator<Item = Message>) {
        for m in msgs {
            if let Some(log) = &self.trace {
                slog::info!(log, "send {m}");
            }
            let Some((_, queue)) = self.peers.get(&m.to) else {
                self.metrics.peer_send_dropped.fetch_add(1, Relaxed);
                continue;
            };
            match queue.try_send(m) {
                Ok(()) => {
                    self.metrics.peer_sent.fetch_add(1, Relaxed);
                    self.metrics.peer_queue.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    self.metrics.peer_send_dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Starts one sender task per peer (every member but `me`) on the current
/// runtime.
pub(crate) fn start_senders(
    me: u64,
    cluster_id: u64,
    members: &[Member],
    metrics: &Arc<Metrics>,
    logger: &Logger,
    verbose: bool,
    tls: Option<PeerTls>,
) -> Outbox {
    let mut outbox = Outbox {
        me,
        cluster_id,
        peers: BTreeMap::new(),
        metrics: metrics.clone(),
        logger: logger.clone(),
        runtime: tokio::runtime::Handle::current(),
        trace: verbose.then(|| logger.clone()),
        tls,
    };
    outbox.set_peers(members);
    outbox
}

impl Outbox {
    /// Sends to exactly `members` (but this node) from now on: a sender
    /// task starts for each new peer (or new address), and the queue of a
    /// peer no longer listed closes, which ends its task.
    pub(crate) fn set_peers(&mut self, members: &[Member]) {
        self.peers.retain(|id, (addr, _)| {
            members
                .iter()
                .any(|m| m.id == *id && m.peer == *addr && m.id != self.me)
        });
        for m in members.iter().filter(|m| m.id != self.me) {
            if self.peers.contains_key(&m.id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(SEND_QUEUE);
            self.peers.insert(m.id, (m.peer, tx));
            let log = self.logger.new(slog::o!("peer" => m.id));
            self.runtime.spawn(sender(
                m.id,
                m.peer,
                self.tls.clone(),
                self.cluster_id,
                rx,
                self.metrics.clone(),
                log,
            ));
        }
    }
}

/// Takes one message off a peer queue, keeping the depth gauge right.
fn took(metrics: &Metrics) {
    metrics.peer_queue.fetch_sub(1, Relaxed);
}

/// The sending half of a peer connection, plain or TLS.
type PeerWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// Dials member `id` at `addr`; over TLS, its certificate must name it.
async fn dial(id: u64, addr: SocketAddr, tls: Option<&PeerTls>) -> std::io::Result<PeerWrite> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok::<PeerWrite, std::io::Error>(match tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(
                tls.connector()
                    .connect(PeerTls::server_name(id), tcp)
                    .await?,
            ),
        })
    };
    match tokio::time::timeout(DIAL_TIMEOUT, connect).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "dialing timed out",
        )),
    }
}

/// Sends one peer's queue over one connection, redialing with back-off.
async fn sender(
    id: u64,
    addr: SocketAddr,
    tls: Option<PeerTls>,
    cluster_id: u64,
    mut rx: mpsc::Receiver<Message>,
    metrics: Arc<Metrics>,
    log: Logger,
) {
    let codec = FrameCodec::new(MAX_FRAME);
    let mut backoff = BACKOFF_MIN;
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut failures = 0u64;
    loop {
        // Dial only when there is something to send.
        let Some(first) = rx.recv().await else { return };
        took(&metrics);
        let mut stream = match dial(id, addr, tls.as_ref()).await {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                // Once per outage at info, then quietly.
                if failures == 1 {
                    slog::info!(log, "peer unreachable"; "addr" => %addr, "error" => %e);
                }
                // What queued meanwhile is stale by the time we reconnect;
                // the protocol resends what still matters.
                while rx.try_recv().is_ok() {
                    took(&metrics);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        metrics.peer_connects.fetch_add(1, Relaxed);
        slog::info!(log, "connected to peer"; "addr" => %addr);
        backoff = BACKOFF_MIN;
        failures = 0;
        let mut next = Some(first);
        loop {
            let m = match next.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => {
                        took(&metrics);
                        m
                    }
                    None => return,
                },
            };
            buf.clear();
            encode(&codec, cluster_id, m, &mut buf, &log);
            // Everything already queued leaves in the same write.
            while buf.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(m) => {
                        took(&metrics);
                        encode(&codec, cluster_id, m, &mut buf, &log);
                    }
                    Err(_) => break,
                }
            }
            // TLS holds records back until flushed.
            let written = match stream.write_all(&buf).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                slog::info!(log, "peer connection lost"; "addr" => %addr, "error" => %e);
                break;
            }
        }
    }
}

fn encode(codec: &FrameCodec, cluster_id: u64, m: Message, buf: &mut BytesMut, log: &Logger) {
    let frame = PeerFrame {
        cluster_id,
        message: Some(m),
    };
    if let Err(e) = codec.encode(&frame, buf) {
        slog::error!(log, "message not sent"; "error" => %e);
    }
}

/// What an incoming connection needs to admit frames.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) cluster_id: u64,
    pub(crate) me: u64,
    pub(crate) members: Directory,
    pub(crate) inbox: Inbox,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) logger: Logger,
    pub(crate) verbose: bool,
    /// Mutual TLS, when configured.
    pub(crate) tls: Option<PeerTls>,
}

/// Connections that have not admitted a frame yet: per source, and in all.
#[derive(Debug, Default)]
struct Pending(Mutex<(BTreeMap<IpAddr, usize>, usize)>);

/// The source a connection counts against: its address, or for IPv6 its
/// /64 (one host commonly holds a whole /64).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
    }
}

impl Pending {
    /// Counts one more from `ip`, unless its source or the node holds the
    /// maximum already.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<PendingGuard> {
        let ip = source(ip);
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, total) = &mut *guard;
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_PENDING_PER_SOURCE || *total >= MAX_PENDING {
            if *n == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *n += 1;
        *total += 1;
        Some(PendingGuard {
            pending: self.clone(),
            ip,
        })
    }
}

/// One pending connection; dropped once it admits a frame or closes.
#[derive(Debug)]
struct PendingGuard {
    pending: Arc<Pending>,
    ip: IpAddr,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut guard = self.pending.0.lock().unwrap_or_else(|e| e.into_inner());
        let (map, total) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts peer connections forever, each served by its own task.
pub(crate) async fn listen(listener: TcpListener, ctx: Arc<Inbound>) {
    let slots = Arc::new(Semaphore::new(MAX_INBOUND));
    let pending = Arc::new(Pending::default());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                slog::warn!(ctx.logger, "accept failed"; "error" => %e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(guard) = pending.enter(remote.ip()) else {
            ctx.metrics.peer_conns_refused.fetch_add(1, Relaxed);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ctx.metrics.peer_conns_refused.fetch_add(1, Relaxed);
            slog::warn!(ctx.logger, "too many peer connections, closing one"; "remote" => %remote);
            continue;
        };
        let ctx = ctx.clone();
        // The handshake and the first frame share one deadline.
        let admit_by = tokio::time::Instant::now() + ADMIT_TIMEOUT;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            match accept(stream, admit_by, &ctx).await {
                Ok((read, cert)) => receive(read, cert, remote, (guard, admit_by), &ctx).await,
                Err(e) => {
                    ctx.metrics.peer_conns_refused.fetch_add(1, Relaxed);
                    slog::warn!(ctx.logger, "peer connection refused"; "remote" => %remote, "error" => %e);
                }
            }
            drop(permit);
        });
    }
}

/// The receiving half of a peer connection, plain or TLS.
type PeerRead = Box<dyn AsyncRead + Unpin + Send>;

/// The TLS handshake (by `admit_by`), when configured: the stream, and the
/// verified certificate of the member on the other end.
async fn accept(
    tcp: TcpStream,
    admit_by: tokio::time::Instant,
    ctx: &Inbound,
) -> std::io::Result<(PeerRead, Option<CertificateDer<'static>>)> {
    let Some(tls) = &ctx.tls else {
        return Ok((Box::new(tcp), None));
    };
    let stream = tokio::time::timeout_at(admit_by, tls.acceptor().accept(tcp))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    // The acceptor requires a client certificate: a handshake without one
    // fails above.
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .ok_or_else(|| std::io::Error::other("no client certificate"))?;
    Ok((Box::new(stream), Some(cert)))
}

/// Who a connection speaks for: over TLS, the one member its certificate
/// names (bound at its first frame); in plaintext, anyone.
#[derive(Debug)]
enum Speaker {
    Plain,
    Certified {
        cert: CertificateDer<'static>,
        member: Option<u64>,
    },
}

impl Speaker {
    /// Whether a frame from `from` may come over this connection. A
    /// certificate binds the connection to `from` at the first frame, and
    /// only if it names `from` and no other of `members`: one naming two
    /// members (a CA that issued it so, or host names of the `node-ID`
    /// form) speaks for neither.
    fn may_send(&mut self, from: u64, members: &Directory) -> bool {
        match self {
            Speaker::Plain => true,
            Speaker::Certified {
                member: Some(id), ..
            } => *id == from,
            Speaker::Certified { cert, member } => {
                let ok = names_member(cert, from)
                    && !members
                        .ids()
                        .into_iter()
                        .any(|other| other != from && names_member(cert, other));
                if ok {
                    *member = Some(from);
                }
                ok
            }
        }
    }
}

fn rejection(e: &FrameError) -> Rejection {
    match e {
        FrameError::TooLarge { .. } => Rejection::TooLarge,
        FrameError::Malformed(_) => Rejection::Malformed,
        FrameError::WrongCluster { .. } => Rejection::WrongCluster,
        FrameError::UnknownNode { .. } => Rejection::UnknownNode,
        FrameError::Empty => Rejection::Empty,
        FrameError::Impersonation { .. } => Rejection::Impersonation,
    }
}

/// Reads frames from one connection until it closes, breaks the framing,
/// or stays silent too long.
async fn receive(
    mut stream: PeerRead,
    cert: Option<CertificateDer<'static>>,
    remote: SocketAddr,
    (guard, admit_by): (PendingGuard, tokio::time::Instant),
    ctx: &Inbound,
) {
    let codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut refused = 0u64;
    let mut speaker = match cert {
        None => Speaker::Plain,
        Some(cert) => Speaker::Certified { cert, member: None },
    };
    // Until its first admitted frame the connection counts against the
    // pending limits and has until `admit_by` (ADMIT_TIMEOUT from accept).
    let mut pending = Some(guard);
    loop {
        let deadline = if pending.is_some() {
            admit_by
        } else {
            tokio::time::Instant::now() + IDLE_TIMEOUT
        };
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => {
                if pending.is_some() {
                    ctx.metrics.peer_conns_refused.fetch_add(1, Relaxed);
                }
                slog::info!(ctx.logger, "closing a silent peer connection"; "remote" => %remote);
                return;
            }
        }
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    // The stream's framing is lost: nothing after this can
                    // be trusted, so this connection (only) closes.
                    ctx.metrics.reject(rejection(&e));
                    slog::warn!(ctx.logger, "closing peer connection"; "remote" => %remote, "error" => %e);
                    return;
                }
            };
            let admitted = admit(frame, ctx.cluster_id, ctx.me, |id| ctx.members.contains(id))
                .and_then(|msg| {
                    if speaker.may_send(msg.from, &ctx.members) {
                        Ok(msg)
                    } else {
                        Err(FrameError::Impersonation { claimed: msg.from })
                    }
                });
            match admitted {
                Ok(msg) => {
                    pending = None;
                    if ctx.verbose {
                        slog::info!(ctx.logger, "recv {msg}");
                    }
                    // Counted before it is queued: the driver may take it
                    // off before `try_send` returns.
                    ctx.metrics.driver_queue.fetch_add(1, Relaxed);
                    match ctx.inbox.try_send(Input::Peer(msg)) {
                        Ok(()) => {
                            ctx.metrics.peer_received.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            ctx.metrics.driver_queue.fetch_sub(1, Relaxed);
                            if let TrySendError::Disconnected(_) = e {
                                return;
                            }
                            ctx.metrics.peer_recv_dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(e) => {
                    ctx.metrics.reject(rejection(&e));
                    refused += 1;
                    // The first refusal per connection is worth a line; a
                    // flood of them is counted, not logged.
                    if refused == 1 {
                        slog::warn!(ctx.logger, "peer frame refused"; "remote" => %remote, "error" => %e);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_connections_are_bounded_per_source_and_in_all() {
        let p = Arc::new(Pending::default());
        let v6 =
            |last: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last));
        // One /64 is one source, whatever the interface id.
        let held: Vec<_> = (0..MAX_PENDING_PER_SOURCE as u16)
            .map(|i| p.enter(v6(i)).expect("within the source's limit"))
            .collect();
        assert!(p.enter(v6(999)).is_none(), "same /64");
        drop(held);
        assert!(p.enter(v6(999)).is_some(), "freed on drop");
        // Many sources: the node-wide cap.
        let many: Vec<_> = (0..=255u8)
            .filter_map(|i| p.enter(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        assert_eq!(many.len(), MAX_PENDING);
    }
}
