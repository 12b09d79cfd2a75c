//! Cron schedules (5 fields, or 6 with seconds) on top of the `cron` crate, which wants the
//! seconds field: a 5-field expression fires at second 0. A suite's `schedule` keys are parsed
//! here once, at load time, into the [`CronSchedule`] the model carries; `serve`'s scheduler,
//! rotations, `canary plan` and `canary rules` read that value. Errors are a [`CronError`].

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The expression as written.
    pub expr: String,
    inner: cron::Schedule,
}

/// Why a schedule was refused; the message names the expression and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("unknown schedule nickname `{0}`; known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly")]
    UnknownNickname(String),
    #[error("schedule `{expr}` has {fields} fields; expected 5 (minute hour day month weekday) or 6 (seconds first)")]
    FieldCount { expr: String, fields: usize },
    #[error("weekday {0} is out of range; expected 0-7 (Sunday = 0 or 7) or MON-SUN")]
    WeekdayOutOfRange(u32),
    #[error("weekday range `{0}` runs backwards")]
    WeekdayBackwards(String),
    #[error("weekday `{0}`: a step over a range ending on 7 is not supported; write it out")]
    WeekdayStep(String),
    #[error("invalid schedule `{expr}`: {source}")]
    Invalid {
        expr: String,
        source: cron::error::Error,
    },
    #[error("schedule `{0}` never fires")]
    NeverFires(String),
    #[error("`{0}` does not fire evenly every day; a rotation needs evenly spaced ticks (e.g. `*/5 * * * *`)")]
    NotDaily(String),
    #[error("`{0}` fires at uneven intervals; a rotation needs evenly spaced ticks (e.g. `*/5 * * * *`)")]
    Uneven(String),
}

/// Parses `*/5 * * * *` (5 fields) or `0 */5 * * * *` (6 fields, seconds first).
pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
    // The nicknames of Vixie cron and Kubernetes CronJobs.
    let nickname = match expr.trim() {
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        "@monthly" => Some("0 0 1 * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@hourly" => Some("0 * * * *"),
        _ => None,
    };
    if let Some(n) = nickname {
        let mut s = parse(n)?;
        s.expr = expr.to_string();
        return Ok(s);
    }
    if expr.trim_start().starts_with('@') {
        return Err(CronError::UnknownNickname(expr.trim().to_string()));
    }
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => {
            // Standard cron numbers weekdays 0-7 from Sunday (0 and 7); the cron crate 1-7
            // from Sunday. Translate, so `1-5` means Monday to Friday as users expect.
            let mut f: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
            f[4] = standard_weekdays(&f[4])?;
            format!("0 {}", f.join(" "))
        }
        6 => expr.trim().to_string(),
        fields => {
            return Err(CronError::FieldCount {
                expr: expr.to_string(),
                fields,
            })
        }
    };
    let inner = cron::Schedule::from_str(&full).map_err(|source| CronError::Invalid {
        expr: expr.to_string(),
        source,
    })?;
    if inner.upcoming(Utc).next().is_none() {
        return Err(CronError::NeverFires(expr.to_string()));
    }
    Ok(CronSchedule {
        expr: expr.to_string(),
        inner,
    })
}

/// Translates a standard day-of-week field (0-7, Sunday = 0 or 7) to the cron crate's (1-7,
/// Sunday = 1). Names (`MON-FRI`), `*` and steps (`*/2`) pass unchanged where they need no change.
fn standard_weekdays(field: &str) -> Result<String, CronError> {
    // A number translated; `None` for what is not a number (a name, `*`).
    let day = |s: &str| -> Result<Option<u32>, CronError> {
        match s.parse::<u32>() {
            Ok(d) if d <= 7 => Ok(Some(d % 7 + 1)),
            Ok(d) => Err(CronError::WeekdayOutOfRange(d)),
            Err(_) => Ok(None),
        }
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let translated = match range.split_once('-') {
            Some((a, b)) => match (day(a)?, day(b)?) {
                (Some(x), Some(y)) if y >= x => format!("{x}-{y}"),
                // `5-7` (Friday to Sunday) becomes Friday to Saturday, and Sunday.
                (Some(x), Some(1)) if b.trim() == "7" => format!("{x}-7,1"),
                (Some(_), Some(_)) => return Err(CronError::WeekdayBackwards(range.to_string())),
                _ => range.to_string(),
            },
            None => match day(range)? {
                Some(x) => x.to_string(),
                None => range.to_string(),
            },
        };
        if translated.contains(',') && step.is_some() {
            return Err(CronError::WeekdayStep(part.to_string()));
        }
        parts.push(match step {
            Some(s) => format!("{translated}/{s}"),
            None => translated,
        });
    }
    Ok(parts.join(","))
}

/// How many times the schedule `expr` fires in a day ([`CronSchedule::ticks_per_day`]).
pub fn ticks_per_day(expr: &str) -> Result<u32, CronError> {
    parse(expr)?.ticks_per_day()
}

impl CronSchedule {
    /// How many times the schedule fires in a day. A rotation numbers its ticks by time, so
    /// the firings must be evenly spaced over a week of days (`*/5 * * * *`, `0 * * * *`),
    /// not bunched (`*/5 9-17 * * *`) or skipping days. The week counted starts on
    /// 1 January 2026, 00:00 UTC.
    pub fn ticks_per_day(&self) -> Result<u32, CronError> {
        let start = chrono::DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_767_225_600);
        let end = start + chrono::Duration::days(7);
        let times: Vec<_> = self
            .inner
            .after(&(start - chrono::Duration::seconds(1)))
            .take_while(|t| *t < end)
            .take(7 * 86_400)
            .collect();
        let n = times.len() as i64;
        let week = 7 * 86_400;
        if n == 0 || n % 7 != 0 || week % n != 0 {
            return Err(CronError::NotDaily(self.expr.clone()));
        }
        let gap = week / n;
        let first = times[0].timestamp();
        let even = times.iter().all(|t| (t.timestamp() - first) % gap == 0);
        if !even {
            return Err(CronError::Uneven(self.expr.clone()));
        }
        Ok((n / 7) as u32)
    }

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
    fn ticks_per_day_of_common_schedules() {
        assert_eq!(ticks_per_day("*/5 * * * *").unwrap(), 288);
        assert_eq!(ticks_per_day("0 * * * *").unwrap(), 24);
        assert_eq!(ticks_per_day("30 2 * * *").unwrap(), 1);
        assert!(ticks_per_day("nonsense").is_err());
        assert!(ticks_per_day("*/5 9-17 * * *").is_err(), "bunched");
        assert!(ticks_per_day("0 9,10 * * *").is_err(), "uneven");
        assert!(ticks_per_day("0 0 1 * *").is_err(), "monthly");
    }

    #[test]
    fn nicknames_are_their_five_field_schedules() {
        assert_eq!(ticks_per_day("@hourly").unwrap(), 24);
        assert_eq!(ticks_per_day("@daily").unwrap(), 1);
        assert_eq!(
            parse("@hourly").unwrap().period(),
            Duration::from_secs(3600)
        );
        assert_eq!(parse("@midnight").unwrap().expr, "@midnight");
        let e = parse("@often").unwrap_err().to_string();
        assert!(e.contains("@hourly"), "{e}");
    }

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
        assert_eq!(
            parse("* * *").unwrap_err().to_string(),
            "schedule `* * *` has 3 fields; expected 5 (minute hour day month weekday) or 6 (seconds first)"
        );
        assert!(matches!(
            parse("61 * * * *"),
            Err(CronError::Invalid { .. })
        ));
        assert_eq!(
            parse("0 9 * * 8").unwrap_err().to_string(),
            "weekday 8 is out of range; expected 0-7 (Sunday = 0 or 7) or MON-SUN"
        );
        assert_eq!(
            parse("0 9 * * 5-2").unwrap_err().to_string(),
            "weekday range `5-2` runs backwards"
        );
    }

    #[test]
    fn weekdays_are_numbered_as_in_standard_cron() {
        assert_eq!(standard_weekdays("1-5").unwrap(), "2-6");
        assert_eq!(standard_weekdays("0").unwrap(), "1");
        assert_eq!(standard_weekdays("7").unwrap(), "1");
        assert_eq!(standard_weekdays("5-7").unwrap(), "6-7,1");
        assert_eq!(standard_weekdays("*").unwrap(), "*");
        assert_eq!(standard_weekdays("*/2").unwrap(), "*/2");
        assert_eq!(standard_weekdays("MON-FRI").unwrap(), "MON-FRI");
        assert_eq!(standard_weekdays("1,3").unwrap(), "2,4");
        // Monday 09:00 UTC, every week: the gaps between firings are a week.
        let s = parse("0 9 * * 1").unwrap();
        assert_eq!(s.period(), Duration::from_secs(7 * 86400));
        let now = chrono::Utc::now();
        let next = s.next_after(&now).unwrap();
        assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Mon);
    }
}
