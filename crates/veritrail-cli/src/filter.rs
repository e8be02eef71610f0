//! Which events `events`, `tail` and `export` select: `--id`, `--sub`, `--since`, `--until`,
//! `--route`, `--action`, `--outcome`, `--status`.
//!
//! Time bounds apply to every record (`since` inclusive, `until` exclusive). The other filters
//! are about requests: when one is given only `http` events can match, so system records
//! (`keyset`, `start`, …) are shown only when none is.

use anyhow::{Result, anyhow, bail};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};
use veritrail_core::event::{AuditEvent, HttpEvent, Outcome, Text};

use crate::cli::{EventFilterArgs, OutcomeArg};

/// A parsed set of filters.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    id: Option<uuid::Uuid>,
    sub: Option<String>,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    route: Option<String>,
    action: Option<String>,
    outcome: Option<Outcome>,
    status: Option<StatusFilter>,
}

/// `--status 404` or `--status 4xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    Code(u16),
    /// The hundreds digit: `4` for `4xx`.
    Class(u16),
}

impl Filter {
    /// Parses the flags; relative times (`1h`) count back from `now`.
    pub(crate) fn from_args(args: &EventFilterArgs, now: OffsetDateTime) -> Result<Self> {
        let since = args
            .since
            .as_deref()
            .map(|t| parse_time(t, now, "--since"))
            .transpose()?;
        let until = args
            .until
            .as_deref()
            .map(|t| parse_time(t, now, "--until"))
            .transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && since >= until
        {
            bail!("--since must be earlier than --until: no record can match");
        }
        let id = args
            .id
            .as_deref()
            .map(|id| {
                id.parse::<uuid::Uuid>().map_err(|_| {
                    anyhow!("--id {id:?}: not an event id (a UUID, as in a span's audit.event.id)")
                })
            })
            .transpose()?;
        Ok(Filter {
            id,
            sub: args.sub.clone(),
            since,
            until,
            route: args.route.clone(),
            action: args.action.clone(),
            outcome: args.outcome.map(outcome),
            status: args.status.as_deref().map(parse_status).transpose()?,
        })
    }

    /// The `--since` bound, if any (records before it are not selected).
    #[cfg_attr(
        not(feature = "serve"),
        expect(dead_code, reason = "only the view seeks by time")
    )]
    pub(crate) fn since(&self) -> Option<OffsetDateTime> {
        self.since
    }

    /// The `--until` bound, if any (records at or after it are not selected).
    #[cfg_attr(
        not(feature = "serve"),
        expect(dead_code, reason = "only the view seeks by time")
    )]
    pub(crate) fn until(&self) -> Option<OffsetDateTime> {
        self.until
    }

    /// Whether no filter is set: every record, event or not, is selected.
    #[cfg_attr(
        not(feature = "serve"),
        expect(dead_code, reason = "only the view pages")
    )]
    pub(crate) fn selects_everything(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.id.is_none()
            && !self.selects_requests()
    }

    /// The part of the filter the PostgreSQL store's search columns can answer (all but
    /// `--route`, which also matches the path); [`matches`](Self::matches) still decides.
    #[cfg(feature = "postgres")]
    pub(crate) fn search(&self) -> veritrail_postgres::Search {
        // The database keeps microseconds; a record's time may have more digits, so the
        // bounds are widened by one and `matches` draws the exact line.
        let slack = Duration::microseconds(1);
        veritrail_postgres::Search {
            since: self.since.map(|t| t - slack),
            until: self.until.map(|t| t + slack),
            sub: self.sub.clone(),
            action: self.action.clone(),
            outcome: self.outcome.map(|o| o.as_str().to_owned()),
            status: self.status.map(|s| match s {
                StatusFilter::Code(code) => code..=code,
                StatusFilter::Class(class) => class * 100..=class * 100 + 99,
            }),
        }
    }

    /// Whether a request filter is set (then only `http` events can match).
    fn selects_requests(&self) -> bool {
        self.sub.is_some()
            || self.route.is_some()
            || self.action.is_some()
            || self.outcome.is_some()
            || self.status.is_some()
    }

    /// Whether `event` is selected.
    pub(crate) fn matches(&self, event: &AuditEvent) -> bool {
        if self.id.is_some_and(|id| event.id != id)
            || self.since.is_some_and(|since| event.time < since)
            || self.until.is_some_and(|until| event.time >= until)
        {
            return false;
        }
        match event.as_http() {
            Some(http) => self.matches_request(http),
            None => !self.selects_requests(),
        }
    }

    fn matches_request(&self, http: &HttpEvent) -> bool {
        let sub = http.actor.as_ref().and_then(|a| a.sub.as_ref());
        let route_or_path = |want: &String| {
            http.request.route.as_ref() == Some(want)
                || http.request.path.as_plain() == Some(want.as_str())
        };
        self.sub
            .as_ref()
            .is_none_or(|want| sub.and_then(Text::as_plain) == Some(want.as_str()))
            && self.route.as_ref().is_none_or(route_or_path)
            && self
                .action
                .as_ref()
                .is_none_or(|want| http.action.as_ref() == Some(want))
            && self.outcome.is_none_or(|want| http.outcome == Some(want))
            && self.status.is_none_or(|want| match (want, http.status) {
                (StatusFilter::Code(code), Some(status)) => status == code,
                (StatusFilter::Class(class), Some(status)) => status / 100 == class,
                (_, None) => false,
            })
    }
}

fn outcome(arg: OutcomeArg) -> Outcome {
    match arg {
        OutcomeArg::Success => Outcome::Success,
        OutcomeArg::Failure => Outcome::Failure,
        OutcomeArg::Denied => Outcome::Denied,
        OutcomeArg::Error => Outcome::Error,
        OutcomeArg::Cancelled => Outcome::Cancelled,
    }
}

fn parse_status(text: &str) -> Result<StatusFilter> {
    let bad = || anyhow!("--status {text}: expected a status code (404) or a class (4xx)");
    let lower = text.to_ascii_lowercase();
    if let Some(digit) = lower.strip_suffix("xx") {
        let class: u16 = digit.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&class) {
            return Err(bad());
        }
        return Ok(StatusFilter::Class(class));
    }
    match lower.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(StatusFilter::Code(code)),
        _ => Err(bad()),
    }
}

/// RFC 3339, a date (midnight UTC), or a duration before `now` (`90s`, `15m`, `1h`, `2d`, `1w`).
pub(crate) fn parse_time(text: &str, now: OffsetDateTime, flag: &str) -> Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC));
    }
    if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(date.midnight().assume_utc());
    }
    if let Some(ago) = parse_duration(text) {
        return now
            .checked_sub(ago)
            .ok_or_else(|| anyhow!("{flag} {text}: too far in the past"));
    }
    Err(anyhow!(
        "{flag} {text}: expected an RFC 3339 time (2026-11-27T12:00:00Z), a date (2026-11-27) \
         or a duration before now (90s, 15m, 1h, 2d, 1w)"
    ))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::seconds(n.checked_mul(seconds_per_unit)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00:00 UTC);

    #[test]
    fn times_in_every_accepted_form() {
        let t = |s| parse_time(s, NOW, "--since").unwrap();
        assert_eq!(
            t("2026-11-27T13:30:00+02:00"),
            datetime!(2026-11-27 11:30:00 UTC)
        );
        assert_eq!(t("2026-11-26"), datetime!(2026-11-26 00:00:00 UTC));
        assert_eq!(t("90s"), datetime!(2026-11-27 11:58:30 UTC));
        assert_eq!(t("15m"), datetime!(2026-11-27 11:45:00 UTC));
        assert_eq!(t("1h"), datetime!(2026-11-27 11:00:00 UTC));
        assert_eq!(t("2d"), datetime!(2026-11-25 12:00:00 UTC));
        assert_eq!(t("1w"), datetime!(2026-11-20 12:00:00 UTC));
        for bad in ["", "h", "1y", "-1h", "yesterday", "2026-13-01"] {
            let err = parse_time(bad, NOW, "--since").unwrap_err();
            assert!(err.to_string().contains("--since"), "{bad}: {err}");
        }
    }

    #[test]
    fn status_codes_and_classes() {
        assert_eq!(parse_status("404").unwrap(), StatusFilter::Code(404));
        assert_eq!(parse_status("5XX").unwrap(), StatusFilter::Class(5));
        for bad in ["99", "600", "6xx", "0xx", "x", "4x"] {
            assert!(parse_status(bad).is_err(), "{bad}");
        }
    }
}
