//! Commit dates: [`PatchDate`], read from a mail's `Date:` or an hg `# Date` line
//! with chrono, and written in git's and hg's raw forms.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, FixedOffset, Month, Weekday};

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

    /// Parses an RFC 2822 date such as `Tue, 14 Nov 2023 22:13:20 +0100` with
    /// chrono (day of week, seconds and a trailing `(CET)` comment optional; the
    /// obsolete zone names `GMT`, `UT`, `EST`..`PDT` and military letters accepted).
    /// `None` if it cannot be parsed or is outside the dates git accepts.
    ///
    /// Two small steps around chrono keep what this parser always accepted and
    /// refused. Before it, whitespace runs become one space (chrono refuses
    /// leading and trailing whitespace) and full English month and day names
    /// become the three-letter ones RFC 2822 uses (`November` -> `Nov`). After
    /// it, the year must have been written with four digits, as RFC 2822
    /// requires: its obsolete two- and three-digit years (`23`, which chrono
    /// reads as 2023) are ambiguous and refused.
    pub fn from_rfc2822(s: &str) -> Option<Self> {
        let text = s
            .split_whitespace()
            .map(abbreviate)
            .collect::<Vec<_>>()
            .join(" ");
        let date = DateTime::parse_from_rfc2822(&text).ok()?;
        let year = format!("{:04}", date.year());
        if !text.split([' ', ',']).any(|token| token == year) {
            return None;
        }
        Self::checked(date.timestamp(), date.offset())
    }

    /// Parses hg's `"<seconds> <offset west of UTC in seconds>"` form. `None` if it
    /// cannot be parsed, the offset is not whole minutes or not within a day
    /// (chrono's [`FixedOffset`]), or the date is outside the dates git accepts.
    pub fn from_hg(s: &str) -> Option<Self> {
        let mut parts = s.split_whitespace();
        let seconds: i64 = parts.next()?.parse().ok()?;
        let west: i32 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || west % 60 != 0 {
            return None;
        }
        Self::checked(seconds, &FixedOffset::west_opt(west)?)
    }

    fn checked(seconds: i64, offset: &FixedOffset) -> Option<Self> {
        COMMIT_DATES.contains(&seconds).then(|| PatchDate {
            seconds,
            offset_minutes: offset.local_minus_utc() / 60,
        })
    }
}

/// Dates git accepts for a commit: from the epoch to 2242. A patch date outside them is
/// ignored (the commit gets the current date) rather than failing the landing.
const COMMIT_DATES: std::ops::RangeInclusive<i64> = 0..=(1 << 33);

/// `November` -> `Nov`, `Tuesday,` -> `Tue,`; any other token as it is.
fn abbreviate(token: &str) -> Cow<'_, str> {
    let (word, comma) = match token.strip_suffix(',') {
        Some(word) => (word, ","),
        None => (token, ""),
    };
    if word.len() > 3 {
        if let Some(short) = word.parse::<Month>().ok().and_then(|m| m.name().get(..3)) {
            return Cow::Owned(format!("{short}{comma}"));
        }
        if let Ok(day) = word.parse::<Weekday>() {
            return Cow::Owned(format!("{day}{comma}"));
        }
    }
    Cow::Borrowed(token)
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

    // Where chrono and the hand-written parser it replaced disagree. `git format-patch`
    // always writes `Tue, 14 Nov 2023 22:13:20 +0100`, so none of these comes from git;
    // a refused date is ignored (the commit gets the landing date), never fatal.

    fn date(s: &str) -> Option<(i64, i32)> {
        PatchDate::from_rfc2822(s).map(|d| (d.seconds, d.offset_minutes))
    }

    #[test]
    fn rfc2822_forms_still_accepted_around_chrono() {
        // Full names are abbreviated before chrono, which only knows `Tue` and `Nov`.
        assert_eq!(
            date("Tuesday, 14 November 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        // Names are case-insensitive in RFC 2822, and in chrono.
        assert_eq!(
            date("tue, 14 NOV 2023 22:13:20 +0100"),
            Some((1_699_996_400, 60))
        );
        // Whitespace runs become one space: chrono refuses leading and trailing blanks.
        assert_eq!(
            date(" Tue,  14\tNov 2023 22:13:20 +0100 "),
            Some((1_699_996_400, 60))
        );
        // Comments (CFWS) after the zone, even nested, are skipped by chrono.
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 +0100 (CET) (a (b) c)"),
            Some((1_699_996_400, 60))
        );
    }

    #[test]
    fn rfc2822_years_need_four_digits() {
        // chrono reads RFC 2822's obsolete 2- and 3-digit years (23 -> 2023, 123 -> 2023);
        // they are ambiguous, and the old parser refused them: still refused.
        assert_eq!(date("Tue, 14 Nov 23 22:13:20 +0100"), None);
        assert_eq!(date("Tue, 14 Nov 123 22:13:20 +0100"), None);
        assert_eq!(date("Tue, 14 Nov 02023 22:13:20 +0100"), None);
    }

    #[test]
    fn rfc2822_obsolete_zone_names_are_understood() {
        // RFC 2822 section 4.3 gives EST/EDT/CST/CDT/MST/MDT/PST/PDT their offsets;
        // the old parser ignored such a date, chrono reads it (and so does git).
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 EST"),
            Some((1_700_018_000, -300))
        );
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 PDT"),
            Some((1_700_025_200, -420))
        );
        // RFC 2822 says military letters mean "-0000" (their sign was botched in RFC 822).
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 A"),
            Some((1_700_000_000, 0))
        );
        // `UTC` is not an RFC 2822 zone (`UT` and `GMT` are); the old parser and git's
        // lenient date reader take it, but format-patch writes `+0000`: ignored now.
        assert_eq!(date("Tue, 14 Nov 2023 22:13:20 UTC"), None);
        assert_eq!(
            date("Tue, 14 Nov 2023 22:13:20 UT"),
            Some((1_700_000_000, 0))
        );
        // Non-numeric zones other than those are still unknown.
        assert_eq!(date("Tue, 14 Nov 2023 22:13:20 CET"), None);
        // An offset of 99 hours is no offset (chrono's FixedOffset stays within a day).
        assert_eq!(date("Tue, 14 Nov 2023 22:13:20 +9900"), None);
    }

    #[test]
    fn rfc2822_malformed_dates_the_old_parser_let_through() {
        // RFC 2822 section 3.3: the day of week, if given, must match the date
        // and be followed by a comma; the old parser (like git's lenient date reader)
        // skipped any word there, but format-patch always writes the right one.
        assert_eq!(date("Wed, 14 Nov 2023 22:13:20 +0100"), None);
        assert_eq!(date("Tue 14 Nov 2023 22:13:20 +0100"), None);
        assert_eq!(date("Foo, 14 Nov 2023 22:13:20 +0100"), None);
        // RFC 2822 hours have two digits.
        assert_eq!(date("Tue, 14 Nov 2023 9:05:00 +0100"), None);
        // Text after the zone, or an unclosed comment, is not a date.
        assert_eq!(date("Tue, 14 Nov 2023 22:13:20 +0100 extra"), None);
        assert_eq!(date("Tue, 14 Nov 2023 22:13:20 +0100 (CET"), None);
    }

    #[test]
    fn rfc2822_leap_second_is_held_at_59() {
        // chrono keeps 23:59:60 as the last second of the minute; the old parser (and
        // git) rolled it into the next minute. Unix time has no leap seconds, so git
        // never writes `:60`; one second of difference.
        assert_eq!(
            date("Sat, 31 Dec 2016 23:59:60 +0000"),
            Some((1_483_228_799, 0))
        );
    }

    #[test]
    fn hg_offsets_of_a_whole_day_are_refused() {
        // chrono's FixedOffset stops short of 24 hours, where the old parser took
        // them; hg itself refuses offsets beyond -14/+12 hours.
        assert_eq!(PatchDate::from_hg("1700000000 86400"), None);
        assert_eq!(PatchDate::from_hg("1700000000 -86400"), None);
        assert_eq!(
            PatchDate::from_hg("1700000000 -50400").map(|d| d.offset_minutes),
            Some(840)
        );
    }
}
