//! Why the first connection failed. The `pulsar` crate replaces a refused CONNECT (a
//! missing or bad token) and a failed TLS handshake by one "fatal error when connecting to
//! the Pulsar server" (its `connection.rs`). So, after such a failure: over `pulsar://` we
//! send one CONNECT frame ourselves and read the broker's answer; over `pulsar+ssl://`
//! (no TLS stack of our own) [`CredentialsProvider`] tells whether the handshake got as
//! far as asking for credentials.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::pulsar::error::AuthenticationError;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Token;

/// `ServerError::AuthenticationError` in the Pulsar protocol.
pub(crate) const AUTHENTICATION_ERROR: u64 = 3;

/// The client's credentials (a token, or method `none` as the Java client sends without
/// one), noting when the client asks for them: that happens once TCP and TLS are up.
pub(crate) struct CredentialsProvider {
    token: Option<Token>,
    asked: Arc<AtomicBool>,
}

impl CredentialsProvider {
    /// The provider and the flag it sets when asked.
    pub(crate) fn new(token: Option<Token>) -> (Self, Arc<AtomicBool>) {
        let asked = Arc::new(AtomicBool::new(false));
        (
            CredentialsProvider {
                token,
                asked: asked.clone(),
            },
            asked,
        )
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// What `#[async_trait]` would generate (the macro is not a dependency here).
impl ::pulsar::authentication::Authentication for CredentialsProvider {
    fn auth_method_name(&self) -> String {
        if self.token.is_some() {
            "token"
        } else {
            "none"
        }
        .to_owned()
    }

    fn initialize<'a, 'b>(&'a mut self) -> BoxFuture<'b, Result<(), AuthenticationError>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async { Ok(()) })
    }

    fn auth_data<'a, 'b>(&'a mut self) -> BoxFuture<'b, Result<Vec<u8>, AuthenticationError>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.asked.store(true, Ordering::Relaxed);
        let data = self
            .token
            .as_ref()
            .map(|t| t.as_bytes().to_vec())
            .unwrap_or_default();
        Box::pin(async move { Ok(data) })
    }
}

/// What a broker answered to a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It accepted.
    Connected,
    /// It refused, with its error code and message.
    Refused {
        /// `ServerError` number.
        code: u64,
        /// The broker's message.
        message: String,
    },
    /// No Pulsar answer (closed, timed out, or another protocol such as TLS).
    NotPulsar,
}

/// Sends one CONNECT with `token` to the first host of a `pulsar://` URL and reads the
/// answer, within `wait`.
pub(crate) async fn connect_once(url: &str, token: Option<&Token>, wait: Duration) -> Answer {
    let authority = url.trim_start_matches("pulsar://").trim_end_matches('/');
    let first = authority.split(',').next().unwrap_or(authority);
    let address = if first.contains(':') {
        first.to_owned()
    } else {
        format!("{first}:6650")
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await.ok()?;
        stream.write_all(&connect_frame(token)).await.ok()?;
        let total = stream.read_u32().await.ok()?;
        // A CONNECTED or ERROR frame is small; anything large is not an answer to us.
        if total > 65_536 {
            return None;
        }
        let mut frame = vec![0; total as usize];
        stream.read_exact(&mut frame).await.ok()?;
        Some(frame)
    };
    match tokio::time::timeout(wait, exchange).await {
        Ok(Some(frame)) => parse_answer(&frame),
        _ => Answer::NotPulsar,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, tag: u64, bytes: &[u8]) {
    put_varint(out, tag << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A CONNECT frame: `BaseCommand { type: CONNECT, connect: CommandConnect { .. } }`,
/// protocol version 12 as the `pulsar` crate sends.
fn connect_frame(token: Option<&Token>) -> Vec<u8> {
    let mut connect = Vec::new();
    put_bytes(&mut connect, 1, b"conclave-probe");
    put_varint(&mut connect, 4 << 3);
    put_varint(&mut connect, 12);
    if let Some(t) = token {
        put_bytes(&mut connect, 5, b"token");
        put_bytes(&mut connect, 3, t.as_bytes());
    }
    let mut command = Vec::new();
    put_varint(&mut command, 1 << 3);
    put_varint(&mut command, 2);
    put_bytes(&mut command, 2, &connect);
    let size = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    let mut frame = Vec::with_capacity(command.len() + 8);
    frame.extend_from_slice(&size(command.len() + 4));
    frame.extend_from_slice(&size(command.len()));
    frame.extend_from_slice(&command);
    frame
}

/// A protobuf field: its tag, and its varint value or its bytes.
enum Field<'a> {
    Varint(u64, u64),
    Bytes(u64, &'a [u8]),
}

/// Reads the fields of one protobuf message; `None` on malformed input.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let tag = key >> 3;
        match key & 7 {
            0 => out.push(Field::Varint(tag, varint(&mut buf)?)),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                if len > buf.len() {
                    return None;
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                out.push(Field::Bytes(tag, bytes));
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

/// The answer in a frame without its total-size prefix: command size, then the command.
fn parse_answer(frame: &[u8]) -> Answer {
    let command = frame.get(..4).and_then(|s| {
        let size = u32::from_be_bytes(s.try_into().ok()?) as usize;
        frame.get(4..4 + size)
    });
    let Some(base) = command.and_then(fields) else {
        return Answer::NotPulsar;
    };
    let kind = base.iter().find_map(|f| match f {
        Field::Varint(1, v) => Some(*v),
        _ => None,
    });
    match kind {
        // CONNECTED
        Some(3) => Answer::Connected,
        // ERROR: CommandError { request_id = 1, error = 2, message = 3 } in field 14.
        Some(14) => {
            let error = base.iter().find_map(|f| match f {
                Field::Bytes(14, b) => fields(b),
                _ => None,
            });
            let Some(error) = error else {
                return Answer::NotPulsar;
            };
            let code = error.iter().find_map(|f| match f {
                Field::Varint(2, v) => Some(*v),
                _ => None,
            });
            let message = error.iter().find_map(|f| match f {
                Field::Bytes(3, b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            });
            Answer::Refused {
                code: code.unwrap_or(0),
                message: message.unwrap_or_default(),
            }
        }
        _ => Answer::NotPulsar,
    }
}

#[cfg(test)]
mod tests {
    use super::{connect_frame, parse_answer, put_bytes, put_varint, Answer};

    #[test]
    fn a_connect_frame_is_sized_and_carries_the_command() {
        let frame = connect_frame(None);
        let total = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let command = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        assert_eq!((total, command), (frame.len() - 4, frame.len() - 8));
        // type = CONNECT (2), then the CommandConnect message.
        assert_eq!(&frame[8..11], &[0x08, 0x02, 0x12]);
        assert!(frame.windows(14).any(|w| w == b"conclave-probe"));
    }

    fn answer(command: &[u8]) -> Answer {
        let mut frame = u32::try_from(command.len())
            .expect("small")
            .to_be_bytes()
            .to_vec();
        frame.extend_from_slice(command);
        parse_answer(&frame)
    }

    #[test]
    fn answers_are_read() {
        let mut error = Vec::new();
        put_varint(&mut error, 1 << 3);
        put_varint(&mut error, u64::MAX);
        put_varint(&mut error, 2 << 3);
        put_varint(&mut error, 3);
        put_bytes(&mut error, 3, b"Failed to authenticate");
        let mut command = Vec::new();
        put_varint(&mut command, 1 << 3);
        put_varint(&mut command, 14);
        put_bytes(&mut command, 14, &error);
        assert_eq!(
            answer(&command),
            Answer::Refused {
                code: 3,
                message: "Failed to authenticate".into()
            }
        );
        let mut connected = Vec::new();
        put_varint(&mut connected, 1 << 3);
        put_varint(&mut connected, 3);
        put_bytes(&mut connected, 3, b"\x0a\x034.0");
        assert_eq!(answer(&connected), Answer::Connected);
        // A TLS alert, a truncated frame, nothing.
        assert_eq!(
            parse_answer(b"\x15\x03\x03\x00\x02\x02\x50"),
            Answer::NotPulsar
        );
        assert_eq!(answer(&command[..command.len() - 3]), Answer::NotPulsar);
        assert_eq!(parse_answer(b""), Answer::NotPulsar);
    }
}
