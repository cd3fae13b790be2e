//! Policy conditions: CEL expressions compiled at load time, evaluated per proposal.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// Variables a condition may use.
pub const CONDITION_VARIABLES: [&str; 2] = ["proposal", "target"];

/// A compiled CEL condition.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<cel::Program>,
}

/// Why a condition did not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionCompileError {
    /// The expression is not valid CEL.
    #[error("CEL expression `{expr}` does not compile: {message} (at column {column})")]
    Syntax {
        /// The expression.
        expr: String,
        /// The parser's message.
        message: String,
        /// 1-based column in the expression.
        column: isize,
    },
    /// The expression names a variable that is not provided.
    #[error("CEL expression `{expr}` uses unknown variable `{name}` (expected one of `proposal`, `target`)")]
    UnknownVariable {
        /// The expression.
        expr: String,
        /// The unknown name.
        name: String,
    },
}

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionEvalError {
    /// CEL failed at run time (missing key, type mismatch).
    #[error("CEL expression `{expr}` failed: {message}")]
    Failed {
        /// The expression.
        expr: String,
        /// CEL's message.
        message: String,
    },
    /// The result was not a boolean.
    #[error("CEL expression `{expr}` returned {found}, expected a bool")]
    NotBool {
        /// The expression.
        expr: String,
        /// What it returned.
        found: String,
    },
}

impl Condition {
    /// Compiles `source`, checking that it only uses known variables.
    ///
    /// # Errors
    /// [`ConditionCompileError`] when the expression does not parse or names an unknown
    /// variable.
    pub fn compile(source: &str) -> Result<Self, ConditionCompileError> {
        let program = cel::Program::compile(source).map_err(|e| {
            let first = e.errors.first();
            ConditionCompileError::Syntax {
                expr: source.to_string(),
                message: first
                    .map(|p| p.msg.clone())
                    .unwrap_or_else(|| e.to_string()),
                column: first.map(|p| p.pos.1 + 1).unwrap_or(0),
            }
        })?;
        let refs = program.references();
        let mut vars = refs.variables();
        vars.sort_unstable();
        if let Some(bad) = vars.into_iter().find(|v| !CONDITION_VARIABLES.contains(v)) {
            return Err(ConditionCompileError::UnknownVariable {
                expr: source.to_string(),
                name: bad.to_string(),
            });
        }
        Ok(Condition {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition with `vars` bound.
    ///
    /// # Errors
    /// [`ConditionEvalError`] when CEL fails or the result is not a bool.
    pub fn eval(&self, vars: &[(&str, cel::Value)]) -> Result<bool, ConditionEvalError> {
        let mut ctx = cel::Context::default();
        for (name, value) in vars {
            ctx.add_variable_from_value(*name, value.clone());
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ConditionEvalError::NotBool {
                expr: self.source.clone(),
                found: format!("{other:?}"),
            }),
            Err(e) => Err(ConditionEvalError::Failed {
                expr: self.source.clone(),
                message: e.to_string(),
            }),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_evaluates_over_proposal() {
        let c = Condition::compile("proposal.replicas - target.replicas > 10").expect("compiles");
        let proposal = cel::to_value(serde_json::json!({"replicas": 30})).expect("value");
        let target = cel::to_value(serde_json::json!({"replicas": 4})).expect("value");
        assert_eq!(
            c.eval(&[("proposal", proposal), ("target", target)]),
            Ok(true)
        );
    }

    #[test]
    fn unknown_variable_is_a_compile_error() {
        let err = Condition::compile("request.size > 1").expect_err("unknown variable");
        assert_eq!(
            err.to_string(),
            "CEL expression `request.size > 1` uses unknown variable `request` (expected one of `proposal`, `target`)"
        );
    }

    #[test]
    fn syntax_error_names_the_column() {
        let err = Condition::compile("proposal.replicas >").expect_err("incomplete");
        assert!(
            matches!(err, ConditionCompileError::Syntax { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn non_bool_result_is_an_eval_error() {
        let c = Condition::compile("proposal.replicas").expect("compiles");
        let proposal = cel::to_value(serde_json::json!({"replicas": 3})).expect("value");
        assert!(matches!(
            c.eval(&[("proposal", proposal)]),
            Err(ConditionEvalError::NotBool { .. })
        ));
    }
}
