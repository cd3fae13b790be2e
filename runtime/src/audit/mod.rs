//! The decision audit log: every decision and every human override, appended as one JSON
//! line each, so anyone can later see what was decided and why.
//!
//! The file is append-only JSON Lines. Each line is an [`AuditLine`]: a sequence number
//! (the line's number, continuing across restarts) and an [`AuditRecord`]. The
//! [`AuditWriter`] writes each line whole and fsyncs per [`FsyncPolicy`]. A crash can leave
//! at most a torn last line, which [`AuditReader`] reports and the next
//! [`AuditWriter::open`] truncates. [`explain_decision`] and [`tail_lines`] turn the log
//! into plain words.
//!
//! ```text
//! {"seq":1,"record":{"type":"decision","id":"d-p1","at":"2026-11-29T08:00:00.000Z",..}}
//! {"seq":2,"record":{"type":"override","id":"o-1","kind":{"approve":{"decision":"d-p1"}},..}}
//! ```

mod explain;
mod gap;
mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use explain::{explain_decision, format_tail_line, tail_lines, TailFilter, TailMatcher};
pub use gap::{AgentGap, Disagreement, GapReport};
pub use reader::{
    AuditFollower, AuditReader, AuditScan, CorruptLine, ScanEntry, TornLine, MAX_LINE_BYTES,
};
pub use record::{AuditLine, AuditRecord};
pub use writer::{AuditWriter, FsyncPolicy};

/// What can go wrong reading or writing the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log's directory could not be created.
    #[error("audit log `{}`: cannot create directory `{}`", path.display(), dir.display())]
    CreateDir {
        /// The log.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error("audit log `{}`: cannot open", path.display())]
    Open {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("audit log `{}`: cannot read at byte {offset}", path.display())]
    Read {
        /// The log.
        path: PathBuf,
        /// Where reading failed.
        offset: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The torn tail left by a crash could not be truncated away.
    #[error(
        "audit log `{}`: cannot drop the torn last line ({bytes} bytes at byte {offset})",
        path.display()
    )]
    Truncate {
        /// The log.
        path: PathBuf,
        /// Where the torn line starts.
        offset: u64,
        /// Its length.
        bytes: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing a record failed.
    #[error("audit log `{}`: cannot write record {seq}", path.display())]
    Write {
        /// The log.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An fsync failed.
    #[error("audit log `{}`: cannot fsync", path.display())]
    Sync {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded as JSON.
    #[error("audit log `{}`: cannot encode record {seq} as JSON", path.display())]
    Encode {
        /// The log.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A record holds NaN or an infinity, which JSON cannot carry.
    #[error(
        "audit log `{}`: record {seq}: `{field}`: expected a finite number, found NaN or an infinity",
        path.display()
    )]
    NonFinite {
        /// The log.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// The field, e.g. `proposals[0].rationale[2].value`.
        field: String,
    },
    /// A record is longer than the log allows.
    #[error(
        "audit log `{}`: record {seq}: expected at most {max} bytes of JSON, found {bytes}",
        path.display()
    )]
    TooLarge {
        /// The log.
        path: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// Its encoded length.
        bytes: usize,
        /// The limit, [`MAX_LINE_BYTES`].
        max: usize,
    },
    /// An earlier write or fsync failure left the file in an unknown state.
    #[error(
        "audit log `{}`: writer stopped after an earlier write or fsync failure; reopen the log",
        path.display()
    )]
    Poisoned {
        /// The log.
        path: PathBuf,
    },
    /// A followed log got shorter than what was already read.
    #[error(
        "audit log `{}`: expected at least {offset} bytes (already read), found {len}; was it truncated or replaced?",
        path.display()
    )]
    Shrunk {
        /// The log.
        path: PathBuf,
        /// Bytes already read.
        offset: u64,
        /// Its length now.
        len: u64,
    },
}
