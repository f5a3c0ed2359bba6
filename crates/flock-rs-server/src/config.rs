//! How a server is configured: the address it binds, the bearer tokens it accepts
//! and who each one is, and how many flushes it remembers.

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    num::NonZeroUsize,
};

use flock::AgentIdentity;

/// The port [`ServerConfig::default`] binds (Python Flock's `serve()` port).
pub const DEFAULT_PORT: u16 = 8344;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Sees everything and may run operator actions (manual flush). Every request
    /// has it when no token is configured.
    Operator,
    /// Sees what this identity may see, exactly as an agent with it would: every
    /// artifact, batch, join group, flush and failed run through its visibility.
    Identity(AgentIdentity),
}

/// A token was given twice, or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// An empty token would match a request that sends none.
    #[error("a bearer token must not be empty")]
    Empty,
    /// The same token for two identities.
    #[error("bearer token configured twice (for '{first}' and '{second}')")]
    Duplicate {
        /// Who the token was given to first.
        first: String,
        /// Who it was given to again.
        second: String,
    },
}

/// How a [`Server`](crate::Server) runs.
///
/// ```
/// use flock::AgentIdentity;
/// use flock_server::ServerConfig;
///
/// let config = ServerConfig::new()
///     .port(8344)
///     .token("s3cret-acme", AgentIdentity::new("acme-dashboard").with_tenant("acme"))?
///     .operator_token("s3cret-ops")?;
/// assert!(config.requires_tokens());
/// # Ok::<(), flock_server::InvalidToken>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServerConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) tokens: Vec<(String, Access)>,
    pub(crate) flush_history: NonZeroUsize,
    pub(crate) allow_open_public_bind: bool,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the tokens themselves.
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("tokens", &self.tokens.len())
            .field("flush_history", &self.flush_history)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            tokens: Vec::new(),
            flush_history: NonZeroUsize::new(1000).expect("1000 is not zero"),
            allow_open_public_bind: false,
        }
    }
}

impl ServerConfig {
    /// Binds `127.0.0.1:8344`, without tokens (every request is the
    /// [`Access::Operator`]), remembering the last 1,000 flushes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds another address. An address other than loopback needs tokens (or
    /// [`ServerConfig::allow_unauthenticated_public_bind`]).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Binds another port on the configured address (`0`: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Accepts `Authorization: Bearer <token>` for `identity`: its requests see
    /// what `identity` may see. Once any token is configured, a request without a
    /// valid one gets 401.
    ///
    /// # Errors
    /// [`InvalidToken`] for an empty or repeated token.
    pub fn token(
        self,
        token: impl Into<String>,
        identity: AgentIdentity,
    ) -> Result<Self, InvalidToken> {
        self.add(token.into(), Access::Identity(identity))
    }

    /// Accepts `token` for the [`Access::Operator`]: sees everything, may flush.
    ///
    /// # Errors
    /// [`InvalidToken`] for an empty or repeated token.
    pub fn operator_token(self, token: impl Into<String>) -> Result<Self, InvalidToken> {
        self.add(token.into(), Access::Operator)
    }

    /// How many recent flushes `GET /api/v1/flushes` and the dashboard's chart keep
    /// (default 1,000).
    pub fn flush_history(mut self, flushes: NonZeroUsize) -> Self {
        self.flush_history = flushes;
        self
    }

    /// Serves an address other than loopback without tokens: anyone who can reach
    /// it sees and drives everything. Off by default.
    pub fn allow_unauthenticated_public_bind(mut self) -> Self {
        self.allow_open_public_bind = true;
        self
    }

    /// The address to bind.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether requests need a token.
    pub fn requires_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn add(mut self, token: String, access: Access) -> Result<Self, InvalidToken> {
        if token.is_empty() {
            return Err(InvalidToken::Empty);
        }
        if let Some((_, first)) = self.tokens.iter().find(|(t, _)| *t == token) {
            return Err(InvalidToken::Duplicate {
                first: describe(first),
                second: describe(&access),
            });
        }
        self.tokens.push((token, access));
        Ok(self)
    }
}

fn describe(access: &Access) -> String {
    match access {
        Access::Operator => "operator".to_owned(),
        Access::Identity(identity) => identity.name.clone(),
    }
}
