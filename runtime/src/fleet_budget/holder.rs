//! The budget holder: turns instances' usage reports into grants that never add up to
//! more than the fleet budget.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Grant, UsageReport};
use crate::clock::Timestamp;
use crate::target::Target;

/// How long an enacted action counts against `max_actions_per_hour`.
const HOUR: Duration = Duration::from_secs(3600);

/// What the holder does with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Publish this grant.
    Grant(Grant),
    /// The holder is new (or was idle, or learned of another holder's grant): it grants
    /// nothing until `until`, when every grant a previous holder made has expired.
    WarmingUp {
        /// When it starts granting.
        until: Timestamp,
    },
}

/// What the holder knows of one instance.
#[derive(Debug, Clone)]
struct Instance {
    /// When its latest report arrived (holder's clock).
    seen: Timestamp,
    report: UsageReport,
    /// Grants made to it that may still be in force there: (replicas, holder-side expiry).
    issued: Vec<(u64, Timestamp)>,
    /// The most its targets may have run since its latest report (see
    /// [`Instance::at_report`]), raised by every grant made after. Once it stops
    /// reporting, its targets nobody took over may run this many.
    peak: u64,
}

impl Instance {
    fn live(&self, now: Timestamp, lease: Duration) -> bool {
        now.since(self.seen) <= lease
    }

    /// The most it may run until its next report: what it ran when it reported, the grant
    /// it held then (it may scale up to it after reporting, and keep what it added after
    /// the grant expires), and every grant this holder made it that is still in force or
    /// came after that report.
    fn at_report(&self, now: Timestamp) -> u64 {
        let committed = self
            .issued
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(r, _)| *r)
            .max()
            .unwrap_or(0);
        let held = self.report.held.as_ref().map_or(0, |h| h.replicas);
        committed.max(held).max(self.report.used())
    }

    /// What it may use now, as far as this holder can tell.
    fn reserved(&self) -> u64 {
        self.peak.max(self.report.used())
    }
}

/// Who a target's last word came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The instance that owns it.
    Owner(String),
    /// An instance that owned it and let it go; nobody has claimed it since.
    Released,
}

/// The holder's state. One per instance; only the elected one receives reports.
#[derive(Debug, Clone)]
pub struct BudgetHolder {
    name: String,
    lease: Duration,
    /// When this holder started receiving reports (after an idle spell); it grants from
    /// one lease later.
    active_since: Option<Timestamp>,
    last_report: Option<Timestamp>,
    instances: BTreeMap<String, Instance>,
    /// Every target ever reported: its last known replicas and where that came from.
    targets: BTreeMap<Target, (u32, Source)>,
}

impl BudgetHolder {
    /// A holder named `name` (its instance) granting leases of `lease`.
    pub fn new(name: impl Into<String>, lease: Duration) -> Self {
        BudgetHolder {
            name: name.into(),
            lease,
            active_since: None,
            last_report: None,
            instances: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    /// How long its grants last.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Takes one report, received at `now`, and says what to answer.
    pub fn on_report(&mut self, report: UsageReport, now: Timestamp) -> Answer {
        self.note_activity(&report, now);
        let name = report.instance.clone();
        self.take_targets(&report);
        let lease = self.lease;
        let entry = self
            .instances
            .entry(name.clone())
            .or_insert_with(|| Instance {
                seen: now,
                report: report.clone(),
                issued: Vec::new(),
                peak: 0,
            });
        entry.seen = now;
        entry.report = report;
        entry.issued.retain(|(_, until)| *until > now);
        entry.peak = entry.at_report(now);
        self.forget(now, lease);
        let warm_from = self.active_since.unwrap_or(now).plus(self.lease);
        if now < warm_from {
            return Answer::WarmingUp { until: warm_from };
        }
        Answer::Grant(self.grant(&name, now))
    }

    /// Starts (or extends) the warm-up when this holder may not know every grant in force.
    fn note_activity(&mut self, report: &UsageReport, now: Timestamp) {
        // Reports stop reaching a holder that lost the election; one that gets them again
        // cannot know what the other granted meanwhile, so it waits like a new one. Every
        // instance reports five times a lease, so a pause of half a lease means that.
        if self
            .last_report
            .is_none_or(|last| now.since(last) > self.lease / 2)
        {
            self.active_since = Some(now);
        }
        // A grant from another holder still in force: wait until it has expired.
        if let Some(h) = report.held.as_ref().filter(|h| h.holder != self.name) {
            let until = now.plus(Duration::from_millis(h.remaining_ms));
            let warm_from = self.active_since.unwrap_or(now).plus(self.lease);
            if until > warm_from {
                self.active_since = Some(until.minus(self.lease));
            }
        }
        self.last_report = Some(now);
    }

    /// Records what a report says of targets: the ones it owns, and the last known
    /// replicas of the ones it let go (unless their new owner has spoken).
    fn take_targets(&mut self, report: &UsageReport) {
        let name = &report.instance;
        // Another instance's word on a target stands: a live owner knows better, and a
        // silent one is counted at its peak, which may be more than this count.
        for (t, r) in &report.released {
            let keep = self
                .targets
                .get(t)
                .is_some_and(|(_, src)| matches!(src, Source::Owner(o) if o != name));
            if !keep {
                self.targets.insert(t.clone(), (*r, Source::Released));
            }
        }
        for (t, (_, src)) in self.targets.iter_mut() {
            if *src == Source::Owner(name.clone()) && !report.targets.contains_key(t) {
                *src = Source::Released;
            }
        }
        for (t, r) in &report.targets {
            self.targets
                .insert(t.clone(), (*r, Source::Owner(name.clone())));
        }
    }

    /// Drops expired grants, and instances that are not live, hold no grant and whose
    /// targets all have someone else's word.
    fn forget(&mut self, now: Timestamp, lease: Duration) {
        for i in self.instances.values_mut() {
            i.issued.retain(|(_, until)| *until > now);
        }
        let targets = &self.targets;
        let hour_ago = now.minus(HOUR);
        self.instances.retain(|name, i| {
            i.live(now, lease)
                || !i.issued.is_empty()
                || i.report.actions.values().flatten().any(|t| *t > hour_ago)
                || targets
                    .values()
                    .any(|(_, src)| *src == Source::Owner(name.clone()))
        });
    }

    /// Replicas no live instance answers for: released targets at their last known count,
    /// and, for each instance that stopped reporting while owning targets nobody has taken
    /// over, the most it may have run.
    fn unclaimed(&self, now: Timestamp) -> u64 {
        let released: u64 = self
            .targets
            .values()
            .filter(|(_, src)| *src == Source::Released)
            .map(|(r, _)| u64::from(*r))
            .sum();
        let silent: u64 = self
            .instances
            .iter()
            .filter(|(_, i)| !i.live(now, self.lease))
            .filter(|(name, _)| {
                self.targets
                    .values()
                    .any(|(_, src)| *src == Source::Owner((*name).clone()))
            })
            .map(|(_, i)| i.peak)
            .sum();
        released + silent
    }

    fn grant(&mut self, name: &str, now: Timestamp) -> Grant {
        let lease = self.lease;
        let live: Vec<(&String, &Instance)> = self
            .instances
            .iter()
            .filter(|(_, i)| i.live(now, lease))
            .collect();
        // The strictest budget any live instance runs under (a rollout may mix revisions).
        let budget = live.iter().map(|(_, i)| i.report.budget).min().unwrap_or(0);
        let unclaimed = self.unclaimed(now);
        let others: u64 = live
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(_, i)| i.reserved())
            .sum();
        // Never more than what the others and the unclaimed replicas leave.
        let ceiling = u64::from(budget).saturating_sub(others + unclaimed);
        // The fair share of what nobody uses: demand first, the rest evenly.
        let used_all: u64 = live.iter().map(|(_, i)| i.report.used()).sum();
        let free = u64::from(budget).saturating_sub(used_all + unclaimed);
        let wanted_all: u64 = live.iter().map(|(_, i)| i.report.wanted).sum();
        let (used, wanted) = live
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map_or((0, 0), |(_, i)| (i.report.used(), i.report.wanted));
        let extra = if wanted_all >= free {
            // Integer shares of the free replicas, by demand.
            u64::try_from(u128::from(free) * u128::from(wanted) / u128::from(wanted_all.max(1)))
                .unwrap_or(0)
        } else {
            wanted + (free - wanted_all) / live.len().max(1) as u64
        };
        let replicas = (used + extra).min(ceiling);
        let fleet_used = used_all + unclaimed;
        let others_actions = self.others_actions(name, now);
        let (seq, sent_at) = match self.instances.get_mut(name) {
            Some(i) => {
                i.issued.push((replicas, now.plus(lease)));
                i.peak = i.peak.max(replicas);
                (i.report.seq, i.report.sent_at)
            }
            None => (0, now),
        };
        Grant {
            instance: name.to_owned(),
            seq,
            sent_at,
            replicas,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            holder: self.name.clone(),
            budget,
            fleet_used,
            others_actions,
        }
    }

    /// Actions every other instance it knows of (live or not: what they enacted still
    /// counts for the hour) had enacted in the last hour, by agent.
    fn others_actions(&self, name: &str, now: Timestamp) -> BTreeMap<String, u32> {
        let hour_ago = now.minus(HOUR);
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for (_, i) in self.instances.iter().filter(|(n, _)| n.as_str() != name) {
            for (agent, times) in &i.report.actions {
                let n = times.iter().filter(|t| **t > hour_ago).count();
                if n > 0 {
                    *out.entry(agent.clone()).or_default() += u32::try_from(n).unwrap_or(u32::MAX);
                }
            }
        }
        out
    }
}
