//! Signing in to Autoland's pages as one's Bugzilla account, the way Bugzilla's own tools
//! do: the person gives an API key, Autoland asks Bugzilla whose it is and then forgets it.
//! 5.3 and BMO answer `GET /rest/whoami`; 5.0–5.2 have no `whoami`, so there the person
//! also gives their login and Bugzilla confirms it with `GET /rest/valid_login`.

use super::client::{Account, BugzillaClient, BugzillaError};
use crate::config::AuthMode;

/// Why a sign-in was refused. The messages are shown on the sign-in page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Bugzilla does not know the key (code 306).
    #[error(
        "Bugzilla does not accept this API key (check it on Bugzilla's Preferences → API Keys page)"
    )]
    BadKey,
    /// 5.0–5.2 (or keys sent as a parameter) cannot tell who owns a key: the login is
    /// needed.
    #[error(
        "this Bugzilla (5.0–5.2, or API keys configured as a parameter) cannot say whose an \
         API key is: enter your Bugzilla login (email) too"
    )]
    LoginNeeded,
    /// `valid_login` said no.
    #[error("this API key does not belong to the Bugzilla account {0}")]
    WrongLogin(String),
    /// The key or login is malformed.
    #[error("{0}")]
    Malformed(String),
    /// Bugzilla could not answer.
    #[error("Bugzilla could not check the key just now: {0}")]
    Unavailable(String),
}

impl From<BugzillaError> for SignInError {
    fn from(e: BugzillaError) -> SignInError {
        match e {
            BugzillaError::InvalidKey | BugzillaError::NotLoggedIn(_) => SignInError::BadKey,
            other => SignInError::Unavailable(other.to_string()),
        }
    }
}

/// The longest API key accepted (Bugzilla's are 40 characters).
const MAX_KEY: usize = 200;

/// The Bugzilla account `api_key` belongs to (with `login` on 5.0–5.2). The key is used
/// for these calls only, never stored or logged.
pub async fn identify(
    client: &BugzillaClient,
    api_key: &str,
    login: Option<&str>,
) -> Result<Account, SignInError> {
    let api_key = api_key.trim();
    if api_key.is_empty()
        || api_key.len() > MAX_KEY
        || !api_key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(SignInError::Malformed(
            "an API key is one word of at most 200 printable characters".to_owned(),
        ));
    }
    let login = login.map(str::trim).filter(|l| !l.is_empty());
    if let Some(login) = login
        && (login.len() > 320 || !login.contains('@') || login.chars().any(char::is_control))
    {
        return Err(SignInError::Malformed(
            "the login must be the email address of your Bugzilla account".to_owned(),
        ));
    }
    let as_person = client.with_key(api_key);
    // How the client sends keys says which Bugzilla this is (asked once, then known):
    // the header is for 5.3 and BMO, the parameter for 5.0–5.2.
    if client.auth().await? == AuthMode::Header {
        let account = as_person.whoami().await?;
        if let Some(login) = login
            && !account.login.eq_ignore_ascii_case(login)
        {
            return Err(SignInError::WrongLogin(login.to_owned()));
        }
        return Ok(account);
    }
    let Some(login) = login else {
        return Err(SignInError::LoginNeeded);
    };
    if !as_person.valid_login(login).await? {
        return Err(SignInError::WrongLogin(login.to_owned()));
    }
    // The real name, for the page; the login as Bugzilla spells it.
    match as_person.user(login).await {
        Ok(account) => Ok(account),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(_) => Ok(Account {
            login: login.to_owned(),
            real_name: String::new(),
        }),
    }
}
