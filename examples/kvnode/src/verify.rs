//! `kvnode chain verify`: every member's chain checked link by link and
//! replayed into the KV state the member must hold, then the members'
//! chains compared with one another. A member that installed a snapshot
//! holds the chain from the snapshot's height on: its links are checked
//! from there, its first block must follow the snapshot's head, and its
//! state is compared with a whole chain replayed to its height.

use crate::api::{hex, unhex, ChainJson, DigestJson};
use crate::client::Client;
use crate::http::MAX_CHAIN_PAGE;
use crate::state::{check_links, replay_chain, Block, ChainHead};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use paxos_core::MAX_SLOT;
use std::process::ExitCode;

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    endpoint: &str,
    path: &str,
) -> Result<T, String> {
    let url = client.url(endpoint, path);
    let (resp, _) = client.once(&Method::GET, &url, &[], &Bytes::new()).await?;
    if resp.status != StatusCode::OK {
        return Err(format!("{url}: {} {}", resp.status, resp.error()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("{url}: bad answer: {e}"))
}

/// What one member holds: its digest, and its chain up to the digest's
/// height, from the first block it holds (after `base`).
struct Held {
    endpoint: String,
    digest: DigestJson,
    base: ChainHead,
    chain: Vec<Block>,
}

impl Held {
    /// The hash of the block at `height`, if this member knows it (the
    /// base's counts: its successor points at it).
    fn hash_at(&self, height: u64) -> Option<&Bytes> {
        if height == 0 || height < self.base.height {
            return None;
        }
        if height == self.base.height {
            return Some(&self.base.hash);
        }
        let index = usize::try_from(height - self.base.height - 1).ok()?;
        self.chain.get(index).map(|b| &b.hash)
    }
}

/// One member's chain up to the height its digest was taken at.
async fn fetch(client: &Client, endpoint: &str) -> Result<Held, String> {
    // The digest first: blocks up to its height never change afterwards,
    // so the chain fetched next is consistent with it however far the
    // member moves on meanwhile.
    let digest: DigestJson = get_json(client, endpoint, "/state/digest").await?;
    // Heights are slots (one block per slot): bounded like them, every sum
    // below fits in a u64.
    if digest.height > MAX_SLOT {
        return Err(format!(
            "{endpoint}: digest height {} past the limit {MAX_SLOT}",
            digest.height
        ));
    }
    let mut chain = Vec::new();
    let mut base: Option<ChainHead> = None;
    loop {
        let below = base.as_ref().map_or(0, |b| b.height) + chain.len() as u64;
        if base.is_some() && below >= digest.height {
            break;
        }
        let from = below + 1;
        let page: ChainJson = get_json(
            client,
            endpoint,
            &format!("/chain?from={from}&limit={MAX_CHAIN_PAGE}"),
        )
        .await?;
        if page.base_height > MAX_SLOT {
            return Err(format!(
                "{endpoint}: chain base height {} past the limit {MAX_SLOT}",
                page.base_height
            ));
        }
        let page_base = ChainHead {
            height: page.base_height,
            hash: if page.base_height == 0 {
                Bytes::from_static(&[0; 32])
            } else {
                unhex(&page.base_hash).map_err(|e| format!("{endpoint}: base hash: {e}"))?
            },
        };
        match &base {
            None => base = Some(page_base),
            // A snapshot installed between pages: start over past it.
            Some(b) if *b != page_base => return Box::pin(fetch(client, endpoint)).await,
            Some(_) => {}
        }
        let held = base.as_ref().map_or(0, |b| b.height);
        if held >= digest.height {
            continue;
        }
        if page.blocks.is_empty() {
            return Err(format!(
                "{endpoint}: chain ends at {} below its digest height {}",
                held + chain.len() as u64,
                digest.height
            ));
        }
        let first = held + chain.len() as u64 + 1;
        for b in page
            .blocks
            .iter()
            .take(usize::try_from((digest.height + 1).saturating_sub(first)).unwrap_or(usize::MAX))
        {
            chain.push(
                Block::try_from(b).map_err(|e| format!("{endpoint}: block {}: {e}", b.height))?,
            );
        }
    }
    Ok(Held {
        endpoint: endpoint.to_owned(),
        digest,
        base: base.unwrap_or_default(),
        chain,
    })
}

/// Checks one member: links and hashes from its first block held, and,
/// for a whole chain, the state it derives. A pruned member's state is
/// checked against a whole chain replayed to its height (in `verify`).
fn check(h: &Held) -> Result<(), String> {
    let (endpoint, digest) = (&h.endpoint, &h.digest);
    let head = if h.base.height == 0 {
        let replay = replay_chain(&h.chain).map_err(|e| format!("{endpoint}: {e}"))?;
        if hex(&replay.kv_digest()) != digest.kv_sha256 || replay.len() as u64 != digest.keys {
            return Err(format!(
                "{endpoint}: the KV state the chain derives ({} keys) differs from the member's ({} keys)",
                replay.len(),
                digest.keys
            ));
        }
        replay.head()
    } else {
        check_links(&h.chain, &h.base).map_err(|e| format!("{endpoint}: {e}"))?;
        h.chain
            .last()
            .map_or((h.base.height, h.base.hash.clone()), |b| {
                (b.height, b.hash.clone())
            })
    };
    let (height, head) = head;
    if height != digest.height || hex(&head) != digest.head {
        return Err(format!(
            "{endpoint}: chain head {height}/{} differs from the member's {}/{}",
            hex(&head),
            digest.height,
            digest.head
        ));
    }
    Ok(())
}

/// Compares a pruned member's state with a whole chain replayed to its
/// height, when some member's whole chain reaches that far.
fn check_pruned_state(pruned: &Held, members: &[Held]) -> Option<Result<(), String>> {
    let height = pruned.digest.height;
    let full = members
        .iter()
        .find(|m| m.base.height == 0 && m.chain.len() as u64 >= height)?;
    let replay = match replay_chain(&full.chain[..height as usize]) {
        Ok(r) => r,
        Err(e) => return Some(Err(format!("{}: {e}", full.endpoint))),
    };
    Some(if hex(&replay.kv_digest()) == pruned.digest.kv_sha256 {
        Ok(())
    } else {
        Err(format!(
            "{}: its KV state at height {height} differs from what {}'s chain derives there",
            pruned.endpoint, full.endpoint
        ))
    })
}

/// Verifies every endpoint's member; exits 1 on any failure.
pub(crate) async fn verify(client: &Client) -> Result<ExitCode, String> {
    let mut held: Vec<Held> = Vec::new();
    let mut failures = 0;
    for ep in client.endpoints() {
        match fetch(client, ep).await.and_then(|h| check(&h).map(|()| h)) {
            Ok(h) => held.push(h),
            Err(e) => {
                failures += 1;
                println!("FAIL {e}");
            }
        }
    }
    for h in &held {
        let d = &h.digest;
        let head = d.head.get(..16).unwrap_or(&d.head);
        if h.base.height == 0 {
            println!(
                "{}: {} blocks, head {head}, links ok, state ok ({} keys)",
                h.endpoint, d.height, d.keys
            );
            continue;
        }
        let state = match check_pruned_state(h, &held) {
            Some(Ok(())) => "state ok".to_owned(),
            Some(Err(e)) => {
                failures += 1;
                println!("FAIL {e}");
                continue;
            }
            None => "state not checked (no whole chain reaches its height)".to_owned(),
        };
        println!(
            "{}: pruned below {}, blocks {}..={}, head {head}, links ok, {state} ({} keys)",
            h.endpoint,
            h.base.height,
            h.base.height + 1,
            d.height,
            d.keys
        );
    }
    // Hash-linked chains agree at every height both hold if their blocks
    // agree at the highest one; a pruned member's base must be the block
    // the others hold at that height.
    for (i, a) in held.iter().enumerate() {
        for b in &held[i + 1..] {
            let common = a.digest.height.min(b.digest.height);
            for height in [common, a.base.height, b.base.height] {
                if let (Some(x), Some(y)) = (a.hash_at(height), b.hash_at(height)) {
                    if x != y {
                        failures += 1;
                        println!(
                            "FAIL {} and {} hold different blocks at height {height}",
                            a.endpoint, b.endpoint
                        );
                    }
                }
            }
        }
    }
    if failures > 0 {
        println!("chain verify: {failures} failure(s)");
        return Ok(ExitCode::FAILURE);
    }
    let heights: Vec<u64> = held.iter().map(|h| h.digest.height).collect();
    println!(
        "chain verify: {} member(s) agree (heights {:?}; a lower one is a prefix)",
        held.len(),
        heights
    );
    Ok(ExitCode::SUCCESS)
}
