//! Keeping secrets out of what Autoland prints, logs and stores: URLs lose their
//! credentials, free text loses `password=`-style values. One place, so every output
//! (VCS command records, database messages, the check plugin) hides the same things.

/// Hides the credentials of a URL (or of any argument that looks like one): the password
/// of `user:password@`, or the whole userinfo when it is a single word (often a token,
/// as in `https://TOKEN@host/repo`) — except in a database URL, where a single word is
/// the user name. Anything else is returned unchanged.
pub fn redact_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    let userinfo = &rest[..at];
    let database = matches!(&text[..scheme_end], "postgres" | "postgresql");
    let shown = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None if database => userinfo.to_owned(),
        None => "***".to_owned(),
    };
    format!("{}{shown}{}", &text[..scheme_end + 3], &rest[at..])
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
