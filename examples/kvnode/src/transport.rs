//! The peer transport: TCP carrying length-prefixed [`PeerFrame`]s.
//!
//! Each node dials one outgoing connection per peer and sends on it only;
//! it receives on the connections its peers dialed. Every queue is bounded
//! and drops on overflow: the protocol resends what matters (heartbeats,
//! per-peer progress), while a queue that blocked would stall the driver.

use crate::config::{Directory, Member};
use crate::driver::{Inbox, Input};
use crate::frame::{admit, FrameCodec, FrameError, PeerFrame};
use crate::metrics::{Metrics, Rejection};
use bytes::BytesMut;
use paxos_core::proto::Message;
use slog::Logger;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

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
) -> Outbox {
    let mut outbox = Outbox {
        me,
        cluster_id,
        peers: BTreeMap::new(),
        metrics: metrics.clone(),
        logger: logger.clone(),
        runtime: tokio::runtime::Handle::current(),
        trace: verbose.then(|| logger.clone()),
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
                m.peer,
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

/// Sends one peer's queue over one connection, redialing with back-off.
async fn sender(
    addr: SocketAddr,
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
        let mut stream = match TcpStream::connect(addr).await {
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
        let _ = stream.set_nodelay(true);
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
            if let Err(e) = stream.write_all(&buf).await {
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
}

/// Accepts peer connections forever, each served by its own task.
pub(crate) async fn listen(listener: TcpListener, ctx: Arc<Inbound>) {
    let slots = Arc::new(Semaphore::new(MAX_INBOUND));
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            slog::warn!(ctx.logger, "too many peer connections, closing one"; "remote" => %remote);
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            receive(stream, remote, &ctx).await;
            drop(permit);
        });
    }
}

fn rejection(e: &FrameError) -> Rejection {
    match e {
        FrameError::TooLarge { .. } => Rejection::TooLarge,
        FrameError::Malformed(_) => Rejection::Malformed,
        FrameError::WrongCluster { .. } => Rejection::WrongCluster,
        FrameError::UnknownNode { .. } => Rejection::UnknownNode,
        FrameError::Empty => Rejection::Empty,
    }
}

/// Reads frames from one connection until it closes or breaks the framing.
async fn receive(mut stream: TcpStream, remote: SocketAddr, ctx: &Inbound) {
    let _ = stream.set_nodelay(true);
    let codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut refused = 0u64;
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
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
            match admit(frame, ctx.cluster_id, ctx.me, |id| ctx.members.contains(id)) {
                Ok(msg) => {
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
