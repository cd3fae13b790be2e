//! Reading the audit log back: a full scan that survives damage, and a follower for
//! `tail --follow`.
//!
//! Damage is reported, never fatal. A last line without its newline that does not parse
//! is the torn tail of a crashed write. A complete line that does not parse is corrupt:
//! it is reported with its line number and every line after it is still read. Lines are
//! read one at a time and none is held past [`MAX_LINE_BYTES`], so memory stays bounded
//! whatever the file holds.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::AuditLine;
use super::AuditError;

/// The longest line the log holds, newline excluded.
///
/// The writer refuses longer records, so a longer line is damage. Without a limit, a file
/// whose newlines were lost would be read into memory whole. A decision with a few
/// proposals is a few kilobytes; this leaves room for a thousand times that.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The torn tail of a write that did not finish: a last line with no newline that does
/// not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornLine {
    /// Its line number, from 1.
    pub line_no: u64,
    /// The byte offset where it starts.
    pub offset: u64,
    /// Its length in bytes.
    pub bytes: u64,
}

/// A complete line (it has its newline) that is not a valid audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptLine {
    /// Its line number, from 1.
    pub line_no: u64,
    /// The byte offset where it starts.
    pub offset: u64,
    /// Why it does not parse (serde_json's text, or that it is too long).
    pub message: String,
}

/// Everything a full read of the log found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditScan {
    /// The good lines, in file order.
    pub lines: Vec<AuditLine>,
    /// The torn tail, if the last write did not finish.
    pub torn: Option<TornLine>,
    /// Complete lines that do not parse, in file order.
    pub corrupt: Vec<CorruptLine>,
    /// Lines read, good, corrupt or blank; the torn tail is not counted.
    pub line_count: u64,
    /// The byte offset just past the last line read (where the torn tail starts, if any):
    /// where an [`AuditFollower`] picks up.
    pub end_offset: u64,
}

/// One thing a scan finds, in file order.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every entry is a line, and entries are moved out one at a time; boxing \
              would add an allocation per line"
)]
pub enum ScanEntry {
    /// A good line.
    Line(AuditLine),
    /// A complete line that does not parse.
    Corrupt(CorruptLine),
    /// The torn tail; always the last entry.
    Torn(TornLine),
}

/// Reads an audit log line by line, as an iterator of [`ScanEntry`].
///
/// Blank lines are skipped (they are counted, so line numbers match the file). After an
/// `Err` the iterator ends.
#[derive(Debug)]
pub struct AuditReader<R = BufReader<File>> {
    path: PathBuf,
    reader: R,
    offset: u64,
    line_count: u64,
    buf: Vec<u8>,
    ends_without_newline: bool,
    done: bool,
}

impl AuditReader<BufReader<File>> {
    /// Opens the log at `path` for reading from its start.
    ///
    /// # Errors
    /// [`AuditError::Open`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let file = File::open(path).map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(AuditReader::from_reader(BufReader::new(file), path))
    }

    /// Reads the whole log at `path`.
    ///
    /// A torn tail and corrupt lines are reported in the scan, not as errors.
    ///
    /// # Errors
    /// [`AuditError::Open`] when the file cannot be opened, [`AuditError::Read`] when
    /// reading fails.
    pub fn read_all(path: &Path) -> Result<AuditScan, AuditError> {
        AuditReader::open(path)?.into_scan()
    }
}

impl<R: BufRead> AuditReader<R> {
    /// Reads a log from `reader`, positioned at the log's start; `path` names it in errors.
    pub fn from_reader(reader: R, path: impl Into<PathBuf>) -> Self {
        AuditReader {
            path: path.into(),
            reader,
            offset: 0,
            line_count: 0,
            buf: Vec::new(),
            ends_without_newline: false,
            done: false,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines consumed so far, good, corrupt or blank; a torn tail is not counted.
    pub fn line_count(&self) -> u64 {
        self.line_count
    }

    /// Whether the last line read was good but had no newline (a write that stopped just
    /// before it). The writer adds the newline, so the next record is not glued to it.
    pub(super) fn ends_without_newline(&self) -> bool {
        self.ends_without_newline
    }

    /// Reads every remaining entry into an [`AuditScan`].
    ///
    /// # Errors
    /// [`AuditError::Read`] when reading fails.
    pub fn into_scan(mut self) -> Result<AuditScan, AuditError> {
        let mut scan = AuditScan::default();
        for entry in self.by_ref() {
            match entry? {
                ScanEntry::Line(line) => scan.lines.push(line),
                ScanEntry::Corrupt(c) => scan.corrupt.push(c),
                ScanEntry::Torn(t) => scan.torn = Some(t),
            }
        }
        scan.line_count = self.line_count;
        scan.end_offset = scan.torn.as_ref().map_or(self.offset, |t| t.offset);
        Ok(scan)
    }

    fn next_entry(&mut self) -> Result<Option<ScanEntry>, AuditError> {
        loop {
            let start = self.offset;
            let raw = next_raw_line(&mut self.reader, &mut self.buf, MAX_LINE_BYTES).map_err(
                |source| AuditError::Read {
                    path: self.path.clone(),
                    offset: start,
                    source,
                },
            )?;
            let Some(raw) = raw else { return Ok(None) };
            let line_no = self.line_count + 1;
            match classify(&self.buf, &raw) {
                Parsed::Blank if raw.terminated => {
                    self.offset += raw.consumed;
                    self.line_count = line_no;
                }
                Parsed::Good(line) => {
                    self.offset += raw.consumed;
                    self.line_count = line_no;
                    self.ends_without_newline = !raw.terminated;
                    return Ok(Some(ScanEntry::Line(line)));
                }
                Parsed::Bad(message) if raw.terminated => {
                    self.offset += raw.consumed;
                    self.line_count = line_no;
                    return Ok(Some(ScanEntry::Corrupt(CorruptLine {
                        line_no,
                        offset: start,
                        message,
                    })));
                }
                // Whitespace with no newline is torn too: appending after it would glue
                // the next record onto a line that is not one.
                Parsed::Blank | Parsed::Bad(_) => {
                    // The torn tail is not consumed: `offset` stays where the writer
                    // truncates to and a follower picks up.
                    self.done = true;
                    return Ok(Some(ScanEntry::Torn(TornLine {
                        line_no,
                        offset: start,
                        bytes: raw.consumed,
                    })));
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for AuditReader<R> {
    type Item = Result<ScanEntry, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Follows a growing log, `tail --follow` style: each [`poll`](Self::poll) returns the
/// lines completed since the last one.
///
/// A line still being written stays unread until its newline arrives. It is read again
/// from the file rather than kept in memory, so when a restarted writer truncates a torn
/// tail and appends over it, the follower reads the new bytes, not the stale ones.
#[derive(Debug)]
pub struct AuditFollower {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
    line_count: u64,
    buf: Vec<u8>,
    // Set after accepting a good last line with no newline: a restarted writer then adds
    // just the newline, which ends that line rather than making a blank one.
    newline_owed: bool,
    corrupt: Vec<CorruptLine>,
}

impl AuditFollower {
    /// Follows the log at `path` from byte `from_offset`, which must be the start of a
    /// line (0, or a scan's [`end_offset`](AuditScan::end_offset)).
    ///
    /// The file is opened on the first poll. Line numbers in [`CorruptLine`]s count from
    /// `from_offset` as line 1; use [`after_scan`](Self::after_scan) for file line numbers.
    pub fn new(path: impl Into<PathBuf>, from_offset: u64) -> Self {
        AuditFollower {
            path: path.into(),
            file: None,
            offset: from_offset,
            line_count: 0,
            buf: Vec::new(),
            newline_owed: false,
            corrupt: Vec::new(),
        }
    }

    /// Follows the log at `path` from where `scan` of it ended, with file line numbers.
    pub fn after_scan(path: impl Into<PathBuf>, scan: &AuditScan) -> Self {
        let mut follower = AuditFollower::new(path, scan.end_offset);
        follower.line_count = scan.line_count;
        follower
    }

    /// The byte offset of the first line not yet returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Corrupt lines skipped since the last call, in file order.
    pub fn take_corrupt(&mut self) -> Vec<CorruptLine> {
        std::mem::take(&mut self.corrupt)
    }

    /// The lines completed since the last poll, in file order; empty when there are none.
    ///
    /// Corrupt lines are skipped and kept for [`take_corrupt`](Self::take_corrupt), so one
    /// bad line cannot stall the follower.
    ///
    /// # Errors
    /// [`AuditError::Open`] when the file cannot be opened, [`AuditError::Read`] when
    /// reading fails, [`AuditError::Shrunk`] when the file is now shorter than the lines
    /// already returned (it was truncated or replaced).
    pub fn poll(&mut self) -> Result<Vec<AuditLine>, AuditError> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path).map_err(|source| AuditError::Open {
                path: self.path.clone(),
                source,
            })?,
        };
        let file: &File = self.file.insert(file);
        let read_err = |offset, source| AuditError::Read {
            path: self.path.clone(),
            offset,
            source,
        };
        let len = file.metadata().map_err(|e| read_err(self.offset, e))?.len();
        if len < self.offset {
            return Err(AuditError::Shrunk {
                path: self.path.clone(),
                offset: self.offset,
                len,
            });
        }
        if len == self.offset {
            return Ok(Vec::new());
        }
        let mut handle = file;
        handle
            .seek(SeekFrom::Start(self.offset))
            .map_err(|e| read_err(self.offset, e))?;
        // Read only up to the length seen above, so a busy writer cannot keep one poll
        // going forever.
        let mut reader = BufReader::new(handle.take(len - self.offset));
        let mut lines = Vec::new();
        loop {
            let start = self.offset;
            let raw = next_raw_line(&mut reader, &mut self.buf, MAX_LINE_BYTES)
                .map_err(|e| read_err(start, e))?;
            let Some(raw) = raw else { break };
            if std::mem::take(&mut self.newline_owed) && raw.terminated && raw.consumed == 1 {
                self.offset += 1;
                continue;
            }
            let line_no = self.line_count + 1;
            match classify(&self.buf, &raw) {
                Parsed::Blank if raw.terminated => {}
                Parsed::Good(line) => {
                    self.newline_owed = !raw.terminated;
                    lines.push(line);
                }
                Parsed::Bad(message) if raw.terminated => {
                    self.corrupt.push(CorruptLine {
                        line_no,
                        offset: start,
                        message,
                    });
                }
                // Still being written: read it again next time.
                Parsed::Blank | Parsed::Bad(_) => break,
            }
            self.offset += raw.consumed;
            self.line_count = line_no;
        }
        Ok(lines)
    }
}

/// Where one line ends.
struct RawLine {
    /// Bytes consumed, the newline included.
    consumed: u64,
    /// Whether it ended with a newline (otherwise it ended at end of file).
    terminated: bool,
    /// Whether it was longer than the limit (only the first bytes are kept).
    oversized: bool,
}

/// Reads one line into `buf` (without its newline), keeping at most `max` bytes of it;
/// `None` at end of file.
///
/// `BufRead::read_until` would keep the whole line, however long.
fn next_raw_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<RawLine>> {
    buf.clear();
    let mut consumed = 0u64;
    let mut oversized = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some(RawLine {
                consumed,
                terminated: false,
                oversized,
            }));
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        let room = max.saturating_sub(buf.len());
        if content.len() > room {
            oversized = true;
        }
        buf.extend_from_slice(&content[..content.len().min(room)]);
        let used = content.len() + usize::from(newline.is_some());
        reader.consume(used);
        consumed += used as u64;
        if newline.is_some() {
            return Ok(Some(RawLine {
                consumed,
                terminated: true,
                oversized,
            }));
        }
    }
}

#[allow(clippy::large_enum_variant, reason = "as for `ScanEntry`")]
enum Parsed {
    Blank,
    Good(AuditLine),
    Bad(String),
}

fn classify(content: &[u8], raw: &RawLine) -> Parsed {
    if raw.oversized {
        return Parsed::Bad(format!("line is longer than {MAX_LINE_BYTES} bytes"));
    }
    if content.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    match serde_json::from_slice::<AuditLine>(content) {
        Ok(line) => Parsed::Good(line),
        Err(e) => Parsed::Bad(e.to_string()),
    }
}
