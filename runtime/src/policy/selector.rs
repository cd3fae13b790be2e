//! Target selectors: names, labels and globs, matched against declared targets.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::model::TargetSpec;
use crate::target::Target;

/// Which targets something applies to.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub(crate) all: bool,
    pub(crate) names: BTreeSet<Target>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) globs: Vec<(String, GlobMatcher)>,
}

impl Selector {
    /// A selector that matches every target.
    pub fn all() -> Self {
        Selector {
            all: true,
            ..Selector::default()
        }
    }

    pub(crate) fn glob(pattern: &str) -> Result<(String, GlobMatcher), globset::Error> {
        Ok((pattern.to_string(), Glob::new(pattern)?.compile_matcher()))
    }

    /// Whether `target` (declared as `spec`, if it is declared) is selected.
    pub fn matches(&self, target: &Target, spec: Option<&TargetSpec>) -> bool {
        if self.all || self.names.contains(target) {
            return true;
        }
        let labels_match = !self.labels.is_empty()
            && spec.is_some_and(|s| self.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)));
        labels_match || self.globs.iter().any(|(_, g)| g.is_match(target.as_str()))
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.all {
            return s.serialize_str("all");
        }
        let mut m = s.serialize_map(None)?;
        if !self.names.is_empty() {
            m.serialize_entry("names", &self.names)?;
        }
        if !self.labels.is_empty() {
            m.serialize_entry("labels", &self.labels)?;
        }
        if !self.globs.is_empty() {
            let globs: Vec<&str> = self.globs.iter().map(|(p, _)| p.as_str()).collect();
            m.serialize_entry("globs", &globs)?;
        }
        m.end()
    }
}
