//! The command line: `serve`, the client commands, `chain verify`,
//! `cluster` and `bench`.

use crate::api::{MemberOp, MemberRequest};
use crate::bench::BenchOptions;
use crate::client::Client;
use crate::cluster::ClusterOptions;
use crate::server::ServeOptions;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Default client endpoints: the HTTP addresses `kvnode cluster` uses.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003";

/// A replicated key-value store with a hash-chained block log, on Multi-Paxos.
#[derive(Debug, Parser)]
#[command(name = "kvnode", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one member of a cluster.
    Serve(ServeArgs),
    /// Set KEY to VALUE.
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print KEY's value (linearizable unless --stale). Exits 1 if unset.
    Get {
        key: String,
        /// Read the contacted member's local state: fast, possibly stale.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove KEY.
    Delete {
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set KEY to --new only if it holds --expect (or is unset, with
    /// --expect-absent). Exits 1 if it did not swap.
    Cas(CasArgs),
    /// Print every member's role, leader, ballot, slots and chain head.
    Status {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Block chain commands.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
    /// Membership changes, one at a time, at the leader: add a new node as
    /// a learner, promote it once caught up, remove a member.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Leadership, at the leader (admin token required).
    Leader {
        #[command(subcommand)]
        command: LeaderCommand,
    },
    /// Start a local cluster of `serve` processes on loopback; Ctrl-C stops it.
    Cluster(ClusterArgs),
    /// Load the cluster with puts (and reads) and report throughput and latency.
    Bench(BenchArgs),
    /// Make a cluster CA and a certificate per member for `serve
    /// --peer-cert/--peer-key/--peer-ca` (an existing CA in --out is reused,
    /// existing member files are kept).
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
struct CertsArgs {
    /// Where to write ca.crt, ca.key, node-ID.crt and node-ID.key.
    #[arg(long)]
    out: PathBuf,
    /// The member ids, comma-separated: each certificate names `node-ID`.
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<u64>,
    /// Further names (DNS names or IP addresses) for every member
    /// certificate, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ChainCommand {
    /// Fetch every member's chain, check each hash link, re-derive the KV
    /// state from the chain and compare it with the member's, and check
    /// that the members' chains agree (a lagging member holds a prefix).
    Verify {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum LeaderCommand {
    /// Hand leadership to voter --to: the leader brings it up to date and
    /// tells it to campaign at once; waits until it leads.
    Transfer {
        /// The voter to lead next.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Add node ID as a learner; every member learns its addresses. Start
    /// it with `serve --join` (before or after).
    Add {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// Where its peer transport listens.
        #[arg(long, value_name = "ADDR")]
        peer: String,
        /// Where its HTTP API listens.
        #[arg(long, value_name = "ADDR")]
        http: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Make learner ID a voter (refused while it is not caught up).
    Promote {
        /// The learner's id.
        #[arg(long)]
        id: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove voter or learner ID (the leader too: it steps down).
    Remove {
        /// The member's id.
        #[arg(long)]
        id: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// This node's id (non-zero, listed in --peers).
    #[arg(long)]
    id: u64,
    /// Every member, this one included: either a list
    /// `ID=PEER_ADDR/HTTP_ADDR,...` (e.g.
    /// `1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003`)
    /// or a file with one `ID PEER_ADDR HTTP_ADDR` line per member (`#` comments).
    /// The peer transport listens on this node's PEER_ADDR; followers
    /// redirect clients to the leader's HTTP_ADDR.
    #[arg(long, value_name = "FILE|LIST")]
    peers: String,
    /// Where the node keeps its log, promises, KV map and chain.
    #[arg(long)]
    data_dir: PathBuf,
    /// Where the HTTP API listens (default: this node's HTTP_ADDR in --peers).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// Peer frames of another cluster id are refused.
    #[arg(long, default_value_t = 1)]
    cluster_id: u64,
    /// Log every protocol message sent and received, one line each.
    #[arg(short, long)]
    verbose: bool,
    /// Milliseconds per protocol tick.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    tick_ms: u64,
    /// The leader sends a heartbeat every this many ticks.
    #[arg(long, default_value_t = 5)]
    heartbeat_ticks: u32,
    /// A follower that hears no leader for [T, 2T) ticks starts an election.
    #[arg(long, default_value_t = 30)]
    election_ticks: u32,
    /// Snapshot the state every this many applied slots and compact the
    /// log behind it (0: never).
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Log entries kept behind a snapshot: a peer lagging by fewer slots
    /// catches up from the log instead of receiving the whole snapshot.
    #[arg(long, default_value_t = 1_000)]
    log_tail: u64,
    /// MiB of the store's pages cached in memory (the rest is read from
    /// the file when needed). Raise it when the hot keys outgrow it.
    #[arg(long, default_value_t = (crate::storage::DEFAULT_CACHE_BYTES >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    cache_mb: u64,
    /// Threads serving HTTP and the peer transport (0: one per CPU but the
    /// one the consensus thread needs, at least one). More threads than
    /// free cores only add wake-ups between them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    io_threads: u16,
    /// Join a running cluster as a new, empty node: it starts as a learner
    /// (--peers lists the current members and this node); add it with
    /// `kvnode member add` at the cluster, then `member promote` it.
    #[arg(long)]
    join: bool,
    /// This member's certificate (PEM), naming `node-ID`: with --peer-key
    /// and --peer-ca, every peer connection is mutual TLS and each peer may
    /// speak only as the member its certificate names. Without them the
    /// peer transport is plaintext: anyone who reaches the peer port can
    /// speak as any member.
    #[arg(long, value_name = "FILE")]
    peer_cert: Option<PathBuf>,
    /// This member's private key (PEM).
    #[arg(long, value_name = "FILE")]
    peer_key: Option<PathBuf>,
    /// The cluster CA's certificate (PEM): a peer's certificate must chain
    /// to it.
    #[arg(long, value_name = "FILE")]
    peer_ca: Option<PathBuf>,
    /// A file holding the admin bearer token: membership changes and
    /// leader transfers need `Authorization: Bearer TOKEN`. Without it
    /// those endpoints are refused (403).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Lease reads (0: off): the leader answers linearizable reads without
    /// a heartbeat round for this many ticks after a quorum acknowledged
    /// one. Safe only while no member's ticks run slower than the leader's
    /// by more than the factor (election-ticks - 1) / read-lease-ticks
    /// (with the default 30 election ticks, 14 tolerates a 2x drift); every
    /// member must use the same value, below --election-ticks.
    #[arg(long, default_value_t = 0)]
    read_lease_ticks: u32,
    /// Flexible quorums: promises an election needs (default: a majority).
    /// With --phase2-quorum, their sum must exceed the voters; every member
    /// must use the same sizes. On five members, --phase1-quorum 4
    /// --phase2-quorum 2 commits with two acknowledgements and needs four
    /// to elect.
    #[arg(long, value_name = "N")]
    phase1_quorum: Option<usize>,
    /// Flexible quorums: acknowledgements that commit a write (default: a
    /// majority; at least 2 with two or more voters).
    #[arg(long, value_name = "N")]
    phase2_quorum: Option<usize>,
    /// Serve the HTTP API over TLS with this certificate (PEM)...
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// ...and its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Clients may present a certificate chaining to this CA (PEM); one
    /// that does is an admin credential, like the token. Needs --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ConnArgs {
    /// HTTP addresses of the members to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_ENDPOINTS)]
    endpoints: Vec<String>,
    /// Give up after this long (e.g. 500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Session for exactly-once writes (default: a random id)...
    #[arg(long)]
    client_id: Option<u64>,
    /// ...and its sequence number (default: 1). Repeating a request with the
    /// same pair applies it at most once.
    #[arg(long)]
    seq: Option<u64>,
    /// A file holding the admin bearer token (membership changes, leader
    /// transfer).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Speak HTTPS, trusting the CA in FILE (PEM) for the members'
    /// certificates.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// With --cacert: present this client certificate (PEM)...
    #[arg(
        long,
        value_name = "FILE",
        requires = "cacert",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// ...and its key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CasArgs {
    key: String,
    /// The value KEY must hold for the swap.
    #[arg(
        long,
        required_unless_present = "expect_absent",
        conflicts_with = "expect_absent"
    )]
    expect: Option<String>,
    /// Swap only if KEY is unset.
    #[arg(long)]
    expect_absent: bool,
    /// The value to store.
    #[arg(long)]
    new: String,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// How many members.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// One sub-directory per member (node-1, node-2, ...); reused on restart.
    #[arg(long, default_value = "./kvdata")]
    data_dir: PathBuf,
    /// Member i's peer port is BASE+i, its HTTP port BASE+1000+i.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..=55_000))]
    base_port: u16,
    /// Passed to every member.
    #[arg(long, default_value_t = 1)]
    cluster_id: u64,
    /// Passed to every member: log every protocol message.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// HTTP addresses of the members, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_ENDPOINTS)]
    endpoints: Vec<String>,
    /// Clients running at once, each with one request in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// How long to run (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Bytes per value written.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    value_size: u64,
    /// Fraction of requests that are reads (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    read_ratio: f64,
    /// Reads are served locally (`?stale=true`) instead of linearizably.
    #[arg(long)]
    stale_reads: bool,
    /// Distinct keys written and read.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Writes rotate through this many distinct client ids (sessions)
    /// instead of one per worker: the sessions table under churn.
    #[arg(long, default_value_t = 0)]
    clients: u64,
}

/// `500ms`, `10s`, `2m`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 500ms, 10s, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in `{s}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a ratio between 0.0 and 1.0")),
    }
}

/// Parses the command line, runs the command, and returns the exit code:
/// 0 on success, 1 on failure (with the reason on stderr), 2 on a usage
/// error.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a),
        Command::Certs(a) => crate::tls::generate(&a.out, &a.ids, &a.hosts)
            .map(|files| {
                for (id, f) in a.ids.iter().zip(&files) {
                    println!(
                        "node {id}: --peer-cert {} --peer-key {} --peer-ca {}",
                        f.cert.display(),
                        f.key.display(),
                        f.ca.display()
                    );
                }
                println!(
                    "keep {} secret: it signs new members",
                    a.out.join("ca.key").display()
                );
                ExitCode::SUCCESS
            })
            .map_err(|e| e.to_string()),
        Command::Cluster(a) => crate::cluster::run(ClusterOptions {
            nodes: a.nodes,
            data_dir: a.data_dir,
            base_port: a.base_port,
            cluster_id: a.cluster_id,
            verbose: a.verbose,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Bench(a) => crate::bench::run(BenchOptions {
            endpoints: a.endpoints,
            concurrency: a.concurrency,
            duration: a.duration,
            value_size: a.value_size as usize,
            read_ratio: a.read_ratio,
            stale_reads: a.stale_reads,
            keys: a.keys,
            clients: a.clients,
            session_base: crate::ids::random_u64() >> 1,
        })
        .map(|()| ExitCode::SUCCESS),
        other => client_command(other),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode, String> {
    let peer_tls = crate::tls::PeerFiles::from_flags(a.peer_cert, a.peer_key, a.peer_ca)
        .map_err(|e| e.to_string())?;
    crate::server::serve(ServeOptions {
        id: a.id,
        peers: a.peers,
        data_dir: a.data_dir,
        http: a.http,
        cluster_id: a.cluster_id,
        verbose: a.verbose,
        tick: Duration::from_millis(a.tick_ms),
        heartbeat_ticks: a.heartbeat_ticks,
        election_ticks: a.election_ticks,
        snapshots: crate::driver::SnapshotPolicy {
            every: a.snapshot_every,
            log_tail: a.log_tail,
        },
        join: a.join,
        cache_bytes: usize::try_from(a.cache_mb << 20).unwrap_or(usize::MAX),
        io_threads: usize::from(a.io_threads),
        peer_tls,
        admin_token_file: a.admin_token_file,
        read_lease_ticks: a.read_lease_ticks,
        phase1_quorum: a.phase1_quorum,
        phase2_quorum: a.phase2_quorum,
        api_tls: a
            .cert
            .zip(a.key)
            .map(|(cert, key)| crate::http_server::ApiTls {
                cert,
                key,
                client_ca: a.client_ca,
            }),
    })
    .map(|()| ExitCode::SUCCESS)
    .map_err(|e| e.to_string())
}

fn client_command(command: Command) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        use crate::commands as c;
        match command {
            Command::Put { key, value, conn } => c::put(&conn.session()?, &key, value).await,
            Command::Get { key, stale, conn } => c::get(&conn.session()?, &key, stale).await,
            Command::Delete { key, conn } => c::delete(&conn.session()?, &key).await,
            Command::Cas(a) => {
                let expected = if a.expect_absent { None } else { a.expect };
                c::cas(&a.conn.session()?, &a.key, expected, a.new).await
            }
            Command::Status { conn } => c::status(&conn.client()?).await,
            Command::Chain {
                command: ChainCommand::Verify { conn },
            } => crate::verify::verify(&conn.client()?).await,
            Command::Leader {
                command: LeaderCommand::Transfer { to, conn },
            } => c::transfer(&conn.client()?, to).await,
            Command::Member { command } => {
                let (conn, req) = match command {
                    MemberCommand::Add {
                        id,
                        peer,
                        http,
                        conn,
                    } => (
                        conn,
                        member_request(MemberOp::Add, id, Some(peer), Some(http)),
                    ),
                    MemberCommand::Promote { id, conn } => {
                        (conn, member_request(MemberOp::Promote, id, None, None))
                    }
                    MemberCommand::Remove { id, conn } => {
                        (conn, member_request(MemberOp::Remove, id, None, None))
                    }
                };
                c::member(&conn.client()?, &req).await
            }
            Command::Serve(_) | Command::Cluster(_) | Command::Bench(_) | Command::Certs(_) => {
                Err("not a client command".into())
            }
        }
    })
}

fn member_request(
    op: MemberOp,
    id: u64,
    peer: Option<String>,
    http: Option<String>,
) -> MemberRequest {
    MemberRequest { op, id, peer, http }
}

impl ConnArgs {
    fn client(&self) -> Result<Client, String> {
        let mut client = Client::new(&self.endpoints, self.timeout).map_err(|e| e.to_string())?;
        if let Some(ca) = &self.cacert {
            let identity = self.client_cert.as_deref().zip(self.client_key.as_deref());
            client = client.with_tls(ca, identity).map_err(|e| e.to_string())?;
        }
        match &self.token_file {
            None => Ok(client),
            Some(path) => Ok(client.with_token(crate::auth::read_token(path)?)),
        }
    }

    fn session(&self) -> Result<crate::commands::Session, String> {
        Ok(crate::commands::Session {
            client: self.client()?,
            id: self.client_id.unwrap_or_else(crate::ids::random_u64),
            seq: self.seq.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_ratios_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10h").is_err());
        assert!(parse_ratio("1.5").is_err());
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
    }
}
