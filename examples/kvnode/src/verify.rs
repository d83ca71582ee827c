//! `kvnode chain verify`: every member's chain checked link by link and
//! replayed into the KV state the member must hold, then the members'
//! chains compared with one another.

use crate::api::{hex, ChainJson, DigestJson};
use crate::client::Client;
use crate::http::MAX_CHAIN_PAGE;
use crate::state::{replay_chain, Block};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::process::ExitCode;

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &Client,
    endpoint: &str,
    path: &str,
) -> Result<T, String> {
    let url = format!("http://{endpoint}{path}");
    let (resp, _) = client.once(&Method::GET, &url, &[], &Bytes::new()).await?;
    if resp.status != StatusCode::OK {
        return Err(format!("{url}: {} {}", resp.status, resp.error()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("{url}: bad answer: {e}"))
}

/// One member's chain up to the height its digest was taken at.
async fn fetch(client: &Client, endpoint: &str) -> Result<(DigestJson, Vec<Block>), String> {
    // The digest first: blocks up to its height never change afterwards,
    // so the chain fetched next is consistent with it however far the
    // member moves on meanwhile.
    let digest: DigestJson = get_json(client, endpoint, "/state/digest").await?;
    let mut chain = Vec::new();
    while (chain.len() as u64) < digest.height {
        let from = chain.len() as u64 + 1;
        let page: ChainJson = get_json(
            client,
            endpoint,
            &format!("/chain?from={from}&limit={MAX_CHAIN_PAGE}"),
        )
        .await?;
        if page.blocks.is_empty() {
            return Err(format!(
                "{endpoint}: chain ends at {} below its digest height {}",
                chain.len(),
                digest.height
            ));
        }
        for b in page.blocks.iter().take((digest.height - from + 1) as usize) {
            chain.push(
                Block::try_from(b).map_err(|e| format!("{endpoint}: block {}: {e}", b.height))?,
            );
        }
    }
    Ok((digest, chain))
}

/// Checks one member: links, hashes, and the state its chain derives.
fn check(endpoint: &str, digest: &DigestJson, chain: &[Block]) -> Result<(), String> {
    let replay = replay_chain(chain).map_err(|e| format!("{endpoint}: {e}"))?;
    let (height, head) = replay.head();
    if height != digest.height || hex(&head) != digest.head {
        return Err(format!(
            "{endpoint}: chain head {height}/{} differs from the member's {}/{}",
            hex(&head),
            digest.height,
            digest.head
        ));
    }
    if hex(&replay.kv_digest()) != digest.kv_sha256 || replay.len() as u64 != digest.keys {
        return Err(format!(
            "{endpoint}: the KV state the chain derives ({} keys) differs from the member's ({} keys)",
            replay.len(),
            digest.keys
        ));
    }
    Ok(())
}

/// Verifies every endpoint's member; exits 1 on any failure.
pub(crate) async fn verify(client: &Client) -> Result<ExitCode, String> {
    let mut chains: Vec<(String, Vec<Block>)> = Vec::new();
    let mut failures = 0;
    for ep in client.endpoints() {
        match fetch(client, ep).await {
            Ok((digest, chain)) => match check(ep, &digest, &chain) {
                Ok(()) => {
                    println!(
                        "{ep}: {} blocks, head {}, links ok, state ok ({} keys)",
                        digest.height,
                        digest.head.get(..16).unwrap_or(&digest.head),
                        digest.keys
                    );
                    chains.push((ep.clone(), chain));
                }
                Err(e) => {
                    failures += 1;
                    println!("FAIL {e}");
                }
            },
            Err(e) => {
                failures += 1;
                println!("FAIL {e}");
            }
        }
    }
    // Hash-linked chains agree up to a height if their blocks there do.
    for (i, (a, ca)) in chains.iter().enumerate() {
        for (b, cb) in &chains[i + 1..] {
            let common = ca.len().min(cb.len());
            if common == 0 {
                continue;
            }
            if ca[common - 1].hash != cb[common - 1].hash {
                failures += 1;
                println!("FAIL {a} and {b} hold different blocks at height {common}");
            }
        }
    }
    if failures > 0 {
        println!("chain verify: {failures} failure(s)");
        return Ok(ExitCode::FAILURE);
    }
    let heights: Vec<usize> = chains.iter().map(|(_, c)| c.len()).collect();
    println!(
        "chain verify: {} member(s) agree (heights {:?}; a lower one is a prefix)",
        chains.len(),
        heights
    );
    Ok(ExitCode::SUCCESS)
}
