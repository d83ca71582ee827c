//! The client commands: `put`, `get`, `delete`, `cas`, `status` and
//! `member`.

use crate::api::{
    CasRequest, CasResponse, MemberRequest, MembersResponse, StatusJson, CLIENT_ID_HEADER,
    SEQ_HEADER,
};
use crate::client::Client;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::io::Write as _;
use std::process::ExitCode;

/// A client with its session: every retry of one command repeats it.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) id: u64,
    pub(crate) seq: u64,
}

impl Session {
    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (CLIENT_ID_HEADER, self.id.to_string()),
            (SEQ_HEADER, self.seq.to_string()),
        ]
    }
}

/// `/kv/{key}` with the key percent-encoded (every byte but the unreserved
/// ones), so any key survives the URL.
pub(crate) fn kv_path(key: &str) -> String {
    let mut path = String::from("/kv/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path
}

fn failed(resp: &crate::client::Response) -> String {
    format!("{}: {}", resp.status, resp.error())
}

pub(crate) async fn put(s: &Session, key: &str, value: String) -> Result<ExitCode, String> {
    let resp = s
        .client
        .call(Method::PUT, &kv_path(key), &s.headers(), Bytes::from(value))
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn delete(s: &Session, key: &str) -> Result<ExitCode, String> {
    let resp = s
        .client
        .call(Method::DELETE, &kv_path(key), &s.headers(), Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn get(s: &Session, key: &str, stale: bool) -> Result<ExitCode, String> {
    let mut path = kv_path(key);
    if stale {
        path.push_str("?stale=true");
    }
    let resp = s
        .client
        .call(Method::GET, &path, &[], Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    match resp.status {
        StatusCode::OK => {
            let mut out = std::io::stdout().lock();
            out.write_all(&resp.body)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        StatusCode::NOT_FOUND => {
            eprintln!("key not found: {key}");
            Ok(ExitCode::FAILURE)
        }
        _ => Err(failed(&resp)),
    }
}

pub(crate) async fn cas(
    s: &Session,
    key: &str,
    expected: Option<String>,
    new: String,
) -> Result<ExitCode, String> {
    let body = serde_json::to_vec(&CasRequest { expected, new }).map_err(|e| e.to_string())?;
    let resp = s
        .client
        .call(
            Method::POST,
            &format!("{}/cas", kv_path(key)),
            &s.headers(),
            Bytes::from(body),
        )
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    let answer: CasResponse =
        serde_json::from_slice(&resp.body).map_err(|e| format!("bad answer: {e}"))?;
    let found = answer.found.as_deref().unwrap_or("(unset)");
    if answer.swapped {
        println!("swapped (was {found})");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("not swapped: {key} holds {found}");
        Ok(ExitCode::FAILURE)
    }
}

/// A membership change at the leader; prints the membership after it.
pub(crate) async fn member(client: &Client, req: &MemberRequest) -> Result<ExitCode, String> {
    let body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    let resp = client
        .call(Method::POST, "/members", &[], Bytes::from(body))
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    let answer: MembersResponse =
        serde_json::from_slice(&resp.body).map_err(|e| format!("bad answer: {e}"))?;
    println!(
        "OK: voters {:?}, learners {:?}",
        answer.voters, answer.learners
    );
    Ok(ExitCode::SUCCESS)
}

/// Hands leadership to `to` (admin) and waits until it leads.
pub(crate) async fn transfer(client: &Client, to: u64) -> Result<ExitCode, String> {
    let body = serde_json::to_vec(&serde_json::json!({ "to": to })).map_err(|e| e.to_string())?;
    let resp = client
        .call(Method::POST, "/leader/transfer", &[], Bytes::from(body))
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    println!("OK: node {to} leads");
    Ok(ExitCode::SUCCESS)
}

/// Every member's status, one line each; fails if any member is unreachable.
pub(crate) async fn status(client: &Client) -> Result<ExitCode, String> {
    println!(
        "{:>3}  {:<21} {:<13} {:>6} {:>9} {:>10} {:>10} {:>8}  head",
        "id", "endpoint", "role", "leader", "ballot", "committed", "applied", "height"
    );
    let mut unreachable = 0;
    for ep in client.endpoints() {
        match fetch_status(client, ep).await {
            Ok(st) => println!(
                "{:>3}  {:<21} {:<13} {:>6} {:>9} {:>10} {:>10} {:>8}  {}",
                st.id,
                ep,
                st.role,
                st.leader.map_or("-".into(), |l| l.to_string()),
                st.ballot,
                st.committed,
                st.applied,
                st.height,
                st.head.get(..16).unwrap_or(&st.head),
            ),
            Err(e) => {
                unreachable += 1;
                println!("{:>3}  {:<21} unreachable: {e}", "?", ep);
            }
        }
    }
    Ok(if unreachable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One member's `/status`, without failing over to another.
pub(crate) async fn fetch_status(client: &Client, endpoint: &str) -> Result<StatusJson, String> {
    let url = client.url(endpoint, "/status");
    let (resp, _) = client.once(&Method::GET, &url, &[], &Bytes::new()).await?;
    if resp.status != StatusCode::OK {
        return Err(failed(&resp));
    }
    serde_json::from_slice(&resp.body).map_err(|e| format!("bad status from {endpoint}: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_escaped_in_paths() {
        assert_eq!(super::kv_path("a-b_c.d~1"), "/kv/a-b_c.d~1");
        assert_eq!(super::kv_path("a b/ü"), "/kv/a%20b%2F%C3%BC");
    }
}
