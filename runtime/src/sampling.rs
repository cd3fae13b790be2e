//! Sampling that keeps what matters (feature `otel`): a decision that was rejected,
//! overridden, held for approval or made on a fallback, and every human override, is
//! always traced; routine decisions (including an agent's repeat proposal rejected only
//! as `no_change`) are traced at the configured ratio. Child spans follow
//! their root, so a kept trace is whole.
//!
//! The decision is made before its span starts (the arbiter traces what it decided), so
//! the root span's attributes already say what kind of decision it is when the sampler
//! looks at them.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// Outcomes whose decisions are always kept.
const ALWAYS_KEPT: &[&str] = &["rejected", "overridden", "pending"];

/// The decision-aware sampler.
#[derive(Debug, Clone)]
pub struct DecisionSampler {
    routine: Sampler,
    ratio: f64,
}

impl DecisionSampler {
    /// Routine decisions (and any other root span) kept with probability `ratio`.
    pub fn new(ratio: f64) -> Self {
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            1.0
        };
        DecisionSampler {
            routine: Sampler::TraceIdRatioBased(ratio),
            ratio,
        }
    }

    /// The ratio from the standard variables: `OTEL_TRACES_SAMPLER` (`always_on`,
    /// `always_off`, `traceidratio`, `parentbased_*` of those) and `OTEL_TRACES_SAMPLER_ARG`;
    /// 1.0 when unset. Returns an error for values it does not understand.
    ///
    /// # Errors
    /// A message naming the variable and what was expected.
    pub fn from_env(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, String> {
        let ratio = |arg: Option<&str>| -> Result<f64, String> {
            match arg {
                None | Some("") => Ok(1.0),
                Some(a) => a
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        format!("OTEL_TRACES_SAMPLER_ARG `{a}`: expected a number in 0..=1")
                    }),
            }
        };
        let r = match sampler.unwrap_or("") {
            "" | "always_on" | "parentbased_always_on" => 1.0,
            "always_off" | "parentbased_always_off" => 0.0,
            "traceidratio" | "parentbased_traceidratio" => ratio(arg)?,
            other => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER `{other}`: expected always_on, always_off, traceidratio or their parentbased_ forms"
                ))
            }
        };
        Ok(DecisionSampler::new(r))
    }

    /// The ratio routine decisions are kept at.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

/// Whether span `name` is `kind` or `kind {subject}` (`otel.name` renames the span
/// before the sampler sees it: `decide checkout`).
fn is(name: &str, kind: &str) -> bool {
    name.strip_prefix(kind)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// Whether a root span must be kept whatever the ratio.
fn must_keep(name: &str, attributes: &[KeyValue]) -> bool {
    if is(name, "override") {
        return true;
    }
    if !is(name, "decide") {
        return false;
    }
    let outcome = attr(attributes, "conclave.outcome").map(Value::as_str);
    let codes = attr(attributes, "conclave.reason.codes").map(Value::as_str);
    // "Already runs that many" and "already waiting for approval" are an agent repeating
    // itself, not refusals worth a trace.
    let no_change = outcome.as_deref() == Some("rejected")
        && matches!(codes.as_deref(), Some("no_change" | "awaiting_approval"));
    let kept_outcome = outcome.is_some_and(|o| ALWAYS_KEPT.contains(&o.as_ref())) && !no_change;
    let fallback = matches!(
        attr(attributes, "conclave.fallback.used"),
        Some(Value::Bool(true))
    );
    kept_outcome || fallback
}

impl ShouldSample for DecisionSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(parent) = parent_context.filter(|cx| cx.has_active_span()) {
            let sc = parent.span().span_context().clone();
            if sc.is_valid() {
                return SamplingResult {
                    decision: if sc.is_sampled() {
                        SamplingDecision::RecordAndSample
                    } else {
                        SamplingDecision::Drop
                    },
                    attributes: Vec::new(),
                    trace_state: sc.trace_state().clone(),
                };
            }
        }
        if must_keep(name, attributes) {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.routine
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(outcome: &str, fallback: bool) -> Vec<KeyValue> {
        let codes = if outcome == "rejected" {
            "cooldown"
        } else {
            "enacted"
        };
        vec![
            KeyValue::new("conclave.outcome", outcome.to_owned()),
            KeyValue::new("conclave.reason.codes", codes),
            KeyValue::new("conclave.fallback.used", fallback),
        ]
    }

    fn sampled(s: &DecisionSampler, name: &str, attrs: &[KeyValue], trace: u128) -> bool {
        let r = s.should_sample(
            None,
            TraceId::from(trace),
            name,
            &SpanKind::Internal,
            attrs,
            &[],
        );
        r.decision == SamplingDecision::RecordAndSample
    }

    #[test]
    fn what_matters_is_kept_and_routine_follows_the_ratio() {
        let none = DecisionSampler::new(0.0);
        for (name, attrs) in [
            ("decide", decide("rejected", false)),
            ("decide", decide("overridden", false)),
            ("decide", decide("pending", false)),
            ("decide", decide("enacted", true)),
            ("decide checkout", decide("pending", false)),
            ("override", Vec::new()),
            ("override approve", Vec::new()),
        ] {
            assert!(sampled(&none, name, &attrs, 7), "{name} {attrs:?}");
        }
        for (name, attrs) in [
            ("decide", decide("enacted", false)),
            ("decide checkout", decide("shadowed", false)),
            ("decidedly", decide("rejected", false)),
            (
                "decide checkout",
                vec![
                    KeyValue::new("conclave.outcome", "rejected"),
                    KeyValue::new("conclave.reason.codes", "no_change"),
                ],
            ),
            ("process", Vec::new()),
        ] {
            assert!(!sampled(&none, name, &attrs, 7), "{name} {attrs:?}");
        }
        // At 1/4, about a quarter of routine traces (by trace id) are kept.
        let quarter = DecisionSampler::new(0.25);
        let kept = (0..4000u128)
            .filter(|i| {
                sampled(
                    &quarter,
                    "decide",
                    &decide("enacted", false),
                    i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835),
                )
            })
            .count();
        assert!(
            (800..1200).contains(&kept),
            "{kept} of 4000 kept at ratio 0.25"
        );
    }

    #[test]
    fn the_standard_variables_set_the_ratio() {
        let r =
            |s: Option<&str>, a: Option<&str>| DecisionSampler::from_env(s, a).map(|d| d.ratio());
        assert_eq!(r(None, None), Ok(1.0));
        assert_eq!(r(Some("parentbased_traceidratio"), Some("0.01")), Ok(0.01));
        assert_eq!(r(Some("always_off"), None), Ok(0.0));
        assert_eq!(
            r(Some("traceidratio"), Some("2")),
            Err("OTEL_TRACES_SAMPLER_ARG `2`: expected a number in 0..=1".into())
        );
        assert!(r(Some("xray"), None).is_err_and(|e| e.starts_with("OTEL_TRACES_SAMPLER `xray`: ")));
    }
}
