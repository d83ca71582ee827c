//! The HTTP/JSON client API (axum).
//!
//! | method and path | what |
//! | --- | --- |
//! | `PUT /kv/{key}` | set `key` to the request body |
//! | `GET /kv/{key}` | the value (raw body); linearizable, `?stale=true` reads locally |
//! | `DELETE /kv/{key}` | remove `key` |
//! | `POST /kv/{key}/cas` | `{"expected": "a" or null, "new": "b"}` → `{"swapped", "found"}` |
//! | `GET /status` | role, leader, ballot, committed, applied, chain height and head |
//! | `GET /chain?from=H&limit=L` | blocks, hashes in hex; a member that installed a snapshot holds none at or below `base_height` |
//! | `GET /state/digest` | the KV map's SHA-256 at the current height |
//! | `POST /members` | `{"op": "add"\|"promote"\|"remove", "id": N, "peer", "http"}` → `{"voters", "learners"}` |
//! | `GET /metrics` | Prometheus text |
//!
//! Writes and linearizable reads at a follower answer `307` to the leader's
//! address (`503` while no leader is known); so do membership changes. A
//! change the protocol refuses is a `409` whose `reason` names why. Writes may carry a session,
//! `x-client-id` + `x-seq` headers (or `client` + `seq` query parameters);
//! retrying with the same pair is applied at most once. Every error is a
//! JSON object with an `error` field; nothing a client sends can panic the
//! node.

use crate::api::{hex, BlockJson};
use crate::api::{
    CasRequest, CasResponse, ChainJson, DigestJson, ErrorJson, MemberOp, MemberRequest,
    MembersResponse, StatusJson, WriteResponse, CLIENT_ID_HEADER, SEQ_HEADER,
};
use crate::auth::{AdminToken, Denied};
use crate::config::Directory;
use crate::driver::{ClientOp, Inbox, Input, Reply, CLIENT_WAIT};
use crate::http_server::ClientCert;
use crate::metrics::Metrics;
use crate::state::MemberAddress;
use crate::state::{Cas, Op, Outcome, WINDOW};
use crate::storage::RedbStorage;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use paxos_core::proto::ConfChangeType;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Longest key, in bytes.
pub(crate) const MAX_KEY: usize = 1024;
/// Largest value (and request body), in bytes.
pub(crate) const MAX_VALUE: usize = 1 << 20;
/// Most blocks in one `/chain` page.
pub(crate) const MAX_CHAIN_PAGE: usize = 1000;
/// Most bytes of stored blocks in one `/chain` page (one block always goes).
pub(crate) const MAX_CHAIN_PAGE_BYTES: usize = 4 << 20;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    pub(crate) id: u64,
    pub(crate) inbox: Inbox,
    pub(crate) view: Arc<Mutex<StatusJson>>,
    pub(crate) members: Directory,
    pub(crate) metrics: Arc<Metrics>,
    /// The credential administrative endpoints require.
    pub(crate) admin: AdminToken,
    /// How long a request that needs the leader waits for one while this
    /// member knows none (six election timeouts).
    pub(crate) leader_wait: Duration,
    /// How long a transfer may take before it is reported failed (two
    /// election timeouts: the leader gives it up within one).
    pub(crate) transfer_wait: Duration,
    /// The store, for the reads served beside the driver.
    pub(crate) store: RedbStorage,
    /// `https` when the API serves TLS (redirects say so), else `http`.
    pub(crate) scheme: &'static str,
}

/// How often a request waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(5);

/// The API's routes. Every request gets the state by one reference count
/// (cloning `Api` itself would copy the admin token and bump each handle).
pub(crate) fn router(api: Api) -> Router {
    let api = Arc::new(api);
    Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/kv/{key}/cas", post(cas_key))
        .route("/status", get(status))
        .route("/chain", get(chain))
        .route("/state/digest", get(digest))
        .route("/members", post(members))
        .route("/leader/transfer", post(transfer))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_VALUE))
        .with_state(api)
}

/// An error answer: a status, a JSON body, maybe a redirect.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorJson,
    location: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorJson {
                error: error.into(),
                leader: None,
                leader_http: None,
                reason: None,
            },
            location: None,
        }
    }

    fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    fn unavailable(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }
}

impl Api {
    /// Refuses a request without the admin credential (the bearer token,
    /// or a client certificate from `--client-ca`): 401 when it has none,
    /// 403 when it is wrong or administration is off.
    fn admin(
        &self,
        headers: &HeaderMap,
        cert: Option<Extension<ClientCert>>,
    ) -> Result<(), ApiError> {
        if cert.is_some_and(|Extension(ClientCert(c))| c) {
            return Ok(());
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        self.admin.check(given).map_err(|d| {
            self.metrics.admin_refused.fetch_add(1, Relaxed);
            match d {
                Denied::Missing => ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "an admin bearer token is required",
                ),
                Denied::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, why),
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, loc);
        }
        resp
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("body larger than {MAX_VALUE} bytes")
        } else {
            r.body_text()
        };
        ApiError::new(status, error)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

/// Query parameters of `/kv/...`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KvQuery {
    stale: Option<bool>,
    client: Option<u64>,
    seq: Option<u64>,
}

fn key_of(path: Result<Path<String>, PathRejection>) -> Result<Bytes, ApiError> {
    let Path(key) = path?;
    if key.len() > MAX_KEY {
        return Err(ApiError::bad_request(format!(
            "key of {} bytes is longer than {MAX_KEY}",
            key.len()
        )));
    }
    Ok(Bytes::from(key))
}

/// The client's session from headers or query; both halves or neither.
fn session_of(headers: &HeaderMap, q: &KvQuery) -> Result<Option<(u64, u64)>, ApiError> {
    let header = |name: &str| -> Result<Option<u64>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| ApiError::bad_request(format!("{name} must be an integer")))
            })
            .transpose()
    };
    let client = header(CLIENT_ID_HEADER)?.or(q.client);
    let seq = header(SEQ_HEADER)?.or(q.seq);
    match (client, seq) {
        (None, None) => Ok(None),
        (Some(c), Some(s)) if c > 0 && s > 0 => Ok(Some((c, s))),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "client id and sequence must be positive",
        )),
        _ => Err(ApiError::bad_request(format!(
            "{CLIENT_ID_HEADER} and {SEQ_HEADER} go together"
        ))),
    }
}

fn query_of(q: Result<Query<KvQuery>, QueryRejection>) -> Result<KvQuery, ApiError> {
    Ok(q?.0)
}

impl Api {
    /// Hands `op` to the driver and waits for its answer.
    async fn ask(&self, op: ClientOp) -> Result<Reply, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.metrics.driver_queue.fetch_add(1, Relaxed);
        if let Err(e) = self.inbox.try_send(Input::Client(op, tx)) {
            self.metrics.driver_queue.fetch_sub(1, Relaxed);
            return Err(match e {
                TrySendError::Full(_) => {
                    self.metrics.client_overloads.fetch_add(1, Relaxed);
                    ApiError::unavailable("node overloaded; retry")
                }
                TrySendError::Disconnected(_) => ApiError::unavailable("node is stopping"),
            });
        }
        // The driver drops a waiter after CLIENT_WAIT; this is a backstop.
        match tokio::time::timeout(CLIENT_WAIT + CLIENT_WAIT / 2, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) | Err(_) => Err(ApiError::unavailable(format!(
                "no decision in time; retry with the same {CLIENT_ID_HEADER} and {SEQ_HEADER}"
            ))),
        }
    }

    /// `ask` for an operation the leader serves, riding out an election:
    /// while this member knows no leader (or the leader refuses it for a
    /// moment: `Reply::Retry`), it waits up to `leader_wait` and asks
    /// again, so the client gets an answer or a redirect instead of an
    /// error. Only a refusal is retried, which proposed nothing (a write
    /// proposed here keeps the session it was proposed under, so it
    /// applies at most once); an overload (`Reply::Busy`) is answered at
    /// once.
    async fn ask_leader(&self, mut op: ClientOp) -> Result<Reply, ApiError> {
        let deadline = Instant::now() + self.leader_wait;
        loop {
            let reply = self.ask(op.clone()).await?;
            let retry = match &reply {
                Reply::NotLeader { leader, session } => {
                    if let (ClientOp::Write { session: s, .. }, Some(proposed)) = (&mut op, session)
                    {
                        *s = Some(*proposed);
                    }
                    self.leader_elsewhere(*leader).is_none()
                }
                Reply::Retry(_) => true,
                _ => false,
            };
            if !retry || Instant::now() >= deadline {
                return Ok(reply);
            }
            self.metrics.leader_waits.fetch_add(1, Relaxed);
            self.wait_for_leader(deadline, |l| l.is_some()).await;
        }
    }

    /// Waits until the leader the driver publishes (every turn) satisfies
    /// `done`, or until `deadline`; whether it did. It always waits one
    /// poll first: the view may still show what led the caller here.
    async fn wait_for_leader(&self, deadline: Instant, done: impl Fn(Option<u64>) -> bool) -> bool {
        loop {
            tokio::time::sleep(LEADER_POLL).await;
            if done(self.known_leader()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Runs `read` on a read transaction of the store, on a blocking thread:
    /// beside the driver, never on it.
    async fn read_store<T: Send + 'static>(
        &self,
        read: impl FnOnce(&RedbStorage) -> Result<T, paxos_core::StorageError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || read(&store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the store: {e}"),
            )),
            Err(_) => Err(ApiError::unavailable("the read was cancelled")),
        }
    }

    /// An administrative request's JSON body, once its credential passed;
    /// `shape` says what the body must look like.
    fn admin_json<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        cert: Option<Extension<ClientCert>>,
        body: Result<Bytes, BytesRejection>,
        shape: &str,
    ) -> Result<T, ApiError> {
        self.admin(headers, cert)?;
        serde_json::from_slice(&body?)
            .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
    }

    /// The leader the driver last reported following (or being).
    fn known_leader(&self) -> Option<u64> {
        self.view.lock().ok().and_then(|v| v.leader)
    }

    /// `leader`, if it is another member whose address is known.
    fn leader_elsewhere(&self, leader: Option<u64>) -> Option<(u64, String)> {
        leader
            .filter(|l| *l != self.id)
            .and_then(|l| Some((l, self.http_of(l)?)))
    }

    fn http_of(&self, id: u64) -> Option<String> {
        self.members.get(id).map(|m| m.http.to_string())
    }

    /// The answer for "not the leader": a redirect to the leader's address
    /// carrying the request's session, or 503 while no leader is known.
    fn not_leader(&self, leader: Option<u64>, session: Option<(u64, u64)>, uri: &Uri) -> ApiError {
        let Some((leader, http)) = self.leader_elsewhere(leader) else {
            return ApiError::unavailable("no leader known; retry shortly");
        };
        self.metrics.redirects.fetch_add(1, Relaxed);
        let mut location = format!("{}://{http}{}", self.scheme, uri.path());
        let mut params: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| session.is_none() || !(p.starts_with("client=") || p.starts_with("seq=")))
            .map(str::to_owned)
            .collect();
        if let Some((c, s)) = session {
            params.push(format!("client={c}"));
            params.push(format!("seq={s}"));
        }
        if !params.is_empty() {
            location.push('?');
            location.push_str(&params.join("&"));
        }
        ApiError {
            status: StatusCode::TEMPORARY_REDIRECT,
            body: ErrorJson {
                error: format!("not the leader; node {leader} leads"),
                leader: Some(leader),
                leader_http: Some(http),
                reason: None,
            },
            location: Some(location),
        }
    }

    /// Maps the driver's answer to a write.
    fn write_reply(&self, reply: Reply, uri: &Uri, cas: bool) -> ApiResult {
        match reply {
            Reply::Applied {
                outcome: Outcome::Done,
                client,
                seq,
            } if !cas => Ok(Json(WriteResponse {
                ok: true,
                client,
                seq,
            })
            .into_response()),
            Reply::Applied {
                outcome: Outcome::Cas { swapped, found },
                ..
            } if cas => Ok(Json(CasResponse {
                swapped,
                found: found.map(|v| String::from_utf8_lossy(&v).into_owned()),
            })
            .into_response()),
            // Not 4xx: a 4xx means "not applied, and never will be", and
            // this write may have been.
            Reply::Applied {
                outcome: Outcome::Forgotten,
                seq,
                ..
            } => {
                let mut e = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the outcome of sequence {seq} is no longer known: this client's \
                         session has moved more than {WINDOW} sequences past it"
                    ),
                );
                e.body.reason = Some("outcome_unknown".to_owned());
                Err(e)
            }
            Reply::Applied { seq, .. } => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("sequence {seq} was used for another operation"),
            )),
            other => Err(self.failure(other, uri)),
        }
    }

    fn failure(&self, reply: Reply, uri: &Uri) -> ApiError {
        match reply {
            Reply::NotLeader { leader, session } => self.not_leader(leader, session, uri),
            Reply::Busy(why) | Reply::Retry(why) => ApiError::unavailable(why),
            Reply::Refused { reason, error } => {
                let mut e = ApiError::new(StatusCode::CONFLICT, error);
                e.body.reason = Some(reason.to_owned());
                e
            }
            Reply::OutcomeUnknown(why) => {
                let mut e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why);
                e.body.reason = Some("outcome_unknown".to_owned());
                e
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer"),
        }
    }
}

async fn put_key(
    State(api): State<Arc<Api>>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<KvQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_of(path)?;
    let q = query_of(query)?;
    let value = body?;
    let session = session_of(&headers, &q)?;
    let reply = api
        .ask_leader(ClientOp::Write {
            session,
            op: Op::put(key, value),
        })
        .await?;
    api.write_reply(reply, &uri, false)
}

async fn delete_key(
    State(api): State<Arc<Api>>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<KvQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let key = key_of(path)?;
    let q = query_of(query)?;
    let session = session_of(&headers, &q)?;
    let reply = api
        .ask_leader(ClientOp::Write {
            session,
            op: Op::Delete(key),
        })
        .await?;
    api.write_reply(reply, &uri, false)
}

async fn cas_key(
    State(api): State<Arc<Api>>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<KvQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let key = key_of(path)?;
    let q = query_of(query)?;
    let body = body?;
    let req: CasRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be {{\"expected\": string or null, \"new\": string}}: {e}"
        ))
    })?;
    let session = session_of(&headers, &q)?;
    let op = Op::Cas(Cas {
        key,
        expected: req.expected.map(Bytes::from),
        new: Bytes::from(req.new),
    });
    let reply = api.ask_leader(ClientOp::Write { session, op }).await?;
    api.write_reply(reply, &uri, true)
}

async fn get_key(
    State(api): State<Arc<Api>>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<KvQuery>, QueryRejection>,
) -> ApiResult {
    let key = key_of(path)?;
    let q = query_of(query)?;
    let stale = q.stale.unwrap_or(false);
    let read = ClientOp::Read { key, stale };
    let reply = if stale {
        api.ask(read).await?
    } else {
        api.ask_leader(read).await?
    };
    match reply {
        Reply::Value(Some(v)) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], v).into_response())
        }
        Reply::Value(None) => Err(ApiError::new(StatusCode::NOT_FOUND, "key not found")),
        other => Err(api.failure(other, &uri)),
    }
}

async fn status(State(api): State<Arc<Api>>) -> Json<StatusJson> {
    let mut view = match api.view.lock() {
        Ok(v) => v.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    view.leader_http = view.leader.and_then(|l| api.http_of(l));
    Json(view)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

async fn chain(
    State(api): State<Arc<Api>>,
    query: Result<Query<ChainQuery>, QueryRejection>,
) -> ApiResult {
    let Query(q) = query?;
    let (from, limit) = (
        q.from.unwrap_or(1).max(1),
        q.limit.unwrap_or(100).min(MAX_CHAIN_PAGE),
    );
    let page = api
        .read_store(move |s| s.chain_page(from, limit, MAX_CHAIN_PAGE_BYTES))
        .await?;
    Ok(Json(ChainJson {
        height: page.height,
        base_height: page.base.height,
        base_hash: hex(&page.base.hash),
        blocks: page.blocks.iter().map(BlockJson::from).collect(),
    })
    .into_response())
}

async fn digest(State(api): State<Arc<Api>>) -> ApiResult {
    let d = api.read_store(|s| s.digest()).await?;
    Ok(Json(DigestJson {
        applied: d.height,
        height: d.height,
        head: hex(&d.head),
        keys: d.keys,
        kv_sha256: hex(&d.kv),
    })
    .into_response())
}

/// `POST /leader/transfer` with `{"to": N}`.
#[derive(Debug, Deserialize)]
struct TransferRequest {
    to: u64,
}

/// Hands leadership over (admin): answers once `to` leads, or `503` if it
/// does not within two election timeouts (the old leader then resumes).
async fn transfer(
    State(api): State<Arc<Api>>,
    uri: Uri,
    headers: HeaderMap,
    cert: Option<Extension<ClientCert>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: TransferRequest = api.admin_json(&headers, cert, body, r#"{"to": N}"#)?;
    match api.ask_leader(ClientOp::Transfer { to: req.to }).await? {
        Reply::TransferStarted => {}
        other => return Err(api.failure(other, &uri)),
    }
    let deadline = Instant::now() + api.transfer_wait;
    if api.wait_for_leader(deadline, |l| l == Some(req.to)).await {
        return Ok(Json(serde_json::json!({ "ok": true, "leader": req.to })).into_response());
    }
    Err(ApiError::unavailable(format!(
        "node {} did not take over in time; the leader resumes",
        req.to
    )))
}

async fn members(
    State(api): State<Arc<Api>>,
    uri: Uri,
    headers: HeaderMap,
    cert: Option<Extension<ClientCert>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: MemberRequest = api.admin_json(
        &headers,
        cert,
        body,
        r#"{"op": "add"|"promote"|"remove", "id": N, "peer": "host:port", "http": "host:port"} (peer and http for add only)"#,
    )?;
    if req.id == 0 {
        return Err(ApiError::bad_request("node id 0 is reserved"));
    }
    let address = match (req.op, &req.peer, &req.http) {
        (MemberOp::Add, Some(peer), Some(http)) => {
            // Checked here: every member will dial these (looked up on
            // the runtime: a name can take a while).
            for a in [peer, http] {
                let found = tokio::net::lookup_host(a.trim())
                    .await
                    .ok()
                    .and_then(|mut i| i.next());
                if found.is_none() {
                    return Err(ApiError::bad_request(format!(
                        "`{}` is not an address that resolves",
                        a.trim()
                    )));
                }
            }
            Some(MemberAddress {
                id: req.id,
                peer: peer.trim().to_owned(),
                http: http.trim().to_owned(),
            })
        }
        (MemberOp::Add, _, _) => {
            return Err(ApiError::bad_request(
                "add needs the node's peer and http addresses",
            ))
        }
        (_, None, None) => None,
        _ => return Err(ApiError::bad_request("peer and http are for add only")),
    };
    let change = match req.op {
        MemberOp::Add => ConfChangeType::AddLearner,
        MemberOp::Promote => ConfChangeType::PromoteLearner,
        MemberOp::Remove => ConfChangeType::RemoveNode,
    };
    let op = ClientOp::Member {
        change,
        id: req.id,
        address,
    };
    match api.ask_leader(op).await? {
        Reply::MemberChanged { voters, learners } => Ok(Json(MembersResponse {
            ok: true,
            voters,
            learners,
        })
        .into_response()),
        other => Err(api.failure(other, &uri)),
    }
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let view = match api.view.lock() {
        Ok(v) => v.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let leader = if view.role == "Leader" { 1.0 } else { 0.0 };
    let text = api.metrics.render(&[
        ("is_leader", "1 while this node leads", leader),
        (
            "committed_slot",
            "every slot up to it is known chosen",
            view.committed as f64,
        ),
        (
            "applied_slot",
            "last slot applied to the state machine",
            view.applied as f64,
        ),
        (
            "last_slot",
            "highest slot held in the log",
            view.last_slot as f64,
        ),
        ("chain_height", "blocks in the chain", view.height as f64),
    ]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
