//! Text cleaning before indexing: what a rep wants to find is what the other
//! side said this time, not the thread quoted below it or the signature.

/// Lines that open a quoted earlier message (`On Monday, Dana wrote:`).
fn opens_quote(line: &str) -> bool {
    let l = line.trim();
    (l.starts_with("On ") && l.ends_with("wrote:"))
        || l.starts_with("-----Original Message-----")
        || l.starts_with("From: ") && l.contains('@')
}

/// Sign-offs after which only the signature follows.
const SIGN_OFFS: &[&str] = &[
    "best,",
    "best regards,",
    "kind regards,",
    "regards,",
    "thanks,",
    "thank you,",
    "many thanks,",
    "cheers,",
    "sincerely,",
    "all the best,",
];

/// A signature is at most this many lines after the sign-off; a longer tail is
/// more likely content and is kept.
const MAX_SIGNATURE_LINES: usize = 6;

/// The text of an email without quoted replies (`> …` lines and everything
/// after an `On …, … wrote:` line), without the signature (a `-- ` delimiter or
/// a sign-off such as "Best," followed by a few short lines) and without the
/// greeting line. Other kinds of activity are only trimmed.
pub fn clean_email(body: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    for line in body.lines() {
        if opens_quote(line) {
            break;
        }
        if line.trim_start().starts_with('>') {
            continue;
        }
        lines.push(line);
    }
    if let Some(i) = lines.iter().rposition(|l| *l == "-- " || *l == "--") {
        lines.truncate(i);
    }
    if let Some(i) = lines
        .iter()
        .rposition(|l| SIGN_OFFS.contains(&l.trim().to_lowercase().as_str()))
        && lines.len() - i <= MAX_SIGNATURE_LINES + 1
    {
        lines.truncate(i);
    }
    if let Some(first) = lines.iter().position(|l| !l.trim().is_empty())
        && is_greeting(lines[first])
    {
        lines.drain(..=first);
    }
    tidy(&lines.join("\n"))
}

fn is_greeting(line: &str) -> bool {
    let l = line.trim();
    let lower = l.to_lowercase();
    l.ends_with(',')
        && l.split_whitespace().count() <= 4
        && ["hi ", "hello ", "dear ", "hey ", "good morning"]
            .iter()
            .any(|g| lower.starts_with(g))
}

/// Collapses runs of blank lines and trims the ends.
pub fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim().lines() {
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line.trim());
    }
    out
}

/// The text of an activity as indexed: the subject on its own line, then the
/// cleaned body.
pub fn indexed_text(kind: &str, subject: Option<&str>, body: &str) -> String {
    let body = if kind == "email" {
        clean_email(body)
    } else {
        tidy(body)
    };
    match subject.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if body.is_empty() => s.to_owned(),
        Some(s) => format!("{s}\n{body}"),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_reply_signature_and_greeting_go() {
        let body = "Hi Sam,\n\nWe are worried about price.\n\nNext step: schedule a call.\n\nBest,\nDana Lee\nCFO, Acme Logistics\n\nOn Monday, Dana wrote:\n> Thanks for the call last week.\n> Let me know.";
        assert_eq!(
            clean_email(body),
            "We are worried about price.\n\nNext step: schedule a call."
        );
    }

    #[test]
    fn interleaved_quotes_and_dash_signature() {
        let body = "> old line\nNew answer here.\n-- \nSam\nRapport Sales";
        assert_eq!(clean_email(body), "New answer here.");
    }

    #[test]
    fn a_long_tail_after_thanks_is_content() {
        let body = "Thanks,\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8";
        assert_eq!(clean_email(body), body);
    }

    #[test]
    fn subject_leads_the_indexed_text() {
        assert_eq!(
            indexed_text(
                "call",
                Some("Call with Dana"),
                "  spoke about SSO \n\n\n ok "
            ),
            "Call with Dana\nspoke about SSO\n\nok"
        );
        assert_eq!(indexed_text("note", None, "x"), "x");
    }
}
