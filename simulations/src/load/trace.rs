//! Real arrival-rate traces: `t_seconds,rate` CSV files (see `simulations/traces/SOURCES.md`),
//! read once into a [`Trace`] and replayed by bucket, stepwise or interpolated.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The only header a trace file may have.
pub const TRACE_HEADER: &str = "t_seconds,rate";

/// Longest piece of a file quoted back in an error, in characters: enough to recognise
/// a value, and a binary file cannot flood the message.
const MAX_QUOTED_CHARS: usize = 32;

/// How a replay turns buckets into a rate between bucket boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// The bucket's average rate holds for the whole bucket, as recorded.
    #[default]
    Step,
    /// Linear between bucket midpoints (each bucket's average is placed at its middle),
    /// so a replay has no jumps at bucket boundaries. Before the first midpoint and after
    /// the last the end bucket's rate holds, unless the replay loops.
    Linear,
}

/// An arrival-rate series with evenly spaced buckets and no gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    bucket_s: f64,
    rates: Vec<f64>,
}

/// Why a trace file cannot be used. Every variant but [`TraceError::Io`] names the file
/// and line, what was expected there and what was found.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{}: cannot read the trace file", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The first line is not [`TRACE_HEADER`].
    #[error("{file}:1: expected the header `{TRACE_HEADER}`, found `{found}`")]
    Header {
        /// The file.
        file: String,
        /// The first line (clipped).
        found: String,
    },
    /// A row without exactly two comma-separated columns.
    #[error("{file}:{line}: expected 2 columns (`{TRACE_HEADER}`), found {found}")]
    Columns {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Columns found (0 for an empty line).
        found: usize,
    },
    /// A column that is not a finite decimal number.
    #[error("{file}:{line}: column `{column}`: expected a finite number, found `{found}`")]
    NotANumber {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// `t_seconds` or `rate`.
        column: &'static str,
        /// The text found (clipped).
        found: String,
    },
    /// A negative rate.
    #[error("{file}:{line}: column `rate`: expected a rate of at least 0, found `{found}`")]
    NegativeRate {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The rate found.
        found: f64,
    },
    /// The first row does not start at 0, or the second row is not after it.
    #[error("{file}:{line}: column `t_seconds`: expected {expected}, found `{found}`")]
    BadStart {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What the row should hold.
        expected: StartExpectation,
        /// The time found.
        found: f64,
    },
    /// A row whose time is not the previous row's plus the bucket size: a gap, a repeat
    /// or rows out of order.
    #[error("{file}:{line}: column `t_seconds`: expected `{expected}` (buckets of {bucket_s} s with no gaps), found `{found}`")]
    Gap {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The time this row should start at.
        expected: f64,
        /// The time found.
        found: f64,
        /// The bucket size set by the first two rows.
        bucket_s: f64,
    },
    /// Fewer than two rows, so the bucket size is unknown.
    #[error("{file}: expected at least 2 rows after the header, found {rows}")]
    TooShort {
        /// The file.
        file: String,
        /// Rows found.
        rows: usize,
    },
}

/// What [`TraceError::BadStart`] expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartExpectation {
    /// The first bucket starts at 0.
    Zero,
    /// The second bucket starts after the first, which sets the bucket size.
    AfterZero,
}

impl fmt::Display for StartExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartExpectation::Zero => "the first bucket to start at `0`",
            StartExpectation::AfterZero => "a time after `0` (it sets the bucket size)",
        })
    }
}

impl Trace {
    /// Reads and checks the trace at `path`; errors name the file as given.
    ///
    /// # Errors
    /// [`TraceError::Io`] if it cannot be read, otherwise as [`Trace::parse`].
    pub fn load(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Trace::parse(&path.display().to_string(), &text)
    }

    /// Parses the text of a trace file; `file` names it in errors.
    ///
    /// The format: the header [`TRACE_HEADER`], then one `t_seconds,rate` row per bucket,
    /// the first at 0, each `bucket` seconds after the last (the first two rows set the
    /// bucket), with finite rates of at least 0. `\r\n` line ends, a UTF-8 byte-order mark
    /// and empty lines at the end are accepted.
    ///
    /// # Errors
    /// The first problem, with its line. Parsing stops there: after a gap or a bad row,
    /// later lines would only repeat it.
    pub fn parse(file: &str, text: &str) -> Result<Trace, TraceError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.trim_end_matches(['\n', '\r']);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let header = lines.next().unwrap_or("");
        if header.trim() != TRACE_HEADER {
            return Err(TraceError::Header {
                file: file.to_string(),
                found: clip(header),
            });
        }
        let mut rates = Vec::new();
        let mut bucket_s = 0.0;
        for (i, row) in lines.enumerate() {
            let line = i + 2;
            let (t, rate) = parse_row(file, line, row)?;
            match rates.len() {
                0 if t != 0.0 => {
                    return Err(TraceError::BadStart {
                        file: file.to_string(),
                        line,
                        expected: StartExpectation::Zero,
                        found: t,
                    })
                }
                0 => {}
                1 if t <= 0.0 => {
                    return Err(TraceError::BadStart {
                        file: file.to_string(),
                        line,
                        expected: StartExpectation::AfterZero,
                        found: t,
                    })
                }
                1 => bucket_s = t,
                n => {
                    let expected = n as f64 * bucket_s;
                    // Times are written as decimals, so allow rounding in the last digits.
                    if (t - expected).abs() > 1e-6 * bucket_s.max(1.0) {
                        return Err(TraceError::Gap {
                            file: file.to_string(),
                            line,
                            expected,
                            found: t,
                            bucket_s,
                        });
                    }
                }
            }
            rates.push(rate);
        }
        if rates.len() < 2 {
            return Err(TraceError::TooShort {
                file: file.to_string(),
                rows: rates.len(),
            });
        }
        Ok(Trace { bucket_s, rates })
    }

    /// The bucket size.
    pub fn bucket(&self) -> Duration {
        Duration::from_secs_f64(self.bucket_s)
    }

    /// The rate of each bucket, in arrivals per second.
    pub fn rates(&self) -> &[f64] {
        &self.rates
    }

    /// The time the trace covers: buckets × bucket size.
    pub fn span(&self) -> Duration {
        Duration::from_secs_f64(self.span_s())
    }

    fn span_s(&self) -> f64 {
        self.rates.len() as f64 * self.bucket_s
    }

    /// The rate `offset_s` seconds after the trace's start. Outside the trace the rate is
    /// 0 unless `looped`, which repeats it end to end (also before its start).
    pub fn rate_at(&self, offset_s: f64, interpolation: Interpolation, looped: bool) -> f64 {
        let span = self.span_s();
        let x = if looped {
            offset_s.rem_euclid(span)
        } else if (0.0..span).contains(&offset_s) {
            offset_s
        } else {
            return 0.0;
        };
        let n = self.rates.len();
        match interpolation {
            Interpolation::Step => self.rates[((x / self.bucket_s) as usize).min(n - 1)],
            Interpolation::Linear => {
                let pos = x / self.bucket_s - 0.5;
                let below = pos.floor();
                let frac = pos - below;
                let (a, b) = if looped {
                    let i = (below as i64).rem_euclid(n as i64) as usize;
                    (self.rates[i], self.rates[(i + 1) % n])
                } else {
                    let at = |k: f64| self.rates[(k.max(0.0) as usize).min(n - 1)];
                    (at(below), at(below + 1.0))
                };
                a + (b - a) * frac
            }
        }
    }
}

fn parse_row(file: &str, line: usize, row: &str) -> Result<(f64, f64), TraceError> {
    let cols: Vec<&str> = row.split(',').collect();
    let [t, rate] = cols.as_slice() else {
        return Err(TraceError::Columns {
            file: file.to_string(),
            line,
            found: if row.trim().is_empty() { 0 } else { cols.len() },
        });
    };
    let number = |column: &'static str, text: &str| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| TraceError::NotANumber {
                file: file.to_string(),
                line,
                column,
                found: clip(text),
            })
    };
    let t = number("t_seconds", t)?;
    let rate = number("rate", rate)?;
    if rate < 0.0 {
        return Err(TraceError::NegativeRate {
            file: file.to_string(),
            line,
            found: rate,
        });
    }
    Ok((t, rate))
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}
