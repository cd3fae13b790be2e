//! Parsing an agent's `settings` block (already YAML-decoded to JSON) into its typed
//! config, with the path of every problem.

use std::time::Duration;

use conclave_runtime::policy::SettingsProblem;
use serde::de::DeserializeOwned;

/// Deserializes `settings` (`Null` means "all defaults") into `T`.
///
/// # Errors
/// The first shape problem, with its path below `settings`.
pub fn parse<T: DeserializeOwned + Default>(
    settings: &serde_json::Value,
) -> Result<T, Vec<SettingsProblem>> {
    if settings.is_null() {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        vec![SettingsProblem {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }]
    })
}

/// A problem at `path` (below `settings`).
pub fn problem(path: &str, message: impl Into<String>) -> SettingsProblem {
    SettingsProblem {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Parses `<integer><unit>` with unit `ms`, `s`, `m` or `h` (`15s`, `5m`, `250ms`).
///
/// The agents crate has no duration-parsing dependency; settings need only these forms.
///
/// # Errors
/// The message for a malformed duration, in the policy compiler's wording.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as `30s`, `5m` or `1h`, found `{text}`");
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

/// Formats `d` the way settings write it, for messages (`90s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    // Whole-unit checks by multiplication: `is_multiple_of` is newer than the MSRV (1.85).
    let ms = d.as_millis();
    let (h, m, s) = (ms / 3_600_000, ms / 60_000, ms / 1_000);
    if ms > 0 && h * 3_600_000 == ms {
        format!("{h}h")
    } else if ms > 0 && m * 60_000 == ms {
        format!("{m}m")
    } else if s * 1_000 == ms {
        format!("{s}s")
    } else {
        format!("{ms}ms")
    }
}

/// Parses `text` and checks it lies in `range` (inclusive), recording a problem at `path`
/// otherwise.
pub fn checked_duration(
    text: &str,
    path: &str,
    range: (Duration, Duration),
    problems: &mut Vec<SettingsProblem>,
) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if d >= range.0 && d <= range.1 => Some(d),
        Ok(_) => {
            problems.push(problem(
                path,
                format!(
                    "expected a duration in {}..={}, found `{}`",
                    format_duration(range.0),
                    format_duration(range.1),
                    text.trim()
                ),
            ));
            None
        }
        Err(message) => {
            problems.push(problem(path, message));
            None
        }
    }
}

/// Table tests of an agent's settings parser: each case's settings must fail with exactly
/// these `(path, message)` problems, in order.
#[cfg(test)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) settings: serde_json::Value,
    pub(crate) problems: &'static [(&'static str, &'static str)],
}

/// Runs [`Case`]s through `parse`.
#[cfg(test)]
pub(crate) fn assert_problems<T: std::fmt::Debug>(
    cases: &[Case],
    parse: impl Fn(&serde_json::Value) -> Result<T, Vec<SettingsProblem>>,
) {
    for case in cases {
        let got = parse(&case.settings).expect_err(case.name);
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(got, case.problems, "case `{}`", case.name);
    }
}
