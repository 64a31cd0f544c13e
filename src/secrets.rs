//! Keeping secrets out of what Autoland prints, logs and stores: URLs lose their
//! credentials, free text loses `password=`-style values. One place, so every output
//! (VCS command records, database messages, the check plugin) hides the same things.

/// Hides the credentials of every URL in `text` (or in any argument that looks like
/// one): the password of `user:password@`, or the whole userinfo when it is a single word
/// (often a token, as in `https://TOKEN@host/repo`) — except in a database URL, where a
/// single word is the user name. A password holding `/`, `?` or `#` unencoded is hidden
/// too. Anything else is returned unchanged.
pub fn redact_url(text: &str) -> String {
    let marks: Vec<usize> = text.match_indices("://").map(|(i, _)| i).collect();
    let Some(&first) = marks.first() else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    for (k, &mark) in marks.iter().enumerate() {
        // Up to the next `://` (a URL inside this one's query is redacted on its own).
        let end = marks.get(k + 1).copied().unwrap_or(text.len());
        out.push_str("://");
        out.push_str(&redact_after_scheme(
            scheme_before(&text[..mark]),
            &text[mark + 3..end],
        ));
    }
    out
}

/// The scheme that ends `text` (`https` in `see https`).
fn scheme_before(text: &str) -> &str {
    let start = text
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .map_or(0, |i| i + 1);
    &text[start..]
}

/// `rest` is what follows `scheme://`.
fn redact_after_scheme(scheme: &str, rest: &str) -> String {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest[..authority_end].rfind('@') {
        Some(at) => at,
        // `user:pa/ss@host`: the password ran past what looked like the host's end.
        None if rest[..authority_end].contains(':') => match rest.rfind('@') {
            Some(at) if at > authority_end => at,
            _ => return rest.to_owned(),
        },
        None => return rest.to_owned(),
    };
    let userinfo = &rest[..at];
    let database = matches!(scheme, "postgres" | "postgresql");
    let shown = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None if database => userinfo.to_owned(),
        None => "***".to_owned(),
    };
    format!("{shown}{}", &rest[at..])
}

/// Removes secrets from text meant for output: the credentials of every URL (with
/// [`redact_url`]) and the values of `password=`, `api_key=`, `token=` and `secret=`
/// parameters.
pub fn scrub(text: &str) -> String {
    let separator = |c: char| c.is_whitespace() || "\"'`<>()[]{},".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if separator(c) {
            out.push_str(&scrub_word(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&scrub_word(&word));
    out
}

fn scrub_word(word: &str) -> String {
    let word = if word.contains("://") {
        redact_url(word)
    } else {
        word.to_owned()
    };
    const KEYS: [&str; 5] = ["password=", "api_key=", "apikey=", "token=", "secret="];
    let lower = word.to_ascii_lowercase();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        let at_boundary = i == 0 || matches!(word.as_bytes()[i - 1], b'?' | b'&' | b';');
        let key = KEYS
            .iter()
            .find(|k| at_boundary && lower[i..].starts_with(*k));
        match key {
            Some(key) => {
                out.push_str(&word[i..i + key.len()]);
                out.push_str("***");
                i += key.len();
                while i < word.len() && !matches!(word.as_bytes()[i], b'&' | b';') {
                    i += 1;
                }
            }
            None => {
                let c = word[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_hidden() {
        assert_eq!(
            redact_url("postgres://bob:hunter2@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(
            redact_url("https://user:pw@host/repo"),
            "https://user:***@host/repo"
        );
        assert_eq!(
            redact_url("https://ghp_secret@github.com/o/r"),
            "https://***@github.com/o/r"
        );
        // An @ after the host is part of the path, not credentials.
        assert_eq!(redact_url("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
        assert_eq!(redact_url("/plain/path"), "/plain/path");
        assert_eq!(redact_url("ssh://git@host:22/r"), "ssh://***@host:22/r");
        assert_eq!(
            redact_url("postgres://autoland@db:5432/x"),
            "postgres://autoland@db:5432/x"
        );
        // A password with an unencoded `/`.
        assert_eq!(
            redact_url("postgres://u:pa/ss@db/x"),
            "postgres://u:***@db/x"
        );
        // A URL inside another's query.
        assert_eq!(
            redact_url("https://h/x?next=https://tok@evil/"),
            "https://h/x?next=https://***@evil/"
        );
        assert_eq!(
            redact_url("clone https://a:b@h/r into ssh://git@h/r"),
            "clone https://a:***@h/r into ssh://***@h/r"
        );
        assert_eq!(redact_url("x://"), "x://");
        assert_eq!(redact_url("://@"), "://***@");
        // Odd input: no panic; when in doubt, more is hidden rather than less.
        assert!(redact_url("https://[::1]:8/é@").starts_with("https://"));
        assert_eq!(redact_url("https://[::1]:8/x"), "https://[::1]:8/x");
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(
            scrub("database postgres://u:pw@db:5432/x?password=pw2&sslmode=require: down"),
            "database postgres://u:***@db:5432/x?password=***&sslmode=require: down"
        );
        assert_eq!(scrub("(`sqlite://a.db`)"), "(`sqlite://a.db`)");
        assert_eq!(scrub("tokens=3 ünïcode"), "tokens=3 ünïcode");
    }
}
