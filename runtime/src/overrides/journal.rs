//! The override journal: standing overrides (freeze, pause, pin, mode) written to disk
//! before they take effect, so a restarted runtime is still frozen, paused or pinned.
//!
//! JSON Lines, one [`Override`] per line, appended and synced per override. Opening the
//! journal folds it (a resume lifts a pause, a later pin replaces an earlier one) and
//! rewrites it with only what is still standing, so it never grows past the number of
//! overrides in force plus those given since the last start.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::{Override, OverrideKind};
use crate::clock::Timestamp;
use crate::target::Target;

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("override journal `{path}`: {error}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A line is not an override. Nothing is dropped silently: the runtime does not start
    /// on a journal it cannot read, since an override lost here is a freeze forgotten.
    #[error("override journal `{path}` line {line}: {error}")]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        error: String,
    },
}

/// An open journal, ready for appends.
#[derive(Debug)]
pub struct OverrideJournal {
    path: PathBuf,
    file: File,
}

/// What is standing after folding a sequence of overrides, each with its place in it.
#[derive(Default)]
struct Standing {
    seq: usize,
    frozen: Option<(usize, Override)>,
    paused: BTreeMap<String, (usize, Override)>,
    pins: BTreeMap<Target, (usize, Override)>,
    modes: BTreeMap<String, (usize, Override)>,
}

impl Standing {
    fn apply(&mut self, o: Override) {
        self.seq += 1;
        let o = (self.seq, o);
        match &o.1.kind {
            OverrideKind::Freeze => self.frozen = Some(o),
            OverrideKind::Unfreeze => self.frozen = None,
            OverrideKind::Pause { agent } => {
                self.paused.insert(agent.clone(), o);
            }
            OverrideKind::Resume { agent } => {
                self.paused.remove(agent);
            }
            OverrideKind::Pin { target, .. } => {
                self.pins.insert(target.clone(), o);
            }
            OverrideKind::Unpin { target } => {
                self.pins.remove(target);
            }
            OverrideKind::SetMode { agent, .. } => {
                self.modes.insert(agent.clone(), o);
            }
            OverrideKind::Approve { .. }
            | OverrideKind::Deny { .. }
            | OverrideKind::Veto { .. } => {}
        }
    }

    /// In the order they were given, so restoring replays them as they happened.
    fn into_ordered(self, now: Timestamp) -> Vec<Override> {
        let mut all: Vec<(usize, Override)> = self.frozen.into_iter().collect();
        all.extend(self.paused.into_values());
        all.extend(self.pins.into_values());
        all.extend(self.modes.into_values());
        all.retain(|(_, o)| o.is_in_force(now));
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, o)| o).collect()
    }
}

impl OverrideJournal {
    /// Opens (or creates) the journal at `path`, returns the overrides still standing at
    /// `now` in the order they were given, and compacts the file to just those.
    ///
    /// # Errors
    /// [`JournalError::Io`] when the file cannot be read or rewritten,
    /// [`JournalError::Corrupt`] when a line is not an override.
    pub fn open(path: &Path, now: Timestamp) -> Result<(Self, Vec<Override>), JournalError> {
        let io = |error| JournalError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut standing = Standing::default();
        match File::open(path) {
            Ok(f) => {
                for (i, line) in BufReader::new(f).lines().enumerate() {
                    let line = line.map_err(io)?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let o: Override =
                        serde_json::from_str(&line).map_err(|e| JournalError::Corrupt {
                            path: path.to_path_buf(),
                            line: i + 1,
                            error: e.to_string(),
                        })?;
                    standing.apply(o);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let restored = standing.into_ordered(now);
        // Write the compacted journal beside the old one and rename it over, so a crash
        // here leaves either the old journal or the new one, never half of one.
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            for o in &restored {
                writeln!(f, "{}", line_of(o)).map_err(io)?;
            }
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok((
            OverrideJournal {
                path: path.to_path_buf(),
                file,
            },
            restored,
        ))
    }

    /// Writes `o` and syncs it to disk. Answers to pending decisions are not written:
    /// nothing of them stands after the decision is settled.
    ///
    /// # Errors
    /// [`JournalError::Io`] when the write or the sync failed.
    pub fn append(&mut self, o: &Override) -> Result<(), JournalError> {
        if matches!(
            o.kind,
            OverrideKind::Approve { .. } | OverrideKind::Deny { .. } | OverrideKind::Veto { .. }
        ) {
            return Ok(());
        }
        let io = |error| JournalError::Io {
            path: self.path.clone(),
            error,
        };
        writeln!(self.file, "{}", line_of(o)).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn line_of(o: &Override) -> String {
    // An Override holds strings, integers and timestamps only: it always serializes.
    serde_json::to_string(o).unwrap_or_else(|e| unreachable!("an override serializes: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::{Actor, Role};

    fn o(id: &str, at: i64, kind: OverrideKind, until: Option<i64>) -> Override {
        Override {
            id: id.into(),
            kind,
            by: Actor {
                name: "ana".into(),
                role: Role::Operator,
            },
            reason: "test".into(),
            at: Timestamp::from_millis(at),
            until: until.map(Timestamp::from_millis),
        }
    }

    fn ids(v: &[Override]) -> Vec<&str> {
        v.iter().map(|o| o.id.as_str()).collect()
    }

    #[test]
    fn folds_lifts_and_replacements_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overrides.jsonl");
        let now = Timestamp::from_millis(10_000);
        let (mut j, restored) = OverrideJournal::open(&path, now).unwrap();
        assert!(restored.is_empty());
        let pin = |id: &str, at, n| {
            o(
                id,
                at,
                OverrideKind::Pin {
                    target: Target::new("checkout"),
                    replicas: n,
                },
                None,
            )
        };
        let pause = |id: &str, at| {
            o(
                id,
                at,
                OverrideKind::Pause {
                    agent: "router".into(),
                },
                None,
            )
        };
        for x in [
            o("f1", 1, OverrideKind::Freeze, None),
            pause("p1", 2),
            pin("pin1", 3, 4),
            o(
                "a1",
                4,
                OverrideKind::Approve {
                    decision: "d-1".into(),
                },
                None,
            ),
            o(
                "r1",
                5,
                OverrideKind::Resume {
                    agent: "router".into(),
                },
                None,
            ),
            pin("pin2", 6, 6),
            o(
                "m1",
                7,
                OverrideKind::SetMode {
                    agent: "scaler".into(),
                    mode: crate::Mode::Shadow,
                },
                Some(9_000),
            ),
            pause("p2", 8),
        ] {
            j.append(&x).unwrap();
        }
        drop(j);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 7, "everything but the approval is journaled");

        let (_, restored) = OverrideJournal::open(&path, Timestamp::from_millis(8_000)).unwrap();
        assert_eq!(ids(&restored), ["f1", "pin2", "m1", "p2"]);
        // Compacted to what stands; a mode that lapsed by the next start is gone.
        let (_, restored) = OverrideJournal::open(&path, now).unwrap();
        assert_eq!(ids(&restored), ["f1", "pin2", "p2"]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_corrupt_line_is_an_error_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overrides.jsonl");
        let good = serde_json::to_string(&o("f1", 1, OverrideKind::Freeze, None)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"id\": 7}}\n")).unwrap();
        let err = OverrideJournal::open(&path, Timestamp::EPOCH)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("override journal `{}` line 2: ", path.display())),
            "{err}"
        );
        // Left as it was, for a person to look at.
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"id\": 7"));
    }
}
