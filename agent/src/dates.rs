//! Relative dates in a request, worked out before the model sees it.
//!
//! A 0.5B model told "today is Monday 2026-11-02" still writes "yesterday
//! afternoon" as 2026-11-02 and "end of the month" as some date it saw in a
//! tool result: in the eval's dates suite it got none of twelve right. Date
//! arithmetic is not the model's job, so the loop does it: [`resolve`] finds
//! the common phrases ("tomorrow", "next Friday", "in two weeks", "last
//! month", "the 15th of next month", "October"…) and the request reaches the
//! model with their dates spelled out, the way [`crate::mentions`] spells out
//! the records its names may mean.
//!
//! Readings, all from `today`:
//! - a weekday ("Wednesday", "this/next/on Wednesday"): the next one after
//!   today; "last Wednesday": the latest one before today;
//! - "next/last week": seven days on/back; "this week": Monday to Sunday;
//! - "next/last/this month", a month's name: the whole month (a name means
//!   the one within six months back or five ahead);
//! - "in N days/weeks/months", "N days/weeks ago", "a week from today";
//! - "end of the week" (Friday), "end of the month", "end of next month";
//! - "the Nth of next month", "the Nth" (this month, or next if past).

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

/// A date or a span of dates a phrase stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// One day ("tomorrow", "next Tuesday").
    Day(NaiveDate),
    /// First and last day, both included ("next week", "March").
    Span(NaiveDate, NaiveDate),
}

/// One phrase of the request and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The words as the user wrote them (lower-cased).
    pub phrase: String,
    /// The day or days it stands for.
    pub when: When,
}

/// The relative date phrases of `text`, in order, each once.
pub fn resolve(text: &str, today: NaiveDate) -> Vec<Resolved> {
    let words = words(text);
    let mut out: Vec<Resolved> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match phrase_at(&words, i, today) {
            Some((len, when)) => {
                let phrase = words[i..i + len].join(" ");
                if !out.iter().any(|r| r.phrase == phrase) {
                    out.push(Resolved { phrase, when });
                }
                i += len;
            }
            None => i += 1,
        }
    }
    out
}

/// The note appended to the request for the model, or `None` when the
/// request names no relative date.
pub fn note(text: &str, today: NaiveDate) -> Option<String> {
    let found = resolve(text, today);
    if found.is_empty() {
        return None;
    }
    let parts: Vec<String> = found
        .iter()
        .map(|r| format!("{} = {}", r.phrase, describe(r.when)))
        .collect();
    Some(format!("(Dates in this request: {}.)", parts.join("; ")))
}

/// Words that ask for a time window without a phrase [`resolve`] reads.
const WINDOW_WORDS: &[&str] = &[
    "since", "before", "after", "between", "until", "recent", "recently", "latest", "ago", "when",
    "date", "dated", "during",
];

/// Whether `text` says anything about when: a phrase [`resolve`] reads, a
/// year or an ISO date, or a word that asks for a window ("since", "recent").
/// A search the request gave no such word has no business with a date
/// window: a 0.5B model asked "what did Acme say about the contract?" searched
/// only today 14:00–15:00 and found nothing.
pub fn names_a_time(text: &str, today: NaiveDate) -> bool {
    let words = words(text);
    !resolve(text, today).is_empty()
        || words.iter().any(|w| {
            WINDOW_WORDS.contains(&w.as_str())
                || (w.len() == 4 && w.starts_with("20") && w.chars().all(|c| c.is_ascii_digit()))
        })
}

fn describe(when: When) -> String {
    match when {
        When::Day(d) => format!("{} ({})", d.format("%Y-%m-%d"), d.format("%A")),
        When::Span(a, b) => format!("{} to {}", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The phrase starting at word `i`: how many words it takes and its date.
fn phrase_at(w: &[String], i: usize, today: NaiveDate) -> Option<(usize, When)> {
    let at = |k: usize| w.get(i + k).map(String::as_str).unwrap_or("");
    let day = When::Day;
    match at(0) {
        "today" | "tonight" => return Some((1, day(today))),
        "tomorrow" => return Some((1, day(today + Days::new(1)))),
        "yesterday" => return Some((1, day(today - Days::new(1)))),
        "day" if at(1) == "after" && at(2) == "tomorrow" => {
            return Some((3, day(today + Days::new(2))));
        }
        "day" if at(1) == "before" && at(2) == "yesterday" => {
            return Some((3, day(today - Days::new(2))));
        }
        _ => {}
    }
    if let Some(found) = relative(w, i, today) {
        return Some(found);
    }
    if let Some(found) = end_of(w, i, today) {
        return Some(found);
    }
    if let Some(found) = ordinal_day(w, i, today) {
        return Some(found);
    }
    if let Some(found) = count_from_now(w, i, today) {
        return Some(found);
    }
    if let Some(wd) = weekday(at(0)) {
        return Some((1, day(upcoming(today, wd))));
    }
    if let Some(m) = month(at(0)) {
        // "may" is also a verb ("May I see…"): it counts as the month only
        // after "in", "of", "since", "during" or "for".
        let after = i.checked_sub(1).map(|j| w[j].as_str()).unwrap_or("");
        if m != 5 || matches!(after, "in" | "of" | "since" | "during" | "for") {
            return Some((1, nearest_month(today, m)));
        }
    }
    None
}

/// "this/next/last/past/coming" + weekday, week or month.
fn relative(w: &[String], i: usize, today: NaiveDate) -> Option<(usize, When)> {
    let which = w.get(i)?.as_str();
    if !matches!(which, "this" | "next" | "last" | "past" | "coming") {
        return None;
    }
    let what = w.get(i + 1)?.as_str();
    let back = matches!(which, "last" | "past");
    if let Some(wd) = weekday(what) {
        let d = if back {
            previous(today, wd)
        } else {
            upcoming(today, wd)
        };
        return Some((2, When::Day(d)));
    }
    match (which, what) {
        ("this", "week") => {
            let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
            Some((2, When::Span(monday, monday + Days::new(6))))
        }
        (_, "week") if back => Some((2, When::Day(today - Days::new(7)))),
        (_, "week") => Some((2, When::Day(today + Days::new(7)))),
        ("this", "month") => Some((2, month_span(today))),
        (_, "month") if back => Some((2, month_span(today - Months::new(1)))),
        (_, "month") => Some((2, month_span(today + Months::new(1)))),
        _ => None,
    }
}

/// "end of (the) week/month", "end of next month", "month end".
fn end_of(w: &[String], i: usize, today: NaiveDate) -> Option<(usize, When)> {
    let at = |k: usize| w.get(i + k).map(String::as_str).unwrap_or("");
    if at(0) == "month" && at(1) == "end" {
        return Some((2, When::Day(last_of_month(today))));
    }
    if at(0) != "end" || at(1) != "of" {
        return None;
    }
    let (skip, what) = match at(2) {
        "the" | "this" => (3, at(3)),
        "next" => {
            return (at(3) == "month")
                .then(|| (4, When::Day(last_of_month(today + Months::new(1)))));
        }
        other => (2, other),
    };
    match what {
        "month" => Some((skip + 1, When::Day(last_of_month(today)))),
        "week" => Some((skip + 1, When::Day(upcoming_or_today(today, Weekday::Fri)))),
        _ => None,
    }
}

/// "the 15th of next month", "the 3rd".
fn ordinal_day(w: &[String], i: usize, today: NaiveDate) -> Option<(usize, When)> {
    let at = |k: usize| w.get(i + k).map(String::as_str).unwrap_or("");
    let (start, n) = match (at(0), ordinal(at(1))) {
        ("the", Some(n)) => (1, n),
        _ => return None,
    };
    if at(start + 1) == "of" && at(start + 2) == "next" && at(start + 3) == "month" {
        let base = today + Months::new(1);
        return NaiveDate::from_ymd_opt(base.year(), base.month(), n)
            .map(|d| (start + 4, When::Day(d)));
    }
    if at(start + 1) == "of" && month(at(start + 2)).is_some() {
        return None; // "the 3rd of March": an absolute date the model can write
    }
    let this = NaiveDate::from_ymd_opt(today.year(), today.month(), n)?;
    let d = if this >= today {
        this
    } else {
        let next = today + Months::new(1);
        NaiveDate::from_ymd_opt(next.year(), next.month(), n)?
    };
    Some((start + 1, When::Day(d)))
}

/// "in 3 days", "in two weeks", "a week from today", "2 days ago".
fn count_from_now(w: &[String], i: usize, today: NaiveDate) -> Option<(usize, When)> {
    let at = |k: usize| w.get(i + k).map(String::as_str).unwrap_or("");
    let shift = |n: u32, unit: &str, forward: bool| -> Option<NaiveDate> {
        let n64 = u64::from(n);
        match (unit.trim_end_matches('s'), forward) {
            ("day", true) => Some(today + Days::new(n64)),
            ("day", false) => Some(today - Days::new(n64)),
            ("week", true) => Some(today + Days::new(7 * n64)),
            ("week", false) => Some(today - Days::new(7 * n64)),
            ("month", true) => today.checked_add_months(Months::new(n)),
            ("month", false) => today.checked_sub_months(Months::new(n)),
            _ => None,
        }
    };
    if at(0) == "in" {
        let n = count(at(1))?;
        return shift(n, at(2), true).map(|d| (3, When::Day(d)));
    }
    let n = count(at(0))?;
    let unit = at(1);
    if at(2) == "ago" {
        return shift(n, unit, false).map(|d| (3, When::Day(d)));
    }
    if at(2) == "from" && matches!(at(3), "today" | "now") {
        return shift(n, unit, true).map(|d| (4, When::Day(d)));
    }
    None
}

fn count(word: &str) -> Option<u32> {
    const WORDS: [&str; 12] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    match word {
        "a" | "an" => Some(1),
        _ => WORDS
            .iter()
            .position(|x| *x == word)
            .map(|p| p as u32 + 1)
            .or_else(|| word.parse().ok().filter(|n| (1..=366).contains(n))),
    }
}

/// "1st", "2nd", "15th" → the day of the month.
fn ordinal(word: &str) -> Option<u32> {
    let digits = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| word.strip_suffix(s))?;
    digits.parse().ok().filter(|n| (1..=31).contains(n))
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn month(word: &str) -> Option<u32> {
    const NAMES: [&str; 12] = [
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
    NAMES.iter().position(|m| *m == word).map(|p| p as u32 + 1)
}

/// The first `wd` after `today` (one to seven days on).
fn upcoming(today: NaiveDate, wd: Weekday) -> NaiveDate {
    let ahead = (7 + wd.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
    today + Days::new(u64::from(if ahead == 0 { 7 } else { ahead }))
}

fn upcoming_or_today(today: NaiveDate, wd: Weekday) -> NaiveDate {
    if today.weekday() == wd {
        today
    } else {
        upcoming(today, wd)
    }
}

/// The latest `wd` before `today` (one to seven days back).
fn previous(today: NaiveDate, wd: Weekday) -> NaiveDate {
    let back = (7 + today.weekday().num_days_from_monday() - wd.num_days_from_monday()) % 7;
    today - Days::new(u64::from(if back == 0 { 7 } else { back }))
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).expect("every month has a first day")
}

fn last_of_month(d: NaiveDate) -> NaiveDate {
    first_of_month(d) + Months::new(1) - Days::new(1)
}

fn month_span(d: NaiveDate) -> When {
    When::Span(first_of_month(d), last_of_month(d))
}

/// The month `m` within six months back or five ahead of `today`.
fn nearest_month(today: NaiveDate, m: u32) -> When {
    let diff = (m as i32 - today.month() as i32).rem_euclid(12);
    let first = first_of_month(today);
    let d = if diff <= 5 {
        first + Months::new(diff as u32)
    } else {
        first - Months::new((12 - diff) as u32)
    };
    month_span(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_request_without_dates_names_no_time() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert!(!names_a_time(
            "What did Acme Logistics say about the contract?",
            today
        ));
        assert!(!names_a_time(
            "What did they say about the 5% discount?",
            today
        ));
        assert!(names_a_time("What did Acme say last week?", today));
        assert!(names_a_time("Emails from Acme since 2026-10-01", today));
        assert!(names_a_time("Anything recent from Globex?", today));
        assert!(names_a_time("What did Dana say in October?", today));
    }

    use super::*;

    /// The eval's "today": Monday 2 November 2026.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn one(text: &str) -> When {
        let found = resolve(text, today());
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        found[0].when
    }

    #[test]
    fn days_around_today() {
        assert_eq!(
            one("Remind me tomorrow to chase Globex"),
            When::Day(d("2026-11-03"))
        );
        assert_eq!(
            one("a call from yesterday afternoon"),
            When::Day(d("2026-11-01"))
        );
        assert_eq!(one("the day after tomorrow"), When::Day(d("2026-11-04")));
        assert_eq!(one("what's on today?"), When::Day(d("2026-11-02")));
    }

    #[test]
    fn weekdays_look_forward_unless_last() {
        assert_eq!(one("on my list for Wednesday."), When::Day(d("2026-11-04")));
        assert_eq!(one("the quote by next Friday"), When::Day(d("2026-11-06")));
        assert_eq!(one("last Friday's meeting"), When::Day(d("2026-10-30")));
        // Today is a Monday: "Monday" is next week's, "last Monday" last week's.
        assert_eq!(one("on Monday"), When::Day(d("2026-11-09")));
        assert_eq!(one("since last Monday"), When::Day(d("2026-10-26")));
    }

    #[test]
    fn counts_of_days_weeks_and_months() {
        assert_eq!(one("in two weeks check"), When::Day(d("2026-11-16")));
        assert_eq!(one("in 3 days"), When::Day(d("2026-11-05")));
        assert_eq!(one("a week from today"), When::Day(d("2026-11-09")));
        assert_eq!(one("two days ago"), When::Day(d("2026-10-31")));
        assert_eq!(one("in a month"), When::Day(d("2026-12-02")));
        assert_eq!(one("next week"), When::Day(d("2026-11-09")));
    }

    #[test]
    fn month_ends_and_days_of_the_month() {
        assert_eq!(one("by the end of the month"), When::Day(d("2026-11-30")));
        assert_eq!(one("by end of next month"), When::Day(d("2026-12-31")));
        assert_eq!(one("by the end of the week"), When::Day(d("2026-11-06")));
        assert_eq!(
            one("to the 15th of next month."),
            When::Day(d("2026-12-15"))
        );
        assert_eq!(one("due the 20th"), When::Day(d("2026-11-20")));
        assert_eq!(one("due the 1st"), When::Day(d("2026-12-01")));
    }

    #[test]
    fn spans_of_weeks_and_months() {
        assert_eq!(
            one("What's due this week?"),
            When::Span(d("2026-11-02"), d("2026-11-08"))
        );
        assert_eq!(
            one("Which meetings did I have in October?"),
            When::Span(d("2026-10-01"), d("2026-10-31"))
        );
        assert_eq!(
            one("deals closing in January"),
            When::Span(d("2027-01-01"), d("2027-01-31"))
        );
        assert_eq!(
            one("calls last month"),
            When::Span(d("2026-10-01"), d("2026-10-31"))
        );
    }

    #[test]
    fn plain_requests_have_no_dates() {
        for text in [
            "Add Jane Doe from Acme, jane@acme.com",
            "Move the Initech deal to negotiation",
            "May I see the open deals?",
            "Log 2 calls with Sam",
            "What did the last email from Acme say?",
        ] {
            assert_eq!(resolve(text, today()), vec![], "{text}");
        }
    }

    #[test]
    fn the_note_spells_each_phrase_out_once() {
        let note = note(
            "Log yesterday's call and remind me tomorrow; tomorrow works.",
            today(),
        )
        .unwrap();
        assert_eq!(
            note,
            "(Dates in this request: yesterday = 2026-11-01 (Sunday); tomorrow = 2026-11-03 (Tuesday).)"
        );
        assert_eq!(super::note("Add Jane Doe", today()), None);
    }
}
