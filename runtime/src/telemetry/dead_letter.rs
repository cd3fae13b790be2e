//! Where telemetry that cannot be used goes, with the reason: the [`DeadLetterSink`]
//! trait, an in-memory sink for tests and simulations, and a JSON Lines file.
//!
//! A sink never fails its caller. Ingress keeps running whatever the sink does, so a
//! sink that cannot store a letter counts the failure instead of returning it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::decode::DecodeError;
use crate::clock::Timestamp;

/// Why a message was dead-lettered: a bounded set, used as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadLetterReason {
    /// Larger than the configured limit; not parsed.
    OversizedPayload,
    /// Not JSON at all, or a JSON syntax error.
    MalformedJson,
    /// JSON, but not the shape of any telemetry: unknown `type`, missing or unknown
    /// fields, wrong JSON types.
    WrongShape,
    /// `schema_version` missing, or one this build does not read.
    UnsupportedVersion,
    /// A value outside its domain: non-finite or negative numbers, an error rate outside
    /// `[0, 1]`, p50 above p99, empty or overlong names.
    InvalidValue,
    /// `ts` too far in the future or the past of the receive time.
    TimestampOutOfRange,
    /// An agent panicked while handling the message.
    AgentPanicked,
    /// An agent did not finish handling the message within its heartbeat deadline.
    AgentHung,
}

impl DeadLetterReason {
    /// Every reason, in label order, for pre-registering counters.
    pub const ALL: [DeadLetterReason; 8] = [
        DeadLetterReason::OversizedPayload,
        DeadLetterReason::MalformedJson,
        DeadLetterReason::WrongShape,
        DeadLetterReason::UnsupportedVersion,
        DeadLetterReason::InvalidValue,
        DeadLetterReason::TimestampOutOfRange,
        DeadLetterReason::AgentPanicked,
        DeadLetterReason::AgentHung,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::OversizedPayload => "oversized_payload",
            DeadLetterReason::MalformedJson => "malformed_json",
            DeadLetterReason::WrongShape => "wrong_shape",
            DeadLetterReason::UnsupportedVersion => "unsupported_version",
            DeadLetterReason::InvalidValue => "invalid_value",
            DeadLetterReason::TimestampOutOfRange => "timestamp_out_of_range",
            DeadLetterReason::AgentPanicked => "agent_panicked",
            DeadLetterReason::AgentHung => "agent_hung",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// When it was dead-lettered.
    pub at: Timestamp,
    /// Topic it came from.
    pub topic: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// The error, as text.
    pub error: String,
    /// The payload, unchanged.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The dead letter for a payload the decoder rejected: the error's reason and its
    /// message (which never quotes the payload).
    pub fn from_decode_error(
        at: Timestamp,
        topic: &str,
        error: &DecodeError,
        payload: &[u8],
    ) -> Self {
        DeadLetter {
            at,
            topic: topic.to_owned(),
            reason: error.reason(),
            error: error.to_string(),
            payload: payload.to_vec(),
        }
    }
}

/// Receives dead letters. Shared by every ingress partition.
pub trait DeadLetterSink: Send + Sync + std::fmt::Debug {
    /// Stores one dead letter; never fails the caller (a sink that cannot store counts it).
    fn send(&self, letter: DeadLetter);
}

/// Keeps dead letters in memory (tests, simulations).
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
}

impl MemoryDeadLetters {
    /// Every dead letter so far.
    pub fn letters(&self) -> Vec<DeadLetter> {
        // A panic elsewhere while holding the lock cannot leave a half-pushed `Vec`, so a
        // poisoned lock still guards whole letters.
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn send(&self, letter: DeadLetter) {
        self.letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(letter);
    }
}

/// Appends dead letters to a JSON Lines file, one object per line:
///
/// ```text
/// {"at":"2026-11-29T08:00:00.000Z","topic":"metrics","reason":"malformed_json","error":"…","payload":"{\"type\":"}
/// ```
///
/// `payload` holds the payload as text when it is valid UTF-8; otherwise the line has
/// `payload_base64` (standard alphabet, padded) instead. Lines are buffered: call
/// [`JsonlDeadLetters::flush`] to push them to the file (dropping the sink flushes too).
/// Several ingress tasks share one sink, so writes go through a mutex; a line is written
/// whole or, if the file fails, counted in [`JsonlDeadLetters::write_errors`].
#[derive(Debug)]
pub struct JsonlDeadLetters {
    path: PathBuf,
    out: Mutex<BufWriter<File>>,
    write_errors: AtomicU64,
}

impl JsonlDeadLetters {
    /// Opens `path` for appending, creating the file if it does not exist.
    ///
    /// # Errors
    /// The I/O error from opening the file (a missing directory, no permission).
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(JsonlDeadLetters {
            path,
            out: Mutex::new(BufWriter::new(file)),
            write_errors: AtomicU64::new(0),
        })
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes buffered lines to the file.
    ///
    /// # Errors
    /// The I/O error from writing; it is also counted in
    /// [`JsonlDeadLetters::write_errors`].
    pub fn flush(&self) -> io::Result<()> {
        let result = self.lock().flush();
        if result.is_err() {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// How many letters (or flushes) failed to reach the file so far.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BufWriter<File>> {
        // A panic while holding the lock can at worst leave a partial line in the buffer;
        // losing every later letter would be worse.
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeadLetterSink for JsonlDeadLetters {
    fn send(&self, letter: DeadLetter) {
        // Encode outside the lock so ingress tasks only queue for the copy into the buffer.
        let written = match jsonl_line(&letter) {
            Ok(line) => self.lock().write_all(&line).is_ok(),
            Err(_) => false,
        };
        if !written {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One line of the JSON Lines file, newline included.
fn jsonl_line(letter: &DeadLetter) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Line<'a> {
        at: Timestamp,
        topic: &'a str,
        reason: &'static str,
        error: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_base64: Option<String>,
    }

    let text = std::str::from_utf8(&letter.payload).ok();
    let line = Line {
        at: letter.at,
        topic: &letter.topic,
        reason: letter.reason.as_str(),
        error: &letter.error,
        payload: text,
        payload_base64: text.is_none().then(|| base64(&letter.payload)),
    };
    let mut out = serde_json::to_vec(&line)?;
    out.push(b'\n');
    Ok(out)
}

/// Standard base64 (RFC 4648 §4) with padding; small enough not to need a crate.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        // A chunk of n bytes carries n + 1 sextets; the rest of the 4 are padding.
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (group >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_test_vectors() {
        // RFC 4648 §10.
        const CASES: &[(&str, &str)] = &[
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for &(input, expected) in CASES {
            assert_eq!(base64(input.as_bytes()), expected, "input {input:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x80]), "//4AgA==");
    }

    #[test]
    fn reason_labels_are_distinct_snake_case() {
        let labels: std::collections::BTreeSet<_> =
            DeadLetterReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), DeadLetterReason::ALL.len());
        for label in labels {
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "label {label}"
            );
        }
    }
}
