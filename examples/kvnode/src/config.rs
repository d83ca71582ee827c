//! Cluster membership as given on the command line, and the identity a
//! data directory is bound to.
//!
//! Members are written either inline, `1=127.0.0.1:7001/127.0.0.1:8001,...`
//! (id = peer address / HTTP address), or as a file with one
//! `id peer_addr http_addr` line per member (`#` starts a comment). The HTTP
//! addresses are needed so a follower can redirect clients to the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A bad command line or data directory: the node refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A member entry that does not parse.
    #[error("bad member entry `{entry}`: {reason} (expected ID=PEER_ADDR/HTTP_ADDR, e.g. 1=127.0.0.1:7001/127.0.0.1:8001)")]
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The member list names nobody.
    #[error("the member list is empty")]
    Empty,
    /// An id or address listed twice.
    #[error("{0} is listed more than once")]
    Duplicate(String),
    /// This node's id is not in the member list.
    #[error("node {0} is not in the member list")]
    NotAMember(u64),
    /// A joining node listed no member besides itself.
    #[error("--join needs the current members in --peers besides this node")]
    NoVoters,
    /// The members file cannot be read.
    #[error("cannot read members file {path}: {reason}")]
    ReadFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The data directory belongs to another node or cluster.
    #[error("data directory {dir} belongs to {found}, not to {wanted}")]
    WrongIdentity {
        /// The directory.
        dir: String,
        /// The identity recorded there.
        found: String,
        /// The identity asked for.
        wanted: String,
    },
    /// The data directory cannot be created or its identity not written.
    #[error("data directory {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: String,
        /// Why.
        reason: String,
    },
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id (non-zero).
    pub id: u64,
    /// Where its peer transport listens.
    pub peer: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
}

/// The members a node knows the addresses of, this one included: shared by
/// the driver (which updates it as the membership changes), the peer
/// transport (which admits frames from these only) and the HTTP API (which
/// redirects to the leader's address). Clones share it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Directory(Arc<RwLock<BTreeMap<u64, Member>>>);

impl Directory {
    /// A directory of `members`.
    pub(crate) fn new(members: &[Member]) -> Self {
        let d = Directory::default();
        d.set(members.iter().map(|m| (m.id, m.clone())).collect());
        d
    }

    /// Replaces every entry.
    pub(crate) fn set(&self, members: BTreeMap<u64, Member>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = members;
    }

    /// The member `id`, if known.
    pub(crate) fn get(&self, id: u64) -> Option<Member> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every known member's id.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Whether `id` is a known member.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }
}

/// Parses a member list: inline when it contains `=`, else a file path.
pub fn parse_members(spec: &str) -> Result<Vec<Member>, ConfigError> {
    let members = if spec.contains('=') {
        spec.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_inline)
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let text = std::fs::read_to_string(spec).map_err(|e| ConfigError::ReadFile {
            path: spec.to_owned(),
            reason: e.to_string(),
        })?;
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(parse_line)
            .collect::<Result<Vec<_>, _>>()?
    };
    check(members)
}

fn parse_inline(entry: &str) -> Result<Member, ConfigError> {
    let bad = |reason: &str| ConfigError::BadEntry {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let (id, addrs) = entry.split_once('=').ok_or_else(|| bad("missing `=`"))?;
    let (peer, http) = addrs
        .split_once('/')
        .ok_or_else(|| bad("missing `/HTTP_ADDR`"))?;
    member(entry, id, peer, http)
}

fn parse_line(line: &str) -> Result<Member, ConfigError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields[..] {
        [id, peer, http] => member(line, id, peer, http),
        _ => Err(ConfigError::BadEntry {
            entry: line.to_owned(),
            reason: "expected three fields: ID PEER_ADDR HTTP_ADDR".into(),
        }),
    }
}

fn member(entry: &str, id: &str, peer: &str, http: &str) -> Result<Member, ConfigError> {
    let bad = |reason: String| ConfigError::BadEntry {
        entry: entry.to_owned(),
        reason,
    };
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| bad(format!("`{}` is not a node id", id.trim())))?;
    if id == 0 {
        return Err(bad("node id 0 is reserved".into()));
    }
    Ok(Member {
        id,
        peer: resolve(peer).map_err(&bad)?,
        http: resolve(http).map_err(&bad)?,
    })
}

/// One address for `host:port` (names resolve, the first address wins).
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let addr = addr.trim();
    addr.to_socket_addrs()
        .map_err(|e| format!("`{addr}` is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("`{addr}` resolves to no address"))
}

fn check(mut members: Vec<Member>) -> Result<Vec<Member>, ConfigError> {
    if members.is_empty() {
        return Err(ConfigError::Empty);
    }
    members.sort_by_key(|m| m.id);
    let mut seen = BTreeSet::new();
    for m in &members {
        for key in [
            format!("node {}", m.id),
            format!("address {}", m.peer),
            format!("address {}", m.http),
        ] {
            if !seen.insert(key.clone()) {
                return Err(ConfigError::Duplicate(key));
            }
        }
    }
    Ok(members)
}

/// Binds `dir` to this node of this cluster on first use, and refuses a
/// directory bound to another: starting node 2 on node 1's log would break
/// every promise node 1 made.
pub fn bind_data_dir(dir: &Path, cluster_id: u64, id: u64) -> Result<PathBuf, ConfigError> {
    let fail = |reason: String| ConfigError::DataDir {
        dir: dir.display().to_string(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let path = dir.join("identity");
    let wanted = format!("cluster {cluster_id} node {id}");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == wanted => {}
        Ok(found) => {
            return Err(ConfigError::WrongIdentity {
                dir: dir.display().to_string(),
                found: found.trim().to_owned(),
                wanted,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{wanted}\n")).map_err(|e| fail(e.to_string()))?;
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    Ok(dir.join("kvnode.redb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_file_lists_parse_alike() {
        let inline =
            parse_members("2=127.0.0.1:7002/127.0.0.1:8002, 1=127.0.0.1:7001/127.0.0.1:8001")
                .expect("valid");
        assert_eq!(inline.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("members");
        std::fs::write(
            &file,
            "# id peer http\n1 127.0.0.1:7001 127.0.0.1:8001\n\n2 127.0.0.1:7002 127.0.0.1:8002 # two\n",
        )
        .expect("write");
        let from_file = parse_members(file.to_str().expect("utf-8")).expect("valid");
        assert_eq!(inline, from_file);
    }

    #[test]
    fn bogus_lists_are_typed_errors() {
        for bad in [
            "1=127.0.0.1:7001",
            "x=127.0.0.1:7001/127.0.0.1:8001",
            "0=127.0.0.1:7001/127.0.0.1:8001",
            "1=nowhere/127.0.0.1:8001",
            "1=127.0.0.1:99999/127.0.0.1:8001",
        ] {
            assert!(
                matches!(parse_members(bad), Err(ConfigError::BadEntry { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_members("1=127.0.0.1:7001/127.0.0.1:8001,1=127.0.0.1:7002/127.0.0.1:8002"),
            Err(ConfigError::Duplicate(_))
        ));
        assert!(matches!(
            parse_members("1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7001/127.0.0.1:8002"),
            Err(ConfigError::Duplicate(_))
        ));
        assert!(matches!(
            parse_members("/no/such/file"),
            Err(ConfigError::ReadFile { .. })
        ));
        assert!(matches!(
            parse_members(" = "),
            Err(ConfigError::BadEntry { .. })
        ));
    }

    #[test]
    fn a_data_dir_stays_with_its_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        bind_data_dir(dir.path(), 9, 1).expect("first use");
        bind_data_dir(dir.path(), 9, 1).expect("same node again");
        assert!(matches!(
            bind_data_dir(dir.path(), 9, 2),
            Err(ConfigError::WrongIdentity { .. })
        ));
        assert!(matches!(
            bind_data_dir(dir.path(), 8, 1),
            Err(ConfigError::WrongIdentity { .. })
        ));
    }
}
