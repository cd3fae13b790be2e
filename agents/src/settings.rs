//! Parsing an agent's `settings` block (already YAML-decoded to JSON) into its typed
//! config, with the path of every problem.

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
