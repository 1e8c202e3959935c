//! Schedules: a cron expression (croner's syntax: five fields, optionally seconds first)
//! read in a time zone (an IANA name such as `Europe/Paris`; `UTC` by default), and when
//! it fires next. Missed runs are coalesced: the next run is always the first occurrence
//! *after now*, however many were missed while nothing ran.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

/// Why a schedule was refused (the message is safe to show to clients).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("not a valid cron expression")]
    Expression,
    #[error("unknown time zone (use an IANA name such as Europe/Paris)")]
    TimeZone,
    #[error("the cron expression never fires")]
    Never,
}

impl CronSchedule {
    pub fn parse(expression: &str, time_zone: &str) -> Result<Self, CronError> {
        let cron = Cron::from_str(expression.trim()).map_err(|_| CronError::Expression)?;
        let zone: Tz = time_zone.trim().parse().map_err(|_| CronError::TimeZone)?;
        Ok(Self { cron, zone })
    }

    /// The first time the schedule fires strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, CronError> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .map(|next| next.with_timezone(&Utc))
            .map_err(|_| CronError::Never)
    }

    /// Parses and checks that the schedule fires at all (after `now`).
    pub fn validate(
        expression: &str,
        time_zone: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, CronError> {
        Self::parse(expression, time_zone)?.next_after(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn next_runs_in_utc_and_in_a_time_zone() {
        let every_quarter = CronSchedule::parse("*/15 * * * *", "UTC").expect("parses");
        assert_eq!(
            every_quarter.next_after(at("2027-01-10T10:05:00Z")),
            Ok(at("2027-01-10T10:15:00Z"))
        );
        assert_eq!(
            every_quarter.next_after(at("2027-01-10T10:15:00Z")),
            Ok(at("2027-01-10T10:30:00Z"))
        );
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        let paris = CronSchedule::parse("0 9 * * *", "Europe/Paris").expect("parses");
        assert_eq!(
            paris.next_after(at("2027-01-10T10:00:00Z")),
            Ok(at("2027-01-11T08:00:00Z"))
        );
        assert_eq!(
            paris.next_after(at("2027-07-10T10:00:00Z")),
            Ok(at("2027-07-11T07:00:00Z"))
        );
    }

    #[test]
    fn refuses_bad_expressions_and_zones() {
        assert_eq!(
            CronSchedule::parse("every day", "UTC").err(),
            Some(CronError::Expression)
        );
        assert_eq!(
            CronSchedule::parse("0 3 * * *", "Mars/Olympus").err(),
            Some(CronError::TimeZone)
        );
        assert_eq!(
            CronSchedule::parse("61 * * * *", "UTC").err(),
            Some(CronError::Expression)
        );
    }
}
