//! Commit dates: [`PatchDate`], read from a mail's `Date:` or an hg `# Date` line.

/// A commit timestamp: seconds since the epoch and the zone offset in minutes EAST of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchDate {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Offset of the author's time zone, in minutes east of UTC (`+0100` is 60).
    pub offset_minutes: i32,
}

impl PatchDate {
    /// git's raw date format: "1700000000 +0100"
    pub fn to_git(&self) -> String {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let abs = self.offset_minutes.unsigned_abs();
        format!("{} {sign}{:02}{:02}", self.seconds, abs / 60, abs % 60)
    }

    /// hg's date format: "1700000000 -3600" (seconds west of UTC)
    pub fn to_hg(&self) -> String {
        format!("{} {}", self.seconds, -i64::from(self.offset_minutes) * 60)
    }

    /// Parses an RFC 2822 date such as `Tue, 14 Nov 2023 22:13:20 +0100`
    /// (day of week optional, seconds optional). `None` if it cannot be parsed.
    pub fn from_rfc2822(s: &str) -> Option<Self> {
        let s = s.split('(').next().unwrap_or(s); // drop a trailing "(CET)" comment
        let mut tokens = s
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty());
        let mut token = tokens.next()?;
        if token.chars().all(|c| c.is_ascii_alphabetic()) {
            token = tokens.next()?; // day of week
        }
        let day = parse_digits(token, 1, 2)?;
        let month = month_number(tokens.next()?)?;
        let year = i64::from(parse_digits(tokens.next()?, 4, 4)?);
        let mut time = tokens.next()?.split(':');
        let hour = parse_digits(time.next()?, 1, 2)?;
        let minute = parse_digits(time.next()?, 2, 2)?;
        let second = match time.next() {
            Some(s) => parse_digits(s, 2, 2)?,
            None => 0,
        };
        let offset_minutes = zone_minutes(tokens.next()?)?;
        if time.next().is_some()
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second);
        let seconds = local - i64::from(offset_minutes) * 60;
        COMMIT_DATES.contains(&seconds).then_some(PatchDate {
            seconds,
            offset_minutes,
        })
    }

    /// Parses hg's `"<seconds> <offset west of UTC in seconds>"` form. `None` if it cannot be parsed.
    pub fn from_hg(s: &str) -> Option<Self> {
        let mut parts = s.split_whitespace();
        let seconds: i64 = parts.next()?.parse().ok()?;
        let west: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some()
            || !(-86_400..=86_400).contains(&west)
            || west % 60 != 0
            || !COMMIT_DATES.contains(&seconds)
        {
            return None;
        }
        Some(PatchDate {
            seconds,
            offset_minutes: i32::try_from(-west / 60).ok()?,
        })
    }
}

/// Dates git accepts for a commit: from the epoch to 2242. A patch date outside them is
/// ignored (the commit gets the current date) rather than failing the landing.
const COMMIT_DATES: std::ops::RangeInclusive<i64> = 0..=(1 << 33);

fn parse_digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let s = s.to_ascii_lowercase();
    let index = MONTHS
        .iter()
        .position(|m| s == *m || (s.len() == 3 && m.starts_with(s.as_str())))?;
    u32::try_from(index + 1).ok()
}

fn zone_minutes(s: &str) -> Option<i32> {
    if ["GMT", "UT", "UTC", "Z"]
        .iter()
        .any(|z| s.eq_ignore_ascii_case(z))
    {
        return Some(0);
    }
    let (sign, digits) = match (s.strip_prefix('+'), s.strip_prefix('-')) {
        (Some(d), _) => (1, d),
        (_, Some(d)) => (-1, d),
        _ => return None,
    };
    let value = parse_digits(digits, 4, 4)?;
    if value % 100 > 59 {
        return None;
    }
    Some(sign * i32::try_from(value / 100 * 60 + value % 100).ok()?)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fixtures::{HG_GIT, ok};

    #[test]
    fn rfc2822_dates() {
        let date = |s: &str| PatchDate::from_rfc2822(s).map(|d| (d.seconds, d.offset_minutes));
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        assert_eq!(
            date("14 Nov 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        assert_eq!(
            date("Tue,14 November 2023 21:13:20 GMT"),
            Some((1_699_996_400, 0))
        );
        assert_eq!(
            date("Tue, 4 Jul 2023 09:05 -0530"),
            Some((1_688_481_300, -330))
        );
        assert_eq!(date("Thu, 1 Jan 1970 00:00:00 +0000 (UTC)"), Some((0, 0)));
        // Before the epoch git refuses the date: it is ignored rather than failing the landing.
        assert_eq!(date("Wed, 31 Dec 1969 23:59:59 +0000"), None);
        assert_eq!(date("Mon, 1 Jan 1900 00:00:00 +0000"), None);
        assert_eq!(PatchDate::from_hg("-5 0"), None);
        assert_eq!(PatchDate::from_hg("99999999999 0"), None);
        assert_eq!(
            date("Thu, 29 Feb 2024 12:00:00 +0000"),
            Some((1_709_208_000, 0))
        );
        for bad in [
            "",
            "yesterday",
            "Wed, 29 Feb 2023 12:00:00 +0000",
            "Tue, 14 Nov 23 22:13:20 +0100",
            "Tue, 14 Nov 2023 22:13:20",
            "Tue, 14 Nov 2023 24:00:00 +0000",
            "Tue, 14 Nov 2023 22:13:20 +01",
            "Tue, 14 Nov 2023 22:13:20 +0160",
            "Tue, 14 Foo 2023 22:13:20 +0100",
            "Tue, 0 Nov 2023 22:13:20 +0100",
            "Tue, 14 Nov 2023 22:13:20:11 +0100",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn hg_dates_and_formatting() {
        let d = PatchDate::from_hg("1700000000 -3600");
        assert_eq!(
            d,
            Some(PatchDate {
                seconds: 1_700_000_000,
                offset_minutes: 60
            })
        );
        assert_eq!(
            PatchDate::from_hg("1700000000 0").map(|d| d.offset_minutes),
            Some(0)
        );
        assert_eq!(
            PatchDate::from_hg("1700000000 19800").map(|d| d.offset_minutes),
            Some(-330)
        );
        assert_eq!(PatchDate::from_hg("1700000000 30"), None);
        assert_eq!(PatchDate::from_hg("abc 0"), None);
        assert_eq!(PatchDate::from_hg("1700000000"), None);
        assert_eq!(PatchDate::from_hg("1 -9223372036854775808"), None);
        let east = PatchDate {
            seconds: 1_700_000_000,
            offset_minutes: 60,
        };
        assert_eq!(east.to_git(), "1700000000 +0100");
        assert_eq!(east.to_hg(), "1700000000 -3600");
        let west = PatchDate {
            seconds: 1_700_000_000,
            offset_minutes: -330,
        };
        assert_eq!(west.to_git(), "1700000000 -0530");
        assert_eq!(west.to_hg(), "1700000000 19800");
        let utc = PatchDate {
            seconds: 0,
            offset_minutes: 0,
        };
        assert_eq!(
            (utc.to_git(), utc.to_hg()),
            ("0 +0000".into(), "0 0".into())
        );
        let bad_date = HG_GIT.replace("# Date 1700000000 -3600", "# Date tomorrow");
        assert_eq!(ok(&bad_date).date, None);
    }
}
