//! A local OpenAI-compatible chat-completions server for tests and offline runs
//! (feature `llm-mock`): a real HTTP server on `127.0.0.1` whose answers a function
//! computes from each request.
//!
//! ```no_run
//! use flock_engines::llm::mock::{MockChatServer, MockReply};
//! use serde_json::json;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let server = MockChatServer::start(|request| {
//!     MockReply::json(json!({"count": request.inputs().len()}))
//! })
//! .await?;
//! // Point an engine at it: .base_url(server.base_url())
//! assert_eq!(server.request_count(), 0);
//! # Ok(())
//! # }
//! ```

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// One request the server received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The JSON body.
    pub body: Value,
    /// Whether an `Authorization: Bearer …` header came with it (the key itself is
    /// not kept).
    pub has_bearer: bool,
}

impl ChatRequest {
    /// The requested model.
    pub fn model(&self) -> Option<&str> {
        self.body.get("model").and_then(Value::as_str)
    }

    /// The JSON schema of `response_format`.
    pub fn schema(&self) -> Option<&Value> {
        self.body.pointer("/response_format/json_schema/schema")
    }

    /// The text of the first message with this role.
    pub fn message(&self, role: &str) -> Option<&str> {
        self.body
            .get("messages")?
            .as_array()?
            .iter()
            .find(|m| m.get("role").and_then(Value::as_str) == Some(role))?
            .get("content")?
            .as_str()
    }

    /// The input items the LLM engine sent (the user message's `inputs`), each
    /// `{"type": ..., "payload": ...}` or `{"group": [...]}`; empty if there are none.
    pub fn inputs(&self) -> Vec<Value> {
        self.message("user")
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|v| v.get("inputs").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// The payloads of the single-artifact input items, in order.
    pub fn payloads(&self) -> Vec<Value> {
        self.inputs()
            .into_iter()
            .filter_map(|mut item| item.get_mut("payload").map(Value::take))
            .collect()
    }
}

/// What the server answers to one request.
#[derive(Debug, Clone)]
pub struct MockReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Option<Duration>,
}

impl MockReply {
    /// A chat completion whose message content is `value` as JSON text.
    pub fn json(value: Value) -> Self {
        Self::content(value.to_string())
    }

    /// A chat completion whose message content is `content` (which need not be JSON:
    /// for testing malformed replies). Usage counts one token per four bytes.
    pub fn content(content: impl Into<String>) -> Self {
        let content = content.into();
        let completion_tokens = content.len().div_ceil(4);
        Self::completion(json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": "mock",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": completion_tokens,
                "total_tokens": completion_tokens,
            },
        }))
    }

    /// A 200 answer with this chat-completion body as is.
    pub fn completion(body: Value) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    /// An error answer with an OpenAI-style error body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"error": {"message": format!("mock status {status}"), "type": "mock"}})
                .to_string(),
            delay: None,
        }
    }

    /// Adds a response header (e.g. `retry-after`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits before answering (to make a client time out).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets the usage the completion reports (only for [`MockReply::content`] and
    /// [`MockReply::json`] answers).
    pub fn usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        if let Ok(mut body) = serde_json::from_str::<Value>(&self.body)
            && body.get("usage").is_some()
        {
            body["usage"] = json!({
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            });
            self.body = body.to_string();
        }
        self
    }
}

type Respond = dyn Fn(&ChatRequest) -> MockReply + Send + Sync;

struct Shared {
    respond: Box<Respond>,
    requests: Mutex<Vec<ChatRequest>>,
}

/// A chat-completions server on `127.0.0.1`, answering `POST /v1/chat/completions`
/// (and `/chat/completions`) with what its function returns. Stops when dropped.
pub struct MockChatServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl fmt::Debug for MockChatServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockChatServer")
            .field("addr", &self.addr)
            .field("requests", &self.request_count())
            .finish()
    }
}

impl MockChatServer {
    /// Starts a server on a free port of `127.0.0.1`; `respond` computes the answer to
    /// every request.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start<F>(respond: F) -> io::Result<Self>
    where
        F: Fn(&ChatRequest) -> MockReply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            respond: Box::new(respond),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(handle))
            .route("/chat/completions", post(handle))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "mock chat server stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The base URL to configure engines with: `http://127.0.0.1:{port}/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests it received.
    pub fn request_count(&self) -> usize {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for MockChatServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "request body is not JSON").into_response();
    };
    let request = ChatRequest {
        body,
        has_bearer: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ")),
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());
    let reply = (shared.respond)(&request);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
