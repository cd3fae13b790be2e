use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Wednesday 2026-12-02, 00:00 UTC.
const WEDNESDAY: &str = "2026-12-02T00:00:00Z";
/// Monday 2026-11-30, 00:00 UTC.
const MONDAY: &str = "2026-11-30T00:00:00Z";

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamps are RFC 3339")
}

fn compile_at(spec: serde_json::Value, seed: u64, start: &str) -> LoadModel {
    let spec: LoadSpec = serde_json::from_value(spec).expect("test spec deserializes");
    let dir = traces_dir();
    let ctx = LoadContext {
        at: "load",
        seed: Seed::new(seed),
        component: "load/test",
        start: ts(start),
        trace_dir: &dir,
    };
    LoadModel::compile(spec, &ctx).expect("test spec is valid")
}

fn compile(spec: serde_json::Value) -> LoadModel {
    compile_at(spec, 1, WEDNESDAY)
}

fn errors(spec: serde_json::Value) -> Vec<String> {
    let spec: LoadSpec = serde_json::from_value(spec).expect("test spec deserializes");
    let dir = traces_dir();
    let ctx = LoadContext {
        at: "load",
        seed: Seed::new(1),
        component: "load/test",
        start: ts(WEDNESDAY),
        trace_dir: &dir,
    };
    match LoadModel::compile(spec, &ctx) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(error_chain).collect(),
    }
}

/// The error and its sources, joined by `: `, as the CLI prints them.
fn error_chain(e: &LoadError) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn hours(h: f64) -> Duration {
    secs(h * 3600.0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

// -------------------------------------------------------------------------------------
// Synthetic

#[test]
fn diurnal_peaks_at_the_configured_hour() {
    for peak_hour in [0.0, 9.5, 14.0, 23.0] {
        let m = compile(json!({"synthetic": {
            "base_rate_per_s": 100.0, "diurnal_amplitude": 0.6, "peak_hour": peak_hour
        }}));
        let minute_of_max = (0..24 * 60)
            .max_by(|&a, &b| {
                let ra = m.rate_at(secs(f64::from(a) * 60.0));
                let rb = m.rate_at(secs(f64::from(b) * 60.0));
                ra.total_cmp(&rb)
            })
            .expect("a day has minutes");
        assert_eq!(
            f64::from(minute_of_max),
            peak_hour * 60.0,
            "peak_hour {peak_hour}"
        );
        let peak = m.rate_at(hours(peak_hour));
        let trough = m.rate_at(hours((peak_hour + 12.0) % 24.0));
        assert!(close(peak, 160.0), "peak_hour {peak_hour}: peak {peak}");
        assert!(
            close(trough, 40.0),
            "peak_hour {peak_hour}: trough {trough}"
        );
    }
}

#[test]
fn diurnal_phase_follows_the_scenario_start() {
    // Starting at 10:00 UTC, the 14:00 peak is 4 hours in.
    let m = compile_at(
        json!({"synthetic": {"base_rate_per_s": 10.0, "diurnal_amplitude": 0.5, "peak_hour": 14.0}}),
        1,
        "2026-12-02T10:00:00Z",
    );
    assert!(close(m.rate_at(hours(4.0)), 15.0));
    assert!(close(m.rate_at(hours(16.0)), 5.0));
}

#[test]
fn weekends_dip_by_the_weekly_amplitude() {
    let m = compile_at(
        json!({"synthetic": {"base_rate_per_s": 50.0, "weekly_amplitude": 0.4}}),
        1,
        MONDAY,
    );
    // Noon of each day from Monday.
    let noon = |day: f64| m.rate_at(hours(day * 24.0 + 12.0));
    let cases = [
        ("monday", 0.0, 50.0),
        ("wednesday", 2.0, 50.0),
        ("friday", 4.0, 50.0),
        ("saturday", 5.0, 30.0),
        ("sunday", 6.0, 30.0),
        ("next monday", 7.0, 50.0),
    ];
    for (name, day, want) in cases {
        assert!(close(noon(day), want), "case `{name}`: {}", noon(day));
    }
    // The weekend is whole UTC days: Friday 23:59:59 is a weekday, Saturday 00:00 is not.
    assert!(close(m.rate_at(hours(5.0 * 24.0) - secs(1.0)), 50.0));
    assert!(close(m.rate_at(hours(5.0 * 24.0)), 30.0));
}

#[test]
fn trend_grows_linearly_and_stops_at_zero() {
    let up = compile(json!({"synthetic": {"base_rate_per_s": 10.0, "trend_per_day": 0.1}}));
    assert!(close(up.rate_at(Duration::ZERO), 10.0));
    assert!(close(up.rate_at(hours(24.0)), 11.0));
    assert!(close(up.rate_at(hours(240.0)), 20.0));
    let down = compile(json!({"synthetic": {"base_rate_per_s": 10.0, "trend_per_day": -0.5}}));
    assert!(close(down.rate_at(hours(24.0)), 5.0));
    assert_eq!(down.rate_at(hours(48.0)), 0.0);
    assert_eq!(down.rate_at(hours(100.0)), 0.0);
}

#[test]
fn flash_crowd_multiplies_only_inside_its_window() {
    let m = compile(json!({"synthetic": {
        "base_rate_per_s": 10.0,
        "flash_crowds": [{"at_s": 1000.0, "duration_s": 600.0, "multiplier": 5.0, "ramp_s": 100.0}]
    }}));
    let cases = [
        ("before", 999.999, 10.0),
        ("window start, ramp at 0", 1000.0, 10.0),
        ("half way up the ramp", 1050.0, 30.0),
        ("full strength", 1100.0, 50.0),
        ("still full", 1500.0, 50.0),
        ("half way down", 1550.0, 30.0),
        ("window end is outside", 1600.0, 10.0),
        ("after", 5000.0, 10.0),
    ];
    for (name, t, want) in cases {
        let got = m.rate_at(secs(t));
        assert!(close(got, want), "case `{name}`: {got}");
    }
}

#[test]
fn flash_crowd_without_ramp_is_a_step_and_crowds_multiply() {
    let m = compile(json!({"synthetic": {
        "base_rate_per_s": 2.0,
        "flash_crowds": [
            {"at_s": 60.0, "duration_s": 60.0, "multiplier": 3.0},
            {"at_s": 90.0, "duration_s": 60.0, "multiplier": 0.5}
        ]
    }}));
    let cases = [
        (59.9, 2.0),
        (60.0, 6.0),
        (89.9, 6.0),
        (90.0, 3.0),
        (120.0, 1.0),
        (150.0, 2.0),
    ];
    for (t, want) in cases {
        assert!(close(m.rate_at(secs(t)), want), "t = {t}");
    }
}

fn noisy(seed: u64) -> LoadModel {
    compile_at(
        json!({"synthetic": {"base_rate_per_s": 100.0, "noise_sd": 0.2, "noise_bucket_s": 10.0}}),
        seed,
        WEDNESDAY,
    )
}

#[test]
fn noise_is_a_function_of_seed_and_bucket() {
    let times: Vec<Duration> = (0..500).map(|i| secs(f64::from(i) * 7.3)).collect();
    let a = noisy(42);
    let b = noisy(42);
    let forward: Vec<f64> = times.iter().map(|&t| a.rate_at(t)).collect();
    let mut backward: Vec<f64> = times.iter().rev().map(|&t| b.rate_at(t)).collect();
    backward.reverse();
    assert_eq!(forward, backward, "same seed, other order");
    let again: Vec<f64> = times.iter().map(|&t| a.rate_at(t)).collect();
    assert_eq!(forward, again, "asking twice");
    let other: Vec<f64> = times.iter().map(|&t| noisy(43).rate_at(t)).collect();
    assert_ne!(forward, other, "another seed");
    // Held within a bucket, redrawn across buckets.
    assert_eq!(a.rate_at(secs(20.0)), a.rate_at(secs(29.999)));
    assert_ne!(a.rate_at(secs(20.0)), a.rate_at(secs(30.0)));
}

#[test]
fn noise_has_mean_one_and_the_configured_spread() {
    let m = noisy(7);
    let n = 20_000;
    let factors: Vec<f64> = (0..n)
        .map(|i| m.rate_at(secs(f64::from(i) * 10.0)) / 100.0)
        .collect();
    let mean = factors.iter().sum::<f64>() / f64::from(n);
    let sd = (factors.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / f64::from(n)).sqrt();
    // Standard error of the mean is 0.2 / sqrt(20000) ≈ 0.0014.
    assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    assert!((sd - 0.2).abs() < 0.01, "sd {sd}");
    assert!(factors.iter().all(|&f| f > 0.0));
}

#[test]
fn another_component_does_not_shift_the_stream() {
    let spec = json!({"synthetic": {"base_rate_per_s": 100.0, "noise_sd": 0.3}});
    let dir = traces_dir();
    let build = |component: &str| {
        let spec: LoadSpec = serde_json::from_value(spec.clone()).expect("valid");
        let ctx = LoadContext {
            at: "load",
            seed: Seed::new(5),
            component,
            start: ts(WEDNESDAY),
            trace_dir: &dir,
        };
        LoadModel::compile(spec, &ctx).expect("valid")
    };
    let a1 = build("load/a");
    let _b = build("load/b");
    let a2 = build("load/a");
    let t = secs(12_345.0);
    assert_eq!(a1.rate_at(t), a2.rate_at(t));
    assert_ne!(a1.rate_at(t), build("load/b").rate_at(t));
}

proptest! {
    #[test]
    fn synthetic_rate_is_never_negative(
        base in 0.0..1e4f64,
        diurnal in 0.0..=1.0f64,
        peak in 0.0..24.0f64,
        weekly in 0.0..=1.0f64,
        trend in -2.0..2.0f64,
        noise in 0.0..=2.0f64,
        multiplier in 0.0..10.0f64,
        seed in any::<u64>(),
        t in 0.0..3e7f64,
    ) {
        let m = compile_at(json!({"synthetic": {
            "base_rate_per_s": base, "diurnal_amplitude": diurnal, "peak_hour": peak,
            "weekly_amplitude": weekly, "trend_per_day": trend, "noise_sd": noise,
            "flash_crowds": [{"at_s": 100.0, "duration_s": 1e6, "multiplier": multiplier, "ramp_s": 10.0}]
        }}), seed, WEDNESDAY);
        let r = m.rate_at(secs(t));
        prop_assert!(r.is_finite() && r >= 0.0, "rate {}", r);
    }
}

#[test]
fn every_spec_problem_is_reported_with_its_path() {
    let got = errors(json!({"synthetic": {
        "base_rate_per_s": -1.0,
        "diurnal_amplitude": 1.5,
        "peak_hour": 24.0,
        "weekly_amplitude": -0.1,
        "noise_sd": 3.0,
        "noise_bucket_s": 0.0,
        "flash_crowds": [
            {"at_s": 10.0, "duration_s": 100.0, "multiplier": 2.0, "ramp_s": 60.0},
            {"at_s": -5.0, "duration_s": 0.0, "multiplier": -1.0}
        ]
    }}));
    let want = [
        "load.synthetic.base_rate_per_s: expected a rate of at least 0 per second, found `-1`",
        "load.synthetic.diurnal_amplitude: expected a share in 0..=1, found `1.5`",
        "load.synthetic.peak_hour: expected an hour in 0..24, found `24`",
        "load.synthetic.weekly_amplitude: expected a share in 0..=1, found `-0.1`",
        "load.synthetic.noise_sd: expected a relative standard deviation in 0..=2, found `3`",
        "load.synthetic.noise_bucket_s: expected a bucket above 0 seconds, found `0`",
        "load.synthetic.flash_crowds[0].ramp_s: expected a ramp of at most half of `duration_s` (`50`), found `60`",
        "load.synthetic.flash_crowds[1].at_s: expected a start of at least 0 seconds, found `-5`",
        "load.synthetic.flash_crowds[1].duration_s: expected a duration above 0 seconds, found `0`",
        "load.synthetic.flash_crowds[1].multiplier: expected a multiplier of at least 0, found `-1`",
    ];
    assert_eq!(got, want);
}

#[test]
fn unknown_spec_keys_are_rejected() {
    let cases = [
        (
            "synthetic",
            json!({"synthetic": {"base_rate_per_s": 1.0, "peak": 3}}),
            "unknown field `peak`",
        ),
        (
            "trace",
            json!({"trace": {"path": "x.csv", "looping": true}}),
            "unknown field `looping`",
        ),
        (
            "kind",
            json!({"replay": {"path": "x.csv"}}),
            "unknown variant `replay`",
        ),
    ];
    for (name, spec, want) in cases {
        let err = serde_json::from_value::<LoadSpec>(spec).expect_err(name);
        assert!(err.to_string().contains(want), "case `{name}`: {err}");
    }
}

// -------------------------------------------------------------------------------------
// Trace replay

const FIXTURE: &str = "fixtures/three-buckets-1min.csv";

fn replay(extra: serde_json::Value) -> LoadModel {
    let mut spec = json!({"path": FIXTURE});
    if let (Some(spec), serde_json::Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    compile(json!({ "trace": spec }))
}

#[test]
fn trace_fixture_replays_bucket_by_bucket() {
    let trace = Trace::load(&traces_dir().join(FIXTURE)).expect("fixture is valid");
    assert_eq!(trace.bucket(), Duration::from_secs(60));
    assert_eq!(trace.rates(), [10.0, 20.0, 40.0]);
    assert_eq!(trace.span(), Duration::from_secs(180));
    let m = replay(json!({}));
    let cases = [
        (0.0, 10.0),
        (59.9, 10.0),
        (60.0, 20.0),
        (179.9, 40.0),
        (180.0, 0.0),
    ];
    for (t, want) in cases {
        assert_eq!(m.rate_at(secs(t)), want, "t = {t}");
    }
    assert_eq!(m.span(), Some(Duration::from_secs(180)));
}

#[test]
fn trace_linear_interpolation_runs_between_bucket_midpoints() {
    let m = replay(json!({"interpolation": "linear"}));
    let cases = [
        ("before the first midpoint", 10.0, 10.0),
        ("first midpoint", 30.0, 10.0),
        ("boundary", 60.0, 15.0),
        ("second midpoint", 90.0, 20.0),
        ("three quarters to the third", 135.0, 35.0),
        ("after the last midpoint", 170.0, 40.0),
        ("past the end", 180.0, 0.0),
    ];
    for (name, t, want) in cases {
        assert!(close(m.rate_at(secs(t)), want), "case `{name}`");
    }
}

#[test]
fn trace_scale_and_shift() {
    let m = replay(json!({"scale": 2.5, "time_shift_s": 60.0}));
    assert_eq!(m.rate_at(secs(0.0)), 50.0);
    assert_eq!(m.rate_at(secs(60.0)), 100.0);
    assert_eq!(m.rate_at(secs(120.0)), 0.0);
    assert_eq!(m.span(), Some(Duration::from_secs(120)));
    let late = replay(json!({"time_shift_s": -30.0}));
    assert_eq!(late.rate_at(secs(0.0)), 0.0, "before the trace starts");
    assert_eq!(late.rate_at(secs(30.0)), 10.0);
}

#[test]
fn trace_loops_end_to_end() {
    let m = replay(json!({"loop": true}));
    assert_eq!(m.span(), None);
    for (t, want) in [(180.0, 10.0), (250.0, 20.0), (359.0, 40.0), (1800.0, 10.0)] {
        assert_eq!(m.rate_at(secs(t)), want, "t = {t}");
    }
    let shifted = replay(json!({"loop": true, "time_shift_s": -60.0}));
    assert_eq!(shifted.rate_at(secs(0.0)), 40.0, "wraps before the start");
    let linear = replay(json!({"loop": true, "interpolation": "linear"}));
    assert!(close(linear.rate_at(secs(0.0)), 25.0), "last to first");
    assert!(close(linear.rate_at(secs(180.0)), 25.0));
}

#[test]
fn trace_flash_crowd_applies_in_scenario_time() {
    let m = replay(json!({
        "time_shift_s": 60.0,
        "flash_crowds": [{"at_s": 0.0, "duration_s": 60.0, "multiplier": 3.0}]
    }));
    assert_eq!(m.rate_at(secs(0.0)), 60.0);
    assert_eq!(m.rate_at(secs(60.0)), 40.0);
}

struct BadCsv {
    name: &'static str,
    text: &'static str,
    want: &'static str,
}

const BAD_CSVS: &[BadCsv] = &[
    BadCsv {
        name: "bad header",
        text: "time,rate\n0,1\n60,2\n",
        want: "t.csv:1: expected the header `t_seconds,rate`, found `time,rate`",
    },
    BadCsv {
        name: "empty file",
        text: "",
        want: "t.csv:1: expected the header `t_seconds,rate`, found ``",
    },
    BadCsv {
        name: "non-numeric rate",
        text: "t_seconds,rate\n0,1\n60,abc\n",
        want: "t.csv:3: column `rate`: expected a finite number, found `abc`",
    },
    BadCsv {
        name: "non-numeric time",
        text: "t_seconds,rate\n0,1\n1m,2\n",
        want: "t.csv:3: column `t_seconds`: expected a finite number, found `1m`",
    },
    BadCsv {
        name: "not finite",
        text: "t_seconds,rate\n0,NaN\n",
        want: "t.csv:2: column `rate`: expected a finite number, found `NaN`",
    },
    BadCsv {
        name: "negative rate",
        text: "t_seconds,rate\n0,1\n60,-0.5\n",
        want: "t.csv:3: column `rate`: expected a rate of at least 0, found `-0.5`",
    },
    BadCsv {
        name: "gap",
        text: "t_seconds,rate\n0,1\n60,2\n120,3\n240,4\n",
        want: "t.csv:5: column `t_seconds`: expected `180` (buckets of 60 s with no gaps), found `240`",
    },
    BadCsv {
        name: "repeated bucket",
        text: "t_seconds,rate\n0,1\n60,2\n60,3\n",
        want: "t.csv:4: column `t_seconds`: expected `120` (buckets of 60 s with no gaps), found `60`",
    },
    BadCsv {
        name: "not starting at zero",
        text: "t_seconds,rate\n60,1\n120,2\n",
        want: "t.csv:2: column `t_seconds`: expected the first bucket to start at `0`, found `60`",
    },
    BadCsv {
        name: "second bucket not after the first",
        text: "t_seconds,rate\n0,1\n0,2\n",
        want: "t.csv:3: column `t_seconds`: expected a time after `0` (it sets the bucket size), found `0`",
    },
    BadCsv {
        name: "three columns",
        text: "t_seconds,rate\n0,1,9\n",
        want: "t.csv:2: expected 2 columns (`t_seconds,rate`), found 3",
    },
    BadCsv {
        name: "blank line inside",
        text: "t_seconds,rate\n0,1\n\n120,2\n",
        want: "t.csv:3: expected 2 columns (`t_seconds,rate`), found 0",
    },
    BadCsv {
        name: "one row",
        text: "t_seconds,rate\n0,1\n",
        want: "t.csv: expected at least 2 rows after the header, found 1",
    },
];

#[test]
fn bad_csvs_are_located() {
    for case in BAD_CSVS {
        let err = Trace::parse("t.csv", case.text).expect_err(case.name);
        assert_eq!(err.to_string(), case.want, "case `{}`", case.name);
    }
}

#[test]
fn csv_variants_that_are_accepted() {
    let cases = [
        (
            "crlf and trailing blank lines",
            "t_seconds,rate\r\n0,1\r\n60,2\r\n\r\n",
        ),
        ("byte-order mark", "\u{feff}t_seconds,rate\n0,1\n60,2"),
        (
            "decimal times",
            "t_seconds,rate\n0.0,1\n60.0,2\n120.000,3\n",
        ),
    ];
    for (name, text) in cases {
        let t = Trace::parse("t.csv", text).unwrap_or_else(|e| panic!("case `{name}`: {e}"));
        assert_eq!(t.bucket(), Duration::from_secs(60), "case `{name}`");
    }
}

#[test]
fn missing_and_broken_trace_files_name_the_spec_path() {
    let got = errors(json!({"trace": {"path": "no-such.csv", "scale": 0.0}}));
    let dir = traces_dir().join("no-such.csv");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0],
        "load.trace.scale: expected a scale above 0, found `0`"
    );
    assert!(
        got[1].starts_with(&format!(
            "load.trace.path: cannot use trace `{}`: {}: cannot read the trace file: ",
            dir.display(),
            dir.display()
        )),
        "{}",
        got[1]
    );
    assert_eq!(
        errors(json!({"trace": {"path": ""}})),
        ["load.trace.path: expected a trace file path, found an empty string"]
    );
}

#[test]
fn copied_traces_load_with_their_documented_shape() {
    // (file, bucket seconds, rows) from simulations/traces/SOURCES.md.
    let cases = [
        ("nasa-http-1995-07-1min.csv", 60, 39_692),
        ("worldcup98-1min.csv", 60, 125_310),
        ("wikipedia-2009-1h.csv", 3600, 6_327),
        ("appserver-cluster-2015-2020-1h.csv", 3600, 44_046),
        ("nab-twitter-aapl-2015-5min.csv", 300, 15_902),
    ];
    for (file, bucket, rows) in cases {
        let t = Trace::load(&traces_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(t.bucket(), Duration::from_secs(bucket), "{file}");
        assert_eq!(t.rates().len(), rows, "{file}");
    }
}
