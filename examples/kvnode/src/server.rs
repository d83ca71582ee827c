//! `kvnode serve`: opens the data directory, restores the node, and wires
//! the driver thread, the peer transport and the HTTP API together.

use crate::api::StatusJson;
use crate::auth::AdminToken;
use crate::config::{bind_data_dir, parse_members, resolve, ConfigError, Directory};
use crate::driver::{Driver, DriverError, SnapshotPolicy, INBOX_CAPACITY};
use crate::http::{router, Api};
use crate::http_server::ApiTls;
use crate::metrics::Metrics;
use crate::storage::{RedbStorage, StoreError};
use crate::tls::{PeerFiles, PeerTls, TlsError};
use crate::transport::{listen, start_senders, Inbound};
use paxos_core::proto::ConfState;
use paxos_core::{Config, RawNode, Storage, StorageError};
use slog::{Drain, Logger};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Everything `serve` is told on the command line.
#[derive(Clone, Debug)]
pub(crate) struct ServeOptions {
    pub(crate) id: u64,
    pub(crate) peers: String,
    pub(crate) data_dir: PathBuf,
    /// Where the HTTP API listens; the member list's address when absent.
    pub(crate) http: Option<String>,
    pub(crate) cluster_id: u64,
    pub(crate) verbose: bool,
    pub(crate) tick: Duration,
    pub(crate) heartbeat_ticks: u32,
    pub(crate) election_ticks: u32,
    pub(crate) snapshots: SnapshotPolicy,
    /// A new node joining a running cluster: it starts as a learner.
    pub(crate) join: bool,
    /// The store's page cache.
    pub(crate) cache_bytes: usize,
    /// Threads for HTTP and the peer transport (0: see [`io_threads`]).
    pub(crate) io_threads: usize,
    /// Mutual TLS between members (plaintext when absent).
    pub(crate) peer_tls: Option<PeerFiles>,
    /// Where the admin bearer token is (admin endpoints off when absent).
    pub(crate) admin_token_file: Option<PathBuf>,
    /// `Config::read_lease_ticks` (0: lease reads off).
    pub(crate) read_lease_ticks: u32,
    /// `Config::phase1_quorum` (a majority when absent).
    pub(crate) phase1_quorum: Option<usize>,
    /// `Config::phase2_quorum` (a majority when absent).
    pub(crate) phase2_quorum: Option<usize>,
    /// TLS for the HTTP API (plain HTTP when absent).
    pub(crate) api_tls: Option<ApiTls>,
}

/// Why `serve` could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The command line or data directory is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP listen address does not parse.
    #[error("bad --http address: {0}")]
    HttpAddr(String),
    /// The store cannot be opened or written.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The store's content cannot be restored.
    #[error("cannot restore state: {0}")]
    Restore(#[from] StorageError),
    /// The protocol refused to start (bad timing options, corrupt state).
    #[error("cannot start the node: {0}")]
    Node(#[from] paxos_core::Error),
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// Peer transport or HTTP.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime or a thread could not start.
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    /// The driver stopped on a storage failure.
    #[error("node stopped: {0}")]
    Driver(#[from] DriverError),
    /// The driver thread ended without a word (it panicked).
    #[error("node stopped: the driver thread died")]
    DriverDied,
    /// The peer TLS files are incomplete or unusable.
    #[error("peer TLS: {0}")]
    Tls(#[from] TlsError),
    /// The admin token file is unusable.
    #[error("admin token: {0}")]
    AdminToken(String),
}

/// The terminal logger: asynchronous, so a slow terminal never stalls the
/// driver; messages beyond its buffer are dropped and reported.
pub(crate) fn logger(verbose: bool) -> (Logger, slog_async::AsyncGuard) {
    let decorator = slog_term::TermDecorator::new().stderr().build();
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let level = if verbose {
        slog::Level::Debug
    } else {
        slog::Level::Info
    };
    let (drain, guard) = slog_async::Async::new(drain.filter_level(level).fuse())
        .chan_size(16 * 1024)
        .overflow_strategy(slog_async::OverflowStrategy::DropAndReport)
        .build_with_guard();
    (Logger::root(drain.fuse(), slog::o!()), guard)
}

/// Checks the options, restores the node and serves until a signal (or a
/// storage failure).
pub(crate) fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let members = parse_members(&opts.peers)?;
    let me = members
        .iter()
        .find(|m| m.id == opts.id)
        .cloned()
        .ok_or(ConfigError::NotAMember(opts.id))?;
    let http_addr = match &opts.http {
        Some(a) => resolve(a).map_err(ServeError::HttpAddr)?,
        None => me.http,
    };
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    // Checked before the store is touched: a typo in a flag changes nothing.
    let peer_tls = opts.peer_tls.as_ref().map(PeerTls::load).transpose()?;
    let api_tls = opts.api_tls.as_ref().map(ApiTls::acceptor).transpose()?;
    let admin = match &opts.admin_token_file {
        None => AdminToken::new(None),
        Some(path) => AdminToken::new(Some(
            crate::auth::read_token(path).map_err(ServeError::AdminToken)?,
        )),
    };
    let db = bind_data_dir(&opts.data_dir, opts.cluster_id, opts.id)?;
    let (root, _guard) = logger(opts.verbose);
    // A damaged file can make the store panic while it is read back: that
    // is reported as the file's damage, not as a crash.
    let restored =
        crate::contain::contained(|| restore(&opts, &db, &ids, &root)).unwrap_or_else(|what| {
            Err(ServeError::Store(StoreError::Corrupt {
                path: db.display().to_string(),
                what,
            }))
        })?;
    let logger = root.new(slog::o!("node" => opts.id));
    if peer_tls.is_none() {
        slog::warn!(
            logger,
            "peer transport in plaintext: anyone who reaches the peer port can \
            speak as any member (give --peer-cert, --peer-key and --peer-ca for mutual TLS)"
        );
    }
    slog::info!(logger, "restored"; "applied" => restored.sm.applied(), "height" => restored.sm.head().0,
        "data_dir" => %opts.data_dir.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads(opts.io_threads))
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let peer_listener = bind(me.peer, "the peer transport").await?;
        let http_listener = bind(http_addr, "the HTTP API").await?;
        let metrics = Arc::new(Metrics::default());
        let view = Arc::new(Mutex::new(StatusJson::default()));
        let (inbox, inbox_rx) = std::sync::mpsc::sync_channel(INBOX_CAPACITY);
        let directory = Directory::new(&members);
        let outbox = start_senders(
            opts.id,
            opts.cluster_id,
            &members,
            &metrics,
            &logger,
            opts.verbose,
            peer_tls.clone(),
        );
        tokio::spawn(listen(
            peer_listener,
            Arc::new(Inbound {
                cluster_id: opts.cluster_id,
                me: opts.id,
                members: directory.clone(),
                inbox: inbox.clone(),
                metrics: metrics.clone(),
                logger: logger.clone(),
                verbose: opts.verbose,
                tls: peer_tls,
            }),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let store = restored.storage.clone();
        let links = crate::driver::Links {
            inbox: inbox_rx,
            outbox,
            metrics: metrics.clone(),
            view: view.clone(),
            stop: stop.clone(),
            directory: directory.clone(),
            configured: members.clone(),
            resolver: crate::driver::Resolver::new(inbox.clone(), tokio::runtime::Handle::current()),
        };
        let driver = Driver::new(
            restored,
            links,
            logger.clone(),
            opts.tick,
            crate::ids::random_u64(),
            opts.snapshots,
        );
        let (done_tx, mut done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("driver-{}", opts.id))
            .spawn(move || {
                let _ = done_tx.send(driver.run());
            })
            .map_err(ServeError::Runtime)?;
        let api = Api {
            id: opts.id,
            inbox,
            view,
            members: directory,
            metrics,
            admin,
            store,
            scheme: if api_tls.is_some() { "https" } else { "http" },
            // Three rounds of the longest randomized election timeout
            // (2T each): a first candidate that stickiness or a split vote
            // turns down retries after a fresh timeout, and a client should
            // wait out such an election, not see an error for it. Longer
            // than that, something is wrong that waiting does not fix.
            leader_wait: opts
                .tick
                .saturating_mul(opts.election_ticks.saturating_mul(6)),
            transfer_wait: opts
                .tick
                .saturating_mul(opts.election_ticks.saturating_mul(2)),
        };
        let (stop_http, http_stopped) = watch::channel(false);
        let http = tokio::spawn(crate::http_server::serve(
            http_listener,
            router(api),
            api_tls,
            http_stopped,
        ));
        slog::info!(logger, "serving"; "peer" => %me.peer, "http" => %http_addr, "cluster" => opts.cluster_id);
        let result = tokio::select! {
            () = shutdown_signal() => {
                slog::info!(logger, "stopping");
                stop.store(true, Relaxed);
                // Everything acknowledged is durable already: the driver
                // stops at its next turn, with nothing to flush.
                done_rx.await
            }
            r = &mut done_rx => r,
        };
        // No answer at all means the driver thread died (a bug): say so,
        // and exit non-zero; the data directory is as consistent as after
        // a kill -9.
        let result = result
            .map_err(|_| ServeError::DriverDied)
            .and_then(|r| r.map_err(ServeError::from));
        let _ = stop_http.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
        if let Err(e) = &result {
            slog::crit!(logger, "node stopped"; "error" => %e);
        }
        result
    })
}

/// A node restored from its store.
pub(crate) struct Restored {
    /// The store.
    pub(crate) storage: RedbStorage,
    /// The state machine, at its last checkpoint plus the blocks after it.
    pub(crate) sm: crate::state::StateMachine,
    /// The slot of the latest snapshot.
    pub(crate) last_snapshot: u64,
    /// The node, restored from the store.
    pub(crate) node: RawNode<RedbStorage>,
}

/// Opens the store at `db` and restores the state machine and the node
/// from it.
fn restore(
    opts: &ServeOptions,
    db: &std::path::Path,
    ids: &[u64],
    root: &Logger,
) -> Result<Restored, ServeError> {
    let (voters, learners) = initial_members(opts.id, ids, opts.join);
    let mut config = Config {
        heartbeat_ticks: opts.heartbeat_ticks,
        election_ticks: opts.election_ticks,
        read_lease_ticks: opts.read_lease_ticks,
        phase1_quorum: opts.phase1_quorum,
        phase2_quorum: opts.phase2_quorum,
        seed: crate::ids::random_u64(),
        learners,
        ..Config::new(opts.id, voters)
    };
    // Refused before the store is touched: a bad quorum pair never
    // reaches a data directory.
    config.validate().map_err(paxos_core::Error::from)?;
    let storage = RedbStorage::open_with_cache(db, opts.cache_bytes)?;
    init_membership(&storage, &config.initial_conf_state())?;
    let sm = storage.load_state_machine()?;
    let last_snapshot = storage.snapshot_slot()?;
    config.applied = sm.applied();
    // The core tags its own lines with the node id.
    let node = RawNode::new(&config, storage.clone(), root)?;
    Ok(Restored {
        storage,
        sm,
        last_snapshot,
        node,
    })
}

/// The voters and learners a brand-new data directory starts with: every
/// member listed votes, except a node joining a running cluster, which
/// starts as a learner (the leader adds it, it catches up, then it is
/// promoted).
fn initial_members(me: u64, ids: &[u64], join: bool) -> (Vec<u64>, Vec<u64>) {
    if join {
        (
            ids.iter().copied().filter(|&id| id != me).collect(),
            vec![me],
        )
    } else {
        (ids.to_vec(), Vec::new())
    }
}

/// Records the initial membership in a brand-new store. A store that holds
/// one already keeps it: the membership changes through the log, and
/// `--peers` then only supplies addresses.
fn init_membership(storage: &RedbStorage, initial: &ConfState) -> Result<(), ServeError> {
    if storage.initial_state()?.conf_state.voters.is_empty() {
        if initial.voters.is_empty() {
            return Err(ConfigError::NoVoters.into());
        }
        storage.init_membership(initial)?;
    }
    Ok(())
}

/// The runtime's worker threads: `configured`, or for 0 one per CPU but
/// the one the consensus thread keeps busy, and at least one. The HTTP
/// handlers and peer senders mostly wait on sockets and on the consensus
/// thread; a worker beyond the free cores only adds wake-ups between
/// workers (three members sharing 2 CPUs spent 20 us of CPU per
/// linearizable get with one worker each, 26 us with two).
fn io_threads(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { what, addr, source })
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
