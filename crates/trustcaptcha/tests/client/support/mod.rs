//! Real loopback servers for the client's tests: a results API that answers as it is told and
//! records what it received, a forward proxy, and listeners that misbehave at the TCP level.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

pub(crate) mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const API_KEY: &str = "ak_test_key_0123456789_do_not_log";

/// The results API documentation's sample result, for the id `07b01922-…`.
pub const SEED_RESULT: &str = r#"{"captchaId":"cc2e2d5e-d1ef-4a7f-a7bd-dec5b37df47a","verificationId":"07b01922-3faa-4667-a4a6-910a76cb8ab7","verificationPassed":true,"score":0.3,"decisionType":"STANDARD","decisionAction":"ALLOW","gatewayFailoverActive":false,"riskScoringEnabled":true,"minimalDataModeEnabled":false,"origin":"https://www.your-website.com/sub-page","ipAddress":"2a01:123:33bb:1a1a:0:0:0:1","countryCode":"DE","deviceFamily":"Other","operatingSystem":"Windows 10","browser":"Chrome 119.0.0","verificationStartedAt":"2026-05-03T13:30:05.941Z","verificationFinishedAt":"2026-05-03T13:30:08.214Z","resultExpiresAt":"2026-05-03T13:45:08.214Z","resultFirstFetchedAt":"2026-05-03T13:30:09.001Z","resultLastFetchedAt":"2026-05-03T13:30:09.001Z"}"#;

/// A token for `verification_id`, with extra JSON members spliced in.
pub fn token(verification_id: &str, extra: &str) -> String {
    let json = format!(r#"{{"verificationId":"{verification_id}"{extra}}}"#);
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path_and_query: String,
    pub headers: HeaderMap,
}

#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status: StatusCode::from_u16(status).expect("valid status"),
            body: body.into(),
            location: None,
        }
    }
}

#[derive(Clone, Default)]
struct ApiState {
    replies: Arc<HashMap<String, Reply>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

/// A results API on 127.0.0.1:0 that answers each verification id with its configured reply
/// (404 for ids it does not know) and records every request.
pub struct TestApi {
    pub addr: SocketAddr,
    state: ApiState,
}

impl TestApi {
    pub async fn start(replies: impl IntoIterator<Item = (&'static str, Reply)>) -> Self {
        let state = ApiState {
            replies: Arc::new(
                replies
                    .into_iter()
                    .map(|(id, reply)| (id.to_owned(), reply))
                    .collect(),
            ),
            requests: Arc::default(),
        };
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestApi { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

async fn answer(State(state): State<ApiState>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    state.requests.lock().expect("lock").push(Recorded {
        path_and_query: path_and_query.clone(),
        headers: request.headers().clone(),
    });
    let id = path_and_query
        .strip_prefix("/v2/verifications/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let Some(reply) = state.replies.get(id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = Response::new(Body::from(reply.body.clone()));
    *response.status_mut() = reply.status;
    if let Some(location) = &reply.location {
        response.headers_mut().insert(
            axum::http::header::LOCATION,
            HeaderValue::from_str(location).expect("location"),
        );
    }
    response
}

/// A plain-HTTP forward proxy on 127.0.0.1:0: it records each connection's request line and
/// relays the bytes to the origin named in it.
pub async fn start_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, Arc::clone(&log)));
        }
    });
    (addr, seen)
}

async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    log.lock().expect("lock").push(line.clone());
    let target = line.split(' ').nth(1).unwrap_or_default();
    let uri: axum::http::Uri = target.parse().map_err(std::io::Error::other)?;
    let authority = uri.authority().map(ToString::to_string).unwrap_or_default();
    let mut upstream = TcpStream::connect(authority).await?;
    upstream.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// A listener whose accept queue is full, so that further connects hang in SYN-SENT until the
/// client's connect timeout fires. Keep the returned value alive for the duration of the test.
pub fn start_full_backlog() -> (SocketAddr, Vec<std::net::TcpStream>, socket2::Socket) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    // Linux keeps backlog + 1 completed connections; fill them so the next SYN is dropped.
    let fillers = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).ok()
        })
        .collect();
    (addr, fillers, socket)
}

/// A listener that accepts connections and never answers.
pub async fn start_silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// A results API that answers its first connection (404) and then accepts connections without
/// ever answering: an API that was reachable and then stalls.
pub async fn answers_once_then_stalls() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        if let Ok((mut first, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = first.read(&mut request).await;
            let _ = first
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// An address on which nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
