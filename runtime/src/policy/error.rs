//! Policy errors: each names the file, the line and column, the YAML path, what was
//! expected and what was found.

use std::fmt;

use super::located::Loc;

/// What is wrong, without where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(String),
    /// The YAML is malformed or does not fit the policy's shape.
    #[error("{0}")]
    Yaml(String),
    /// `apiVersion` is not supported.
    #[error("expected `conclave/v1`, found `{0}`")]
    ApiVersion(String),
    /// `kind` is not `Policy`.
    #[error("expected `{expected}`, found `{found}`")]
    Kind {
        /// The kind this file type requires.
        expected: &'static str,
        /// What the file says.
        found: String,
    },
    /// A name does not match the naming rule.
    #[error(
        "expected a name of lowercase letters, digits and `-` (1 to 63 characters), found `{0}`"
    )]
    BadName(String),
    /// An agent key is not a known agent.
    #[error("unknown agent `{found}`, expected one of {expected}")]
    UnknownAgent {
        /// The key as written.
        found: String,
        /// Known agents, formatted.
        expected: String,
    },
    /// A target name is not declared in `spec.targets`.
    #[error("unknown target `{0}`; declare it under `spec.targets`")]
    UnknownTarget(String),
    /// A name appears twice where it must be unique.
    #[error("duplicate {what} `{name}`")]
    Duplicate {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A number is outside its range.
    #[error("expected {expected}, found `{found}`")]
    OutOfRange {
        /// What range.
        expected: &'static str,
        /// What was written.
        found: String,
    },
    /// `min_replicas` above `max_replicas`.
    #[error("min_replicas `{min}` is greater than max_replicas `{max}`")]
    MinAboveMax {
        /// Effective minimum.
        min: u32,
        /// Effective maximum.
        max: u32,
    },
    /// The fleet budget cannot hold every declared target at its minimum.
    #[error("fleet_replica_budget `{budget}` is below the sum of declared targets' min_replicas `{minimums}`")]
    BudgetBelowMinimums {
        /// The budget.
        budget: u32,
        /// The sum of minimums.
        minimums: u64,
    },
    /// A duration string does not parse.
    #[error("expected a duration such as `30s`, `5m` or `1h`, found `{0}`")]
    BadDuration(String),
    /// A duration is zero or too long where that makes no sense.
    #[error("expected a duration in {expected}, found `{found}`")]
    DurationOutOfRange {
        /// The allowed range.
        expected: &'static str,
        /// What was written.
        found: String,
    },
    /// A glob pattern does not parse.
    #[error("invalid glob `{glob}`: {message}")]
    BadGlob {
        /// The pattern.
        glob: String,
        /// Why.
        message: String,
    },
    /// A selector with nothing in it.
    #[error(
        "selector is empty; give `names`, `labels` or `globs`, or omit it to select every target"
    )]
    EmptySelector,
    /// A CEL condition does not compile.
    #[error("{0}")]
    Condition(#[from] super::condition::ConditionCompileError),
    /// `safety_order` does not list every class exactly once.
    #[error("expected every action class exactly once ({expected}), found {found}")]
    SafetyOrder {
        /// All classes, formatted.
        expected: String,
        /// What was written, formatted.
        found: String,
    },
    /// Two settings that cannot both hold.
    #[error("{0}")]
    Contradiction(String),
    /// An agent's own `settings` are wrong (checked by the agent's catalog).
    #[error("{0}")]
    Settings(String),
    /// A model signature is unusable.
    #[error("{0}")]
    ModelSignature(String),
}

/// A problem in a policy (or scenario, or policy test) file, with where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct PolicyError {
    /// The file, as given by the caller.
    pub file: String,
    /// Line and column, when known.
    pub loc: Loc,
    /// YAML path such as `spec.guardrails.defaults.max_step`, when known.
    pub path: String,
    /// What is wrong.
    #[source]
    pub problem: Problem,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.loc.is_known() {
            write!(f, ":{}", self.loc)?;
        }
        write!(f, ": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.problem)
    }
}

/// Collects every problem in a file instead of stopping at the first.
#[derive(Debug)]
pub(crate) struct Problems {
    file: String,
    errors: Vec<PolicyError>,
}

impl Problems {
    pub(crate) fn new(file: &str) -> Self {
        Problems {
            file: file.to_string(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, loc: Loc, path: impl Into<String>, problem: Problem) {
        self.errors.push(PolicyError {
            file: self.file.clone(),
            loc,
            path: path.into(),
            problem,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems, sorted by position so output follows the file.
    pub(crate) fn into_sorted(mut self) -> Vec<PolicyError> {
        self.errors
            .sort_by(|a, b| a.loc.cmp(&b.loc).then_with(|| a.path.cmp(&b.path)));
        self.errors
    }
}

/// Turns a serde-saphyr error into a located problem: its text without the snippet and
/// without the trailing "at line L, column C" (we print the location ourselves).
pub(crate) fn from_yaml_error(file: &str, text: &str, e: &serde_saphyr::Error) -> PolicyError {
    let loc = e
        .location()
        .map(|l| Loc {
            line: l.line(),
            column: l.column(),
        })
        .unwrap_or_default();
    let mut message = e.without_snippet().to_string();
    if loc.is_known() {
        let suffix = format!(" at line {}, column {}", loc.line, loc.column);
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    if let Some(ty) = message.strip_prefix("invalid ") {
        // serde-saphyr says only "invalid u32": name what was expected and what was found.
        let expected = match ty {
            "u32" | "u64" | "usize" => "a non-negative integer",
            "i32" | "i64" => "an integer",
            "f32" | "f64" => "a number",
            "bool" => "`true` or `false`",
            other => other,
        };
        message = format!("expected {expected}, found `{}`", scalar_at(text, loc));
    }
    PolicyError {
        file: file.to_string(),
        loc,
        path: String::new(),
        problem: Problem::Yaml(message),
    }
}

/// The plain scalar that starts at `loc` in `text` (up to a flow delimiter or comment).
fn scalar_at(text: &str, loc: Loc) -> String {
    let line = text
        .lines()
        .nth(usize::try_from(loc.line.saturating_sub(1)).unwrap_or(usize::MAX))
        .unwrap_or("");
    let rest: String = line
        .chars()
        .skip(usize::try_from(loc.column.saturating_sub(1)).unwrap_or(0))
        .collect();
    let end = rest.find([',', '}', ']', '#']).unwrap_or(rest.len());
    rest[..end].trim().to_string()
}
