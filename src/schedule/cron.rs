//! Cron schedules (5 fields, or 6 with seconds) on top of the `cron` crate, which wants the
//! seconds field: a 5-field expression fires at second 0.

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    pub expr: String,
    inner: cron::Schedule,
}

/// Parses `*/5 * * * *` (5 fields) or `0 */5 * * * *` (6 fields, seconds first).
pub fn parse(expr: &str) -> Result<CronSchedule, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {}", expr.trim()),
        6 => expr.trim().to_string(),
        n => return Err(format!("schedule `{expr}` has {n} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)")),
    };
    let inner =
        cron::Schedule::from_str(&full).map_err(|e| format!("invalid schedule `{expr}`: {e}"))?;
    if inner.upcoming(Utc).next().is_none() {
        return Err(format!("schedule `{expr}` never fires"));
    }
    Ok(CronSchedule {
        expr: expr.to_string(),
        inner,
    })
}

impl CronSchedule {
    /// The longest gap between consecutive firings over the next 50 (the period a staleness
    /// alert must tolerate).
    pub fn period(&self) -> Duration {
        let times: Vec<_> = self.inner.upcoming(Utc).take(50).collect();
        times
            .windows(2)
            .filter_map(|w| (w[1] - w[0]).to_std().ok())
            .max()
            .unwrap_or(Duration::from_secs(86400))
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: &chrono::DateTime<Utc>) -> Option<chrono::DateTime<Utc>> {
        self.inner.after(t).next()
    }

    /// The next firing after now, as a duration from now.
    pub fn until_next(&self) -> Option<Duration> {
        let next = self.inner.upcoming(Utc).next()?;
        (next - Utc::now()).to_std().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_fields() {
        assert_eq!(
            parse("*/5 * * * *").unwrap().period(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse("0 */10 * * * *").unwrap().period(),
            Duration::from_secs(600)
        );
        assert_eq!(
            parse("1-59/5 * * * *").unwrap().period(),
            Duration::from_secs(300)
        );
        assert!(parse("* * *").unwrap_err().contains("3 fields"));
        assert!(parse("61 * * * *").is_err());
    }
}
