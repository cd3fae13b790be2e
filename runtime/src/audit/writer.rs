//! Appending to the audit log: one JSON line per record, each written whole, made durable
//! as often as the [`FsyncPolicy`] says.
//!
//! One writer per file is assumed (the arbiter owns the log). The writer remembers the
//! file's length to undo a failed write, so a second writer would corrupt it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::reader::{AuditReader, ScanEntry, MAX_LINE_BYTES};
use super::record::{non_finite_field, AuditLineRef, AuditRecord};
use super::AuditError;
use crate::clock::{Clock, Timestamp};

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record: nothing acknowledged is ever lost.
    EveryRecord,
    /// On an append at least this long (on the injected clock) after the last fsync. A
    /// crash can lose the records of one interval; [`AuditWriter::sync`] from a timer
    /// bounds how long the last ones stay unsynced when appends stop.
    Interval(Duration),
    /// Never (tests and benchmarks); the OS writes back when it likes.
    Never,
}

impl FsyncPolicy {
    /// Whether an append at `now` must fsync, given the last fsync at `last_sync`.
    pub fn is_sync_due(&self, last_sync: Timestamp, now: Timestamp) -> bool {
        match self {
            FsyncPolicy::EveryRecord => true,
            // A clock set backwards would otherwise hold fsyncs back until it caught up
            // with `last_sync`, which could be hours.
            FsyncPolicy::Interval(every) => now < last_sync || now.since(last_sync) >= *every,
            FsyncPolicy::Never => false,
        }
    }
}

/// Appends records to an audit log file.
///
/// Each record is encoded into a reused buffer and written with one `write_all` of the
/// line and its newline, so a crash leaves at most one torn line, at the end, which the
/// next [`open`](Self::open) drops. Dropping the writer fsyncs records not yet synced
/// (unless the policy is [`FsyncPolicy::Never`]).
#[derive(Debug)]
pub struct AuditWriter {
    path: PathBuf,
    file: File,
    policy: FsyncPolicy,
    clock: Arc<dyn Clock>,
    next_seq: u64,
    /// The file's length after the last complete record: where a failed write is undone to.
    len: u64,
    last_sync: Timestamp,
    unsynced: bool,
    syncs: u64,
    recovered_torn_bytes: u64,
    /// Set after a failure that leaves the file's state unknown; appends then refuse.
    poisoned: bool,
    buf: Vec<u8>,
}

impl AuditWriter {
    /// Opens (creating it and its parent directories if needed) the log at `path` for
    /// appending.
    ///
    /// The existing file is scanned: numbering continues after its last line, and a torn
    /// tail left by a crash is truncated away (see
    /// [`recovered_torn_bytes`](Self::recovered_torn_bytes)) so the next record starts a
    /// line of its own. Corrupt lines in the middle are left as they are.
    ///
    /// # Errors
    /// [`AuditError::CreateDir`], [`AuditError::Open`], [`AuditError::Read`],
    /// [`AuditError::Truncate`], [`AuditError::Write`] or [`AuditError::Sync`] when the
    /// file system refuses.
    pub fn open(
        path: &Path,
        fsync: FsyncPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuditError> {
        let path_buf = path.to_path_buf();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).map_err(|source| AuditError::CreateDir {
                path: path_buf.clone(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let (file, created) = open_for_append(path).map_err(|source| AuditError::Open {
            path: path_buf.clone(),
            source,
        })?;
        if created && fsync != FsyncPolicy::Never {
            // A new file's directory entry is only durable once the directory is synced.
            sync_dir(dir.unwrap_or(Path::new("."))).map_err(|source| AuditError::Sync {
                path: path_buf.clone(),
                source,
            })?;
        }

        // Scan through the same handle, so the file scanned is the file appended to.
        let mut reader = AuditReader::from_reader(BufReader::new(&file), path);
        let mut max_seq = 0;
        let mut torn = None;
        for entry in reader.by_ref() {
            match entry? {
                ScanEntry::Line(line) => max_seq = max_seq.max(line.seq),
                ScanEntry::Corrupt(_) => {}
                ScanEntry::Torn(t) => torn = Some(t),
            }
        }
        // Corrupt lines still take their number, so `seq` stays the line number and
        // never repeats one a corrupt line may have held.
        let next_seq = max_seq.max(reader.line_count()) + 1;
        let ends_without_newline = reader.ends_without_newline();
        let len = reader.offset();
        drop(reader);

        let mut writer = AuditWriter {
            path: path_buf,
            file,
            policy: fsync,
            clock,
            next_seq,
            len,
            last_sync: Timestamp::EPOCH,
            unsynced: false,
            syncs: 0,
            recovered_torn_bytes: 0,
            poisoned: false,
            buf: Vec::new(),
        };
        if let Some(t) = torn {
            writer
                .file
                .set_len(t.offset)
                .map_err(|source| AuditError::Truncate {
                    path: writer.path.clone(),
                    offset: t.offset,
                    bytes: t.bytes,
                    source,
                })?;
            writer.recovered_torn_bytes = t.bytes;
            writer.unsynced = true;
        } else if ends_without_newline {
            // The last record is whole and only its newline is missing: keep the record
            // and end its line.
            writer
                .file
                .write_all(b"\n")
                .map_err(|source| AuditError::Write {
                    path: writer.path.clone(),
                    seq: next_seq - 1,
                    source,
                })?;
            writer.len += 1;
            writer.unsynced = true;
        }
        if writer.unsynced && fsync != FsyncPolicy::Never {
            // The repair must be on disk before new records land after it.
            writer.sync()?;
        }
        writer.last_sync = writer.clock.now();
        Ok(writer)
    }

    /// Appends `record` as the next line and returns its sequence number.
    ///
    /// # Errors
    /// - [`AuditError::NonFinite`] when the record holds NaN or an infinity, which JSON
    ///   cannot carry; nothing is written.
    /// - [`AuditError::Encode`] or [`AuditError::TooLarge`]: nothing is written.
    /// - [`AuditError::Write`]: the partial line is truncated away; if that fails too the
    ///   writer is poisoned.
    /// - [`AuditError::Sync`]: the line was written but may not be durable, and the writer
    ///   is poisoned (after a failed fsync the kernel may have dropped the dirty pages, so
    ///   a later successful fsync would prove nothing).
    /// - [`AuditError::Poisoned`] after either failure above: reopen the log.
    pub fn append(&mut self, record: &AuditRecord) -> Result<u64, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let seq = self.next_seq;
        if let Some(field) = non_finite_field(record) {
            return Err(AuditError::NonFinite {
                path: self.path.clone(),
                seq,
                field,
            });
        }
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &AuditLineRef { seq, record }).map_err(|source| {
            AuditError::Encode {
                path: self.path.clone(),
                seq,
                source,
            }
        })?;
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(AuditError::TooLarge {
                path: self.path.clone(),
                seq,
                bytes: self.buf.len(),
                max: MAX_LINE_BYTES,
            });
        }
        self.buf.push(b'\n');
        if let Err(source) = self.file.write_all(&self.buf) {
            // Part of the line may be in the file; cut it off so the next record does
            // not continue it.
            if self.file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(AuditError::Write {
                path: self.path.clone(),
                seq,
                source,
            });
        }
        self.len += self.buf.len() as u64;
        self.next_seq += 1;
        self.unsynced = true;
        let now = self.clock.now();
        if self.policy.is_sync_due(self.last_sync, now) {
            self.sync()?;
        }
        Ok(seq)
    }

    /// Forces appended records to disk now, whatever the policy.
    ///
    /// # Errors
    /// [`AuditError::Sync`] when the fsync fails (the writer is then poisoned), or
    /// [`AuditError::Poisoned`] after an earlier failure.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        // The file's size is data here: `sync_data` makes it durable too.
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(AuditError::Sync {
                path: self.path.clone(),
                source,
            });
        }
        self.syncs += 1;
        self.unsynced = false;
        self.last_sync = self.clock.now();
        Ok(())
    }

    /// Bytes of a torn last line dropped by [`open`](Self::open); 0 when the file was whole.
    pub fn recovered_torn_bytes(&self) -> u64 {
        self.recovered_torn_bytes
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How many fsyncs this writer has done (for tests and benchmarks).
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        // Records are already in the file (each append writes straight to it); this only
        // makes the last ones durable on an orderly shutdown. Drop cannot report an error,
        // and a failure here loses no more than the policy allowed anyway.
        if self.unsynced && !self.poisoned && self.policy != FsyncPolicy::Never {
            let _ = self.file.sync_data();
        }
    }
}

/// Opens `path` for reading and appending; `true` when it was created.
fn open_for_append(path: &Path) -> io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    match options.clone().create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((options.open(path)?, false)),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Only Unix can open a directory to fsync it.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        name: &'static str,
        policy: FsyncPolicy,
        last_ms: i64,
        now_ms: i64,
        due: bool,
    }

    const SECOND: Duration = Duration::from_secs(1);

    const CASES: &[Case] = &[
        Case {
            name: "every record",
            policy: FsyncPolicy::EveryRecord,
            last_ms: 0,
            now_ms: 0,
            due: true,
        },
        Case {
            name: "never",
            policy: FsyncPolicy::Never,
            last_ms: 0,
            now_ms: 1_000_000,
            due: false,
        },
        Case {
            name: "interval not yet",
            policy: FsyncPolicy::Interval(SECOND),
            last_ms: 5_000,
            now_ms: 5_999,
            due: false,
        },
        Case {
            name: "interval exactly",
            policy: FsyncPolicy::Interval(SECOND),
            last_ms: 5_000,
            now_ms: 6_000,
            due: true,
        },
        Case {
            name: "interval past",
            policy: FsyncPolicy::Interval(SECOND),
            last_ms: 5_000,
            now_ms: 60_000,
            due: true,
        },
        Case {
            name: "clock went back",
            policy: FsyncPolicy::Interval(SECOND),
            last_ms: 5_000,
            now_ms: 4_000,
            due: true,
        },
        Case {
            name: "zero interval",
            policy: FsyncPolicy::Interval(Duration::ZERO),
            last_ms: 5_000,
            now_ms: 5_000,
            due: true,
        },
    ];

    #[test]
    fn fsync_is_due_per_policy() {
        for c in CASES {
            let due = c.policy.is_sync_due(
                Timestamp::from_millis(c.last_ms),
                Timestamp::from_millis(c.now_ms),
            );
            assert_eq!(due, c.due, "case `{}`", c.name);
        }
    }
}
