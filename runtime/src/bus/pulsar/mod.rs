//! The Apache Pulsar transport: telemetry from a shared subscription, acknowledged only
//! after the decisions it fed are audited; actions to an actions topic keyed by target;
//! bad telemetry to a dead-letter topic with the reason; overrides from a control topic.
//!
//! The `pulsar` crate reconnects by itself, but has open reports of consumers that stay
//! silent after a broker restart and producers whose sends never complete; every consumer
//! and producer here sits behind a watchdog that notices a stalled stream or send and
//! recreates it (see `consumer.rs` and `producer.rs`).
//!
//! Authentication is a token (`spec.pulsar.auth`, or `CONCLAVE_PULSAR_TOKEN_FILE`) read
//! when connecting; `pulsar+ssl://` trusts the public web roots plus `spec.pulsar.tls`'s CA
//! file (see `auth.rs`).

mod acks;
mod auth;
mod budget;
mod consumer;
mod control;
mod dead_letters;
mod probe;
mod producer;
mod publisher;
mod source;
mod trace_context;
mod url;

use std::path::PathBuf;
use std::time::Duration;

use ::pulsar::error::ConnectionError;
use ::pulsar::proto::ServerError;
use ::pulsar::{ConnectionRetryOptions, OperationRetryOptions, Pulsar, TokioExecutor};

pub use acks::{AckLedger, Delivery};
pub use auth::Token;
pub use budget::{spawn_fleet_budget, BudgetStats, FleetBudget, HOLDER_SUBSCRIPTION};
pub use control::{spawn_control, spawn_control_publisher, ControlEvent, ControlStats};
pub use dead_letters::PulsarDeadLetters;
pub use producer::PulsarActionSink;
pub use publisher::{Outgoing, Publisher, Received, TopicReader};
pub use source::{open_sources, Acker, ConsumerStats, PulsarSources, SourceControl};
pub use trace_context::TRACEPARENT;
pub use url::check_url;

pub use crate::policy::transport::{
    looks_like_token, PulsarAuth, PulsarBudget, PulsarSettings, PulsarTls, SubscriptionType,
    TopicSelection, DEFAULT_ACTIONS_TOPIC, DEFAULT_BUDGET_GRANTS_TOPIC,
    DEFAULT_BUDGET_REPORTS_TOPIC, DEFAULT_CONTROL_TOPIC, DEFAULT_DEAD_LETTER_TOPIC,
    DEFAULT_TELEMETRY_TOPIC, TLS_CA_FILE_ENV, TOKEN_FILE_ENV,
};

/// Message property with the producer's event id (de-duplication across redeliveries and
/// producer retries); without it the broker's message id is the event id.
pub const EVENT_ID_PROPERTY: &str = "conclave-event-id";
/// Dead-letter properties: why, the error text, the topic it came from, its event id.
pub const DEAD_LETTER_REASON: &str = "conclave-dead-letter-reason";
/// See [`DEAD_LETTER_REASON`].
pub const DEAD_LETTER_ERROR: &str = "conclave-dead-letter-error";
/// See [`DEAD_LETTER_REASON`].
pub const DEAD_LETTER_ORIGIN: &str = "conclave-origin-topic";
/// Property naming the instance that published a control message: it applied the override
/// already, and skips it when it comes back.
pub const ORIGIN_INSTANCE: &str = "conclave-origin-instance";

/// Pulsar transport failures.
#[derive(Debug, thiserror::Error)]
pub enum PulsarError {
    /// The service URL is not usable.
    #[error("invalid Pulsar URL `{url}`: {reason}")]
    Url {
        /// As given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No answer from the broker in time.
    #[error("cannot reach the Pulsar broker at {url} within {timeout:?}: {detail}")]
    Unreachable {
        /// The service URL.
        url: String,
        /// How long we waited.
        timeout: Duration,
        /// What the client said last.
        detail: String,
    },
    /// Subscribing or creating a producer failed (missing topic, no permission, ...).
    #[error("cannot {what} `{topic}`: {detail}")]
    Topic {
        /// `subscribe to` or `publish to`.
        what: &'static str,
        /// The topic.
        topic: String,
        /// The broker's answer.
        detail: String,
    },
    /// The token file cannot be read.
    #[error("cannot read the Pulsar token in {from}")]
    TokenUnreadable {
        /// Where the token was to come from.
        from: PulsarAuth,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file or variable holds no usable token (its content is never shown).
    #[error("the Pulsar token in {from} {problem}")]
    TokenInvalid {
        /// Where the token was to come from.
        from: PulsarAuth,
        /// What is wrong, e.g. `is empty`.
        problem: &'static str,
    },
    /// The broker wants a token and none is configured.
    #[error("the Pulsar broker at {url} requires authentication and no token is configured (set `spec.pulsar.auth` in the policy or CONCLAVE_PULSAR_TOKEN_FILE): {detail}")]
    AuthenticationRequired {
        /// The service URL.
        url: String,
        /// What the broker said.
        detail: String,
    },
    /// The broker did not accept the token.
    #[error("the Pulsar broker at {url} refused the token in {from}: {detail}")]
    AuthenticationRefused {
        /// The service URL.
        url: String,
        /// Where the token came from.
        from: PulsarAuth,
        /// What the broker said, with the token masked should it appear.
        detail: String,
    },
    /// The CA file cannot be read.
    #[error("cannot read the CA file `{}`", path.display())]
    CaUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not a PEM certificate.
    #[error("the CA file `{}` holds no PEM certificate (expected `-----BEGIN CERTIFICATE-----`)", path.display())]
    CaInvalid {
        /// The file.
        path: PathBuf,
    },
    /// TLS is configured but the URL is plain `pulsar://`.
    #[error("TLS settings are given (`spec.pulsar.tls` or CONCLAVE_PULSAR_TLS_CA_FILE) but `{url}` does not use TLS; use a `pulsar+ssl://` URL")]
    TlsWithoutSsl {
        /// The service URL.
        url: String,
    },
    /// The TLS handshake failed (an untrusted certificate, a host name it does not list).
    #[error("TLS with the Pulsar broker at {url} failed: {detail}")]
    Tls {
        /// The service URL.
        url: String,
        /// The client's reason.
        detail: String,
    },
}

/// A connected client plus the policy's topics.
#[derive(Clone)]
pub struct PulsarTransport {
    client: Pulsar<TokioExecutor>,
    url: String,
    settings: PulsarSettings,
    /// This instance's name on subscriptions and producers (visible in broker stats).
    name: String,
}

impl std::fmt::Debug for PulsarTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarTransport")
            .field("url", &self.url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PulsarTransport {
    /// Connects to the broker at `url` (checked first), waiting at most `timeout`, with the
    /// token and TLS settings of `settings` (the token is read now).
    ///
    /// # Errors
    /// [`PulsarError::Url`] for a malformed URL; [`PulsarError::TlsWithoutSsl`], the token
    /// and CA file errors before connecting; [`PulsarError::AuthenticationRequired`] /
    /// [`PulsarError::AuthenticationRefused`] when the broker refuses;
    /// [`PulsarError::Tls`] when the handshake fails; [`PulsarError::Unreachable`] when the
    /// broker does not answer in time.
    pub async fn connect(
        url: &str,
        settings: PulsarSettings,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, PulsarError> {
        check_url(url)?;
        auth::check_tls_url(url, &settings)?;
        let token = match &settings.auth {
            Some(a) => Some(Token::load(a, |v| std::env::var_os(v))?),
            None => None,
        };
        let mut builder = Pulsar::builder(url, TokioExecutor)
            .with_connection_retry_options(ConnectionRetryOptions {
                min_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                // Reconnection after a broker restart must outlast the restart; the
                // watchdogs recreate what stays stuck beyond that.
                max_retries: 30,
                connection_timeout: Duration::from_secs(5),
                keep_alive: Duration::from_secs(5),
                ..ConnectionRetryOptions::default()
            })
            .with_operation_retry_options(OperationRetryOptions {
                operation_timeout: settings.operation_timeout,
                retry_delay: Duration::from_millis(500),
                max_retries: Some(10),
            });
        if let Some(tls) = &settings.tls {
            if let Some(ca) = &tls.ca_file {
                builder = builder.with_certificate_chain(auth::read_ca(ca)?);
            }
            builder = builder
                .with_allow_insecure_connection(tls.allow_insecure)
                .with_tls_hostname_verification_enabled(tls.hostname_verification);
        }
        let tls = url.starts_with("pulsar+ssl://");
        // Over TLS the provider also tells a failed handshake from a refused token.
        let mut asked = None;
        if token.is_some() || tls {
            let (provider, flag) = probe::CredentialsProvider::new(token.clone());
            builder = builder.with_auth_provider(Box::new(provider));
            asked = Some(flag);
        }
        let client = match tokio::time::timeout(timeout, builder.build()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let asked = asked.is_some_and(|a| a.load(std::sync::atomic::Ordering::Relaxed));
                return Err(Failure {
                    url,
                    settings: &settings,
                    token: token.as_ref(),
                    timeout,
                    asked,
                }
                .diagnose(&e)
                .await);
            }
            Err(_) => {
                return Err(PulsarError::Unreachable {
                    url: url.to_owned(),
                    timeout,
                    detail: "no answer".to_owned(),
                })
            }
        };
        Ok(PulsarTransport {
            client,
            url: url.to_owned(),
            settings,
            name: name.to_owned(),
        })
    }

    /// The policy's Pulsar settings.
    pub fn settings(&self) -> &PulsarSettings {
        &self.settings
    }

    /// This instance's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn client(&self) -> &Pulsar<TokioExecutor> {
        &self.client
    }
}

/// The broker's own words.
fn said(message: &str) -> String {
    format!("the broker says `{message}`")
}

/// A failed first connection, and what is known about it.
struct Failure<'a> {
    url: &'a str,
    settings: &'a PulsarSettings,
    token: Option<&'a Token>,
    timeout: Duration,
    /// Whether the client got as far as asking for credentials (TCP and TLS were up).
    asked: bool,
}

impl Failure<'_> {
    /// What the failure means: refused credentials, a failed TLS handshake, or a broker
    /// that did not answer. Every text from outside is masked should it hold the token.
    async fn diagnose(&self, e: &::pulsar::Error) -> PulsarError {
        let url = self.url.to_owned();
        let mask = |text: &str| match self.token {
            Some(t) => t.redact(text),
            None => text.to_owned(),
        };
        let unreachable = |detail: String| PulsarError::Unreachable {
            url: self.url.to_owned(),
            timeout: self.timeout,
            detail,
        };
        let ::pulsar::Error::Connection(c) = e else {
            return unreachable(mask(&e.to_string()));
        };
        match c {
            ConnectionError::PulsarError(Some(ServerError::AuthenticationError), message) => {
                self.refused(said(&mask(message.as_deref().unwrap_or(""))))
            }
            // Retried until the end and still refused or timed out: the broker is not there.
            ConnectionError::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut
                ) =>
            {
                unreachable(mask(&e.to_string()))
            }
            // The crate's "fatal error when connecting" hides the broker's answer.
            ConnectionError::Io(_) if self.url.starts_with("pulsar+ssl://") => {
                if self.asked {
                    self.refused("the broker closed the connection after the credentials were sent (the client gives no reason over TLS)".into())
                } else {
                    PulsarError::Tls {
                        url,
                        detail: "the handshake failed (the client gives no reason); trust the CA that signed the broker's certificate with `spec.pulsar.tls.ca_file` or CONCLAVE_PULSAR_TLS_CA_FILE, and name a host the certificate lists".into(),
                    }
                }
            }
            ConnectionError::Io(_) => {
                match probe::connect_once(self.url, self.token, Duration::from_secs(5)).await {
                    probe::Answer::Refused { code, message } if code == probe::AUTHENTICATION_ERROR => {
                        self.refused(said(&mask(&message)))
                    }
                    probe::Answer::Refused { message, .. } => unreachable(mask(&message)),
                    probe::Answer::NotPulsar => unreachable(
                        "the server does not answer in the Pulsar protocol (a TLS port? then use `pulsar+ssl://`)".into(),
                    ),
                    probe::Answer::Connected => unreachable(mask(&e.to_string())),
                }
            }
            _ => unreachable(mask(&e.to_string())),
        }
    }

    fn refused(&self, detail: String) -> PulsarError {
        match &self.settings.auth {
            Some(from) => PulsarError::AuthenticationRefused {
                url: self.url.to_owned(),
                from: from.clone(),
                detail,
            },
            None => PulsarError::AuthenticationRequired {
                url: self.url.to_owned(),
                detail,
            },
        }
    }
}

/// Waits for a consumer or producer being created on `topic`, at most the operation
/// timeout: a refusal or no answer is [`PulsarError::Topic`] (`what`: `subscribe to` or
/// `publish to`), so a missing topic or a stuck broker is reported, never waited on.
pub(crate) async fn created<T>(
    transport: &PulsarTransport,
    what: &'static str,
    topic: &str,
    create: impl std::future::Future<Output = Result<T, ::pulsar::Error>>,
) -> Result<T, PulsarError> {
    let timeout = transport.settings().operation_timeout;
    let detail = match tokio::time::timeout(timeout, create).await {
        Ok(Ok(made)) => return Ok(made),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {timeout:?}"),
    };
    Err(PulsarError::Topic {
        what,
        topic: topic.to_owned(),
        detail,
    })
}

/// How every producer here publishes keyed messages.
pub(crate) fn keyed_producer_options() -> ::pulsar::ProducerOptions {
    ::pulsar::ProducerOptions {
        // One message per send: Key_Shared consumers get keys one message at a time, and a
        // batch would mix keys.
        batch_size: None,
        // Wait for room instead of failing with `SlowDown` when many sends are in flight.
        block_queue_if_full: true,
        // On a partitioned topic, each key to one partition (its messages stay in order);
        // the client's default sends round-robin whatever the key.
        routing_policy: Some(::pulsar::routing_policy::RoutingPolicy::RoundRobin),
        ..::pulsar::ProducerOptions::default()
    }
}

/// Exponential backoff for recreating consumers and producers: 200 ms doubling to 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
}
