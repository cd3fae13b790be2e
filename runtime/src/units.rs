//! Bounded values as newtypes: an invalid fraction or confidence cannot be constructed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A value outside the range its type allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected {what} in {range}, found `{found}`")]
pub struct OutOfRange {
    what: &'static str,
    range: &'static str,
    found: String,
}

macro_rules! unit_interval {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(f64);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0.0);
            /// One.
            pub const ONE: $name = $name(1.0);

            /// Accepts a finite value in `0.0..=1.0`.
            ///
            /// # Errors
            /// [`OutOfRange`] for NaN, infinities and values outside the unit interval.
            pub fn try_new(v: f64) -> Result<Self, OutOfRange> {
                if v.is_finite() && (0.0..=1.0).contains(&v) {
                    Ok($name(v))
                } else {
                    Err(OutOfRange { what: $what, range: "0.0..=1.0", found: v.to_string() })
                }
            }

            /// `v` brought into `0.0..=1.0`; NaN becomes zero.
            pub fn saturating(v: f64) -> Self {
                if v.is_nan() { $name(0.0) } else { $name(v.clamp(0.0, 1.0)) }
            }

            /// The raw value.
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = f64::deserialize(d)?;
                $name::try_new(v).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

unit_interval!(
    /// A share of something, `0.0..=1.0` (for example the fraction of traffic to shed).
    Fraction,
    "a fraction"
);
unit_interval!(
    /// How sure an agent is of a proposal, `0.0..=1.0`.
    Confidence,
    "a confidence"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_rejects_nan_and_out_of_range() {
        assert!(Fraction::try_new(0.25).is_ok());
        for bad in [f64::NAN, f64::INFINITY, -0.01, 1.01] {
            assert!(Fraction::try_new(bad).is_err(), "{bad} accepted");
        }
        let err = Fraction::try_new(1.5).expect_err("1.5 is out of range");
        assert_eq!(
            err.to_string(),
            "expected a fraction in 0.0..=1.0, found `1.5`"
        );
    }

    #[test]
    fn confidence_deserializes_only_in_range() {
        assert_eq!(
            serde_json::from_str::<Confidence>("0.9").ok(),
            Confidence::try_new(0.9).ok()
        );
        assert!(serde_json::from_str::<Confidence>("2.0").is_err());
    }
}
