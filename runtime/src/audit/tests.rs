//! Tests across the audit log's parts: write, crash, recover, read, follow, explain.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::{
    Action, Actor, Clock, Confidence, Decision, Factor, ModelId, OnTimeout, Outcome, Override,
    OverrideKind, Proposal, Reason, ReasonCode, Role, SimClock, Target, Timestamp,
};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}

fn sim_clock() -> Arc<dyn Clock> {
    Arc::new(SimClock::new(ts("2026-11-29T08:00:00Z")))
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("audit").join("decisions.jsonl")
}

fn open_writer(path: &Path) -> AuditWriter {
    AuditWriter::open(path, FsyncPolicy::Never, sim_clock()).expect("writer opens")
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("log exists");
    f.write_all(bytes).expect("raw append");
}

fn encoded_line(seq: u64, record: &AuditRecord) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&AuditLine {
        seq,
        record: record.clone(),
    })
    .expect("json");
    bytes.push(b'\n');
    bytes
}

fn scale_proposal() -> Proposal {
    Proposal {
        id: "p-7".into(),
        agent: "scaler".into(),
        target: Target::new("checkout"),
        action: Action::Scale { replicas: 6 },
        confidence: Confidence::try_new(0.9).expect("valid confidence"),
        rationale: vec![
            Factor {
                name: "forecast_p90_rps".into(),
                value: 812.0,
                note: Some("rising since 07:40".into()),
            },
            Factor {
                name: "cpu_p95".into(),
                value: 0.82,
                note: None,
            },
        ],
        model: Some(ModelId {
            name: "forecast-lstm".into(),
            version: "1.2.0".into(),
        }),
        fallback: None,
        at: ts("2026-11-29T07:59:58Z"),
        trace: None,
        inference: None,
        rule: None,
    }
}

fn pending_decision() -> Decision {
    Decision {
        id: "d-p-7".into(),
        at: ts("2026-11-29T08:00:00Z"),
        target: Target::new("checkout"),
        agent: "scaler".into(),
        action: Some(Action::Scale { replicas: 6 }),
        proposals: vec![scale_proposal()],
        outcome: Outcome::Pending {
            until: ts("2026-11-29T08:05:00Z"),
            on_timeout: OnTimeout::Reject,
        },
        reasons: vec![Reason::new(
            ReasonCode::ApprovalRequired,
            "scaling `checkout` above 5 replicas needs an operator's approval",
        )],
        policy_revision: "r42".into(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
    }
}

fn approval() -> Override {
    Override {
        id: "o-1".into(),
        kind: OverrideKind::Approve {
            decision: "d-p-7".into(),
        },
        by: Actor {
            name: "alice".into(),
            role: Role::Operator,
        },
        reason: "campaign starts at 08:00".into(),
        at: ts("2026-11-29T08:01:30Z"),
        until: None,
    }
}

fn approved_decision() -> Decision {
    let mut d = pending_decision();
    d.at = ts("2026-11-29T08:01:30Z");
    d.outcome = Outcome::Enacted;
    d.reasons.push(Reason::new(
        ReasonCode::Approved,
        "approved by `alice` (override `o-1`)",
    ));
    d.reasons.push(Reason::new(
        ReasonCode::Enacted,
        "scaled `checkout` from 4 to 6 replicas",
    ));
    d
}

/// A rule-based decision on another target, with no trace.
fn router_decision(n: u32) -> Decision {
    let proposal = Proposal {
        id: format!("p-r{n}"),
        agent: "router".into(),
        target: Target::new("payments"),
        action: Action::Alert {
            severity: crate::Severity::Warning,
            text: "error rate 4%".into(),
        },
        confidence: Confidence::try_new(0.5).expect("valid confidence"),
        rationale: Vec::new(),
        model: None,
        fallback: Some("model `route-gbm` timed out after 50ms".into()),
        at: ts("2026-11-29T08:00:10Z"),
        trace: None,
        inference: None,
        rule: None,
    };
    Decision {
        id: format!("d-p-r{n}"),
        at: ts("2026-11-29T08:00:10Z"),
        target: Target::new("payments"),
        agent: "router".into(),
        action: None,
        proposals: vec![proposal],
        outcome: Outcome::Rejected,
        reasons: vec![Reason::new(ReasonCode::ModeOff, "agent `router` is off")],
        policy_revision: "r42".into(),
        trace_id: None,
    }
}

fn records(n: u32) -> Vec<AuditRecord> {
    (0..n)
        .map(|i| AuditRecord::Decision(router_decision(i)))
        .collect()
}

fn seqs(lines: &[AuditLine]) -> Vec<u64> {
    lines.iter().map(|l| l.seq).collect()
}

// ---- record ----

#[test]
fn record_json_form_is_stable() {
    let line = AuditLine {
        seq: 7,
        record: AuditRecord::Override(approval()),
    };
    assert_eq!(
        serde_json::to_string(&line).expect("json"),
        concat!(
            r#"{"seq":7,"record":{"type":"override","id":"o-1","kind":{"approve":{"decision":"d-p-7"}},"#,
            r#""by":{"name":"alice","role":"operator"},"reason":"campaign starts at 08:00","#,
            r#""at":"2026-11-29T08:01:30.000Z"}}"#
        )
    );
}

#[test]
fn borrowed_line_encodes_like_owned_line() {
    let record = AuditRecord::Decision(pending_decision());
    let owned = serde_json::to_string(&AuditLine {
        seq: 3,
        record: record.clone(),
    })
    .expect("json");
    let borrowed = serde_json::to_string(&record::AuditLineRef {
        seq: 3,
        record: &record,
    })
    .expect("json");
    assert_eq!(owned, borrowed);
    let back: AuditLine = serde_json::from_str(&owned).expect("reads back");
    assert_eq!(back.record, record);
}

// ---- writer and reader ----

#[test]
fn reopen_continues_seq_and_reads_back_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(5);
    {
        let mut w = open_writer(&path);
        assert_eq!(w.next_seq(), 1);
        for (i, r) in all[..3].iter().enumerate() {
            assert_eq!(w.append(r).expect("append"), i as u64 + 1);
        }
    }
    let mut w = open_writer(&path);
    assert_eq!(w.next_seq(), 4);
    assert_eq!(w.recovered_torn_bytes(), 0);
    assert_eq!(w.append(&all[3]).expect("append"), 4);
    assert_eq!(w.append(&all[4]).expect("append"), 5);
    drop(w);

    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 2, 3, 4, 5]);
    let read: Vec<AuditRecord> = scan.lines.iter().map(|l| l.record.clone()).collect();
    assert_eq!(read, all);
    assert_eq!(scan.torn, None);
    assert!(scan.corrupt.is_empty(), "{:?}", scan.corrupt);
    assert_eq!(scan.line_count, 5);
    assert_eq!(
        scan.end_offset,
        fs::metadata(&path).expect("metadata").len()
    );
}

#[test]
fn torn_tail_is_reported_then_dropped_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(4);
    {
        let mut w = open_writer(&path);
        for r in &all[..3] {
            w.append(r).expect("append");
        }
    }
    let whole = fs::metadata(&path).expect("metadata").len();
    // A crash halfway through writing record 4.
    let fourth = encoded_line(4, &all[3]);
    let half = &fourth[..fourth.len() / 2];
    append_raw(&path, half);

    let scan = AuditReader::read_all(&path).expect("a torn tail is not fatal");
    assert_eq!(seqs(&scan.lines), [1, 2, 3]);
    assert_eq!(
        scan.torn,
        Some(TornLine {
            line_no: 4,
            offset: whole,
            bytes: half.len() as u64
        })
    );
    assert!(scan.corrupt.is_empty(), "{:?}", scan.corrupt);
    assert_eq!(scan.end_offset, whole);

    let mut w = open_writer(&path);
    assert_eq!(w.recovered_torn_bytes(), half.len() as u64);
    assert_eq!(fs::metadata(&path).expect("metadata").len(), whole);
    assert_eq!(w.append(&all[3]).expect("append"), 4);
    drop(w);

    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 2, 3, 4]);
    assert_eq!(scan.lines[3].record, all[3]);
    assert_eq!(scan.torn, None);
    assert!(scan.corrupt.is_empty(), "{:?}", scan.corrupt);
}

#[test]
fn every_crash_point_recovers_to_the_records_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = records(3);
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for (i, r) in all.iter().enumerate() {
        bytes.extend(encoded_line(i as u64 + 1, r));
        ends.push(bytes.len());
    }
    let extra = AuditRecord::Override(approval());
    for cut in 0..=bytes.len() {
        let path = dir.path().join(format!("cut-{cut}.jsonl"));
        fs::write(&path, &bytes[..cut]).expect("write prefix");
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        // A cut just before a newline leaves a whole record without it: kept, not torn.
        let kept = ends.iter().filter(|&&e| e - 1 <= cut).count();
        let boundary = if whole == 0 { 0 } else { ends[whole - 1] };

        let scan = AuditReader::read_all(&path).expect("reads");
        assert_eq!(scan.lines.len(), kept, "cut {cut}");
        assert!(scan.corrupt.is_empty(), "cut {cut}: {:?}", scan.corrupt);
        assert_eq!(
            scan.torn.is_some(),
            cut != boundary && kept == whole,
            "cut {cut}"
        );

        let mut w = open_writer(&path);
        assert_eq!(
            w.append(&extra).expect("append"),
            kept as u64 + 1,
            "cut {cut}"
        );
        drop(w);
        let scan = AuditReader::read_all(&path).expect("reads");
        let expected: Vec<u64> = (1..=kept as u64 + 1).collect();
        assert_eq!(seqs(&scan.lines), expected, "cut {cut}");
        assert_eq!(
            scan.lines.last().map(|l| &l.record),
            Some(&extra),
            "cut {cut}"
        );
        assert_eq!(scan.torn, None, "cut {cut}");
        assert!(scan.corrupt.is_empty(), "cut {cut}: {:?}", scan.corrupt);
    }
}

#[test]
fn corrupt_middle_line_is_reported_and_later_lines_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(4);
    {
        let mut w = open_writer(&path);
        w.append(&all[0]).expect("append");
        w.append(&all[1]).expect("append");
    }
    let offset = fs::metadata(&path).expect("metadata").len();
    append_raw(&path, b"{not json}\n");
    {
        let mut w = open_writer(&path);
        // The corrupt line keeps its number: seq stays the line number.
        assert_eq!(w.append(&all[2]).expect("append"), 4);
        assert_eq!(w.append(&all[3]).expect("append"), 5);
    }

    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 2, 4, 5]);
    assert_eq!(
        scan.corrupt,
        [CorruptLine {
            line_no: 3,
            offset,
            message: "key must be a string at line 1 column 2".into(),
        }]
    );
    assert_eq!(scan.torn, None);
    assert_eq!(scan.line_count, 5);
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(2);
    open_writer(&path).append(&all[0]).expect("append");
    append_raw(&path, b"\n");
    open_writer(&path).append(&all[1]).expect("append");
    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 3]);
    assert!(scan.corrupt.is_empty(), "{:?}", scan.corrupt);
}

#[test]
fn whole_last_record_without_newline_is_kept_and_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(4);
    {
        let mut w = open_writer(&path);
        w.append(&all[0]).expect("append");
        w.append(&all[1]).expect("append");
    }
    let third = encoded_line(3, &all[2]);
    append_raw(&path, &third[..third.len() - 1]);

    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 2, 3]);
    assert_eq!(scan.torn, None);

    let mut w = open_writer(&path);
    assert_eq!(w.recovered_torn_bytes(), 0);
    assert_eq!(w.append(&all[3]).expect("append"), 4);
    drop(w);
    let text = fs::read_to_string(&path).expect("reads");
    assert_eq!(text.matches('\n').count(), 4);
    assert!(text.ends_with('\n'));
    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 2, 3, 4]);
}

#[test]
fn oversized_line_is_corrupt_without_being_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    open_writer(&path).append(&records(1)[0]).expect("append");
    let mut big = vec![b'x'; MAX_LINE_BYTES + 10];
    big.push(b'\n');
    append_raw(&path, &big);
    open_writer(&path).append(&records(1)[0]).expect("append");
    let scan = AuditReader::read_all(&path).expect("reads");
    assert_eq!(seqs(&scan.lines), [1, 3]);
    assert_eq!(scan.corrupt.len(), 1);
    assert_eq!(
        scan.corrupt[0].message,
        format!("line is longer than {MAX_LINE_BYTES} bytes")
    );
}

#[test]
fn non_finite_numbers_are_refused_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let mut w = open_writer(&path);
    let mut d = pending_decision();
    d.proposals[0].rationale[1].value = f64::NAN;
    let err = w
        .append(&AuditRecord::Decision(d))
        .expect_err("NaN cannot be audited");
    assert_eq!(
        err.to_string(),
        format!(
            "audit log `{}`: record 1: `proposals[0].rationale[1].value`: expected a finite number, found NaN or an infinity",
            path.display()
        )
    );
    assert_eq!(w.next_seq(), 1);
    assert_eq!(fs::metadata(&path).expect("metadata").len(), 0);
    // Still usable: the refusal wrote nothing.
    assert_eq!(
        w.append(&AuditRecord::Decision(pending_decision()))
            .expect("append"),
        1
    );
}

#[test]
fn errors_name_the_log_and_what_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.jsonl");
    let err = AuditReader::read_all(&missing).expect_err("no such file");
    assert_eq!(
        err.to_string(),
        format!("audit log `{}`: cannot open", missing.display())
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the io error as its source"
    );

    let file = dir.path().join("plain-file");
    fs::write(&file, b"").expect("write");
    let under_file = file.join("audit.jsonl");
    let err = AuditWriter::open(&under_file, FsyncPolicy::Never, sim_clock())
        .expect_err("a file is not a directory");
    assert_eq!(
        err.to_string(),
        format!(
            "audit log `{}`: cannot create directory `{}`",
            under_file.display(),
            file.display()
        )
    );
}

// ---- fsync policy ----

#[test]
fn interval_policy_fsyncs_by_the_injected_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let clock = SimClock::new(ts("2026-11-29T08:00:00Z"));
    let policy = FsyncPolicy::Interval(Duration::from_secs(10));
    let mut w = AuditWriter::open(&path, policy, Arc::new(clock.clone())).expect("opens");
    let record = &records(1)[0];
    let mut syncs_after_each = Vec::new();
    for step_secs in [0, 5, 5, 0, 3, 7, 30] {
        clock.advance(Duration::from_secs(step_secs));
        w.append(record).expect("append");
        syncs_after_each.push(w.sync_count());
    }
    // Due at +10s (5 + 5), then at +20s (3 + 7 after that), then at +50s.
    assert_eq!(syncs_after_each, [0, 0, 1, 1, 1, 2, 3]);
    w.sync().expect("forced sync");
    assert_eq!(w.sync_count(), 4);
}

#[test]
fn every_record_and_never_policies_count_as_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, policy, expected) in [
        ("every_record", FsyncPolicy::EveryRecord, 3),
        ("never", FsyncPolicy::Never, 0),
    ] {
        let path = dir.path().join(format!("{name}.jsonl"));
        let mut w = AuditWriter::open(&path, policy, sim_clock()).expect("opens");
        for r in &records(3) {
            w.append(r).expect("append");
        }
        assert_eq!(w.sync_count(), expected, "policy `{name}`");
    }
}

// ---- follower ----

#[test]
fn follower_returns_new_lines_and_holds_a_partial_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(3);
    let mut w = open_writer(&path);
    w.append(&all[0]).expect("append");

    let mut follower = AuditFollower::new(&path, 0);
    assert_eq!(seqs(&follower.poll().expect("poll")), [1]);
    assert!(follower.poll().expect("poll").is_empty());

    w.append(&all[1]).expect("append");
    assert_eq!(seqs(&follower.poll().expect("poll")), [2]);

    let third = encoded_line(3, &all[2]);
    let (head, rest) = third.split_at(third.len() / 2);
    let before = follower.offset();
    append_raw(&path, head);
    assert!(
        follower.poll().expect("poll").is_empty(),
        "partial line returned early"
    );
    assert_eq!(follower.offset(), before);
    append_raw(&path, rest);
    let lines = follower.poll().expect("poll");
    assert_eq!(seqs(&lines), [3]);
    assert_eq!(lines[0].record, all[2]);
    assert!(follower.take_corrupt().is_empty());
}

#[test]
fn follower_reads_the_record_that_replaced_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(3);
    {
        let mut w = open_writer(&path);
        w.append(&all[0]).expect("append");
    }
    let scan = AuditReader::read_all(&path).expect("reads");
    let mut follower = AuditFollower::after_scan(&path, &scan);
    // A writer crashes mid-line...
    let torn = encoded_line(2, &all[1]);
    append_raw(&path, &torn[..torn.len() - 5]);
    assert!(follower.poll().expect("poll").is_empty());
    // ...and its successor truncates the tail and writes over it.
    let mut w = open_writer(&path);
    w.append(&all[2]).expect("append");
    let lines = follower.poll().expect("poll");
    assert_eq!(seqs(&lines), [2]);
    assert_eq!(lines[0].record, all[2]);
}

#[test]
fn follower_skips_corrupt_lines_and_reports_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(2);
    open_writer(&path).append(&all[0]).expect("append");
    let scan = AuditReader::read_all(&path).expect("reads");
    let mut follower = AuditFollower::after_scan(&path, &scan);
    let offset = scan.end_offset;
    append_raw(&path, b"garbage\n");
    open_writer(&path).append(&all[1]).expect("append");

    assert_eq!(seqs(&follower.poll().expect("poll")), [3]);
    let corrupt = follower.take_corrupt();
    assert_eq!(corrupt.len(), 1);
    assert_eq!((corrupt[0].line_no, corrupt[0].offset), (2, offset));
    assert!(follower.take_corrupt().is_empty(), "taken once");
}

#[test]
fn follower_ends_a_whole_line_without_double_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    let all = records(3);
    open_writer(&path).append(&all[0]).expect("append");
    let second = encoded_line(2, &all[1]);
    append_raw(&path, &second[..second.len() - 1]);
    let mut follower = AuditFollower::new(&path, 0);
    assert_eq!(seqs(&follower.poll().expect("poll")), [1, 2]);
    // The next writer adds the missing newline, then its record.
    open_writer(&path).append(&all[2]).expect("append");
    assert_eq!(seqs(&follower.poll().expect("poll")), [3]);
    assert!(follower.take_corrupt().is_empty());
}

#[test]
fn follower_reports_a_shrunk_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_path(&dir);
    open_writer(&path).append(&records(1)[0]).expect("append");
    let mut follower = AuditFollower::new(&path, 0);
    follower.poll().expect("poll");
    let read = follower.offset();
    fs::write(&path, b"").expect("truncate");
    let err = follower.poll().expect_err("file shrank");
    assert_eq!(
        err.to_string(),
        format!(
            "audit log `{}`: expected at least {read} bytes (already read), found 0; was it truncated or replaced?",
            path.display()
        )
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// However the bytes arrive, the follower ends up with exactly the lines a full read
    /// finds, each once.
    #[test]
    fn follower_sees_every_line_once_whatever_the_chunking(
        chunks in proptest::collection::vec(1usize..400, 1..40),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        fs::write(&path, b"").expect("create");
        let mut bytes = Vec::new();
        for (i, r) in records(4).iter().enumerate() {
            bytes.extend(encoded_line(i as u64 + 1, r));
        }
        let mut follower = AuditFollower::new(&path, 0);
        let mut seen = Vec::new();
        let mut written = 0;
        for size in chunks.iter().cycle() {
            if written == bytes.len() {
                break;
            }
            let end = (written + size).min(bytes.len());
            append_raw(&path, &bytes[written..end]);
            written = end;
            seen.extend(follower.poll().expect("poll"));
        }
        prop_assert_eq!(seqs(&seen), vec![1, 2, 3, 4]);
        prop_assert!(follower.take_corrupt().is_empty());
    }
}

// ---- explain and tail ----

fn story() -> Vec<AuditLine> {
    [
        AuditRecord::Decision(pending_decision()),
        AuditRecord::Decision(router_decision(1)),
        AuditRecord::Override(approval()),
        AuditRecord::Decision(approved_decision()),
    ]
    .into_iter()
    .zip(1..)
    .map(|(record, seq)| AuditLine { seq, record })
    .collect()
}

const EXPLAIN_PENDING_THEN_APPROVED: &str = "\
decision d-p-7: 3 records

record 1 of 3: seq 1 at 2026-11-29T08:00:00.000Z
target: checkout
agent: scaler
action: scale to 6 replicas
proposals:
  1. scaler: scale to 6 replicas, confidence 0.9, model forecast-lstm 1.2.0
     factor forecast_p90_rps = 812 (rising since 07:40)
     factor cpu_p95 = 0.82
reasons:
  1. [approval_required] scaling `checkout` above 5 replicas needs an operator's approval
outcome: pending approval until 2026-11-29T08:05:00.000Z, then reject
policy revision: r42
trace: 4bf92f3577b34da6a3ce929d0e0e4736

record 2 of 3: seq 3 at 2026-11-29T08:01:30.000Z
override o-1: approve d-p-7
by: alice (operator)
reason: campaign starts at 08:00

record 3 of 3: seq 4 at 2026-11-29T08:01:30.000Z
target: checkout
agent: scaler
action: scale to 6 replicas
proposals:
  1. scaler: scale to 6 replicas, confidence 0.9, model forecast-lstm 1.2.0
     factor forecast_p90_rps = 812 (rising since 07:40)
     factor cpu_p95 = 0.82
reasons:
  1. [approval_required] scaling `checkout` above 5 replicas needs an operator's approval
  2. [approved] approved by `alice` (override `o-1`)
  3. [enacted] scaled `checkout` from 4 to 6 replicas
outcome: enacted
policy revision: r42
trace: 4bf92f3577b34da6a3ce929d0e0e4736
";

const EXPLAIN_RULE_BASED: &str = "\
decision d-p-r1: 1 record

record 1 of 1: seq 2 at 2026-11-29T08:00:10.000Z
target: payments
agent: router
action: (none)
proposals:
  1. router: alert (Warning): error rate 4%, confidence 0.5, rules
     fallback: model `route-gbm` timed out after 50ms
reasons:
  1. [mode_off] agent `router` is off
outcome: rejected
policy revision: r42
trace: (not traced)
";

#[test]
fn explain_pending_then_approved_matches_exactly() {
    let text = explain_decision(&story(), "d-p-7").expect("known decision");
    assert_eq!(text, EXPLAIN_PENDING_THEN_APPROVED, "actual:\n{text}");
}

#[test]
fn explain_rule_based_untraced_decision_matches_exactly() {
    let text = explain_decision(&story(), "d-p-r1").expect("known decision");
    assert_eq!(text, EXPLAIN_RULE_BASED, "actual:\n{text}");
}

#[test]
fn explain_unknown_decision_is_none() {
    assert_eq!(explain_decision(&story(), "d-nope"), None);
}

#[test]
fn explain_escapes_control_characters() {
    let mut d = router_decision(1);
    d.reasons[0].message = "line one\nline two\u{1b}[31m".into();
    let lines = [AuditLine {
        seq: 1,
        record: AuditRecord::Decision(d),
    }];
    let text = explain_decision(&lines, "d-p-r1").expect("known decision");
    assert!(
        text.contains("  1. [mode_off] line one\\nline two\\u{1b}[31m\n"),
        "actual:\n{text}"
    );
}

fn scan_of(lines: Vec<AuditLine>) -> AuditScan {
    AuditScan {
        line_count: lines.len() as u64,
        lines,
        ..AuditScan::default()
    }
}

#[test]
fn tail_prints_the_last_records_one_per_line() {
    let scan = scan_of(story());
    assert_eq!(
        tail_lines(&scan, 3, &TailFilter::default()),
        "\
2026-11-29T08:00:10.000Z d-p-r1 payments router rejected -
2026-11-29T08:01:30.000Z o-1 override approve d-p-7 by alice: campaign starts at 08:00
2026-11-29T08:01:30.000Z d-p-7 checkout scaler enacted scale to 6 replicas
"
    );
    assert_eq!(tail_lines(&scan, 0, &TailFilter::default()), "");
    assert_eq!(
        tail_lines(&scan, 100, &TailFilter::default())
            .lines()
            .count(),
        4
    );
}

#[test]
fn tail_filter_keeps_approvals_of_the_decisions_it_shows() {
    struct Case {
        name: &'static str,
        filter: TailFilter,
        ids: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "everything",
            filter: TailFilter::default(),
            ids: &["d-p-7", "d-p-r1", "o-1", "d-p-7"],
        },
        Case {
            name: "agent scaler",
            filter: TailFilter {
                agent: Some("scaler".into()),
                ..TailFilter::default()
            },
            ids: &["d-p-7", "o-1", "d-p-7"],
        },
        Case {
            name: "agent router",
            filter: TailFilter {
                agent: Some("router".into()),
                ..TailFilter::default()
            },
            ids: &["d-p-r1"],
        },
        Case {
            name: "target payments",
            filter: TailFilter {
                target: Some(Target::new("payments")),
                ..TailFilter::default()
            },
            ids: &["d-p-r1"],
        },
        Case {
            name: "outcome enacted",
            filter: TailFilter {
                outcome: Some("enacted".into()),
                ..TailFilter::default()
            },
            ids: &["d-p-7"],
        },
    ];
    let scan = scan_of(story());
    for c in &cases {
        let text = tail_lines(&scan, 10, &c.filter);
        let ids: Vec<&str> = text
            .lines()
            .map(|l| l.split(' ').nth(1).expect("an id column"))
            .collect();
        assert_eq!(ids, c.ids, "case `{}`", c.name);
    }
}
