//! Levels from an LDAP directory (`[permissions] source = "ldap"`), the way Mozilla's
//! Autoland read them: a person is found by their email (`mail`, or a second attribute
//! holding their Bugzilla login), and holds the highest level of the groups they are in
//! (`memberOf`, or a search of groups by `member`, nested groups followed).
//!
//! **Failure is never a decision.** A directory that cannot be reached, times out or
//! refuses the bind gives [`DirectoryError`], never "no level": the caller waits. Only a
//! search that succeeded decides, and only that is cached (`cache_seconds` for people
//! found with a level, `negative_cache_seconds` for the rest).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};
use serde::Serialize;

use crate::config::{GroupLookup, LdapConfig};

/// Why the directory could not answer. Never a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Not reachable, timed out, TLS failed, or an unexpected answer.
    #[error("the directory {url} is unreachable: {detail}")]
    Unreachable {
        /// The server.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The bind was refused (wrong DN or password): an operator must fix the settings.
    #[error("the directory {url} refused Autoland's bind as {dn}: {detail}")]
    BindRefused {
        /// The server.
        url: String,
        /// The bind DN.
        dn: String,
        /// The server's words.
        detail: String,
    },
}

/// What the directory says of one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The person's entry (none: nobody has this address).
    pub dn: Option<String>,
    /// Their level and the group that gave it (none: no group mapped to a level).
    pub level: Option<(String, String)>,
    /// Every group they are in (for the denial's message).
    pub groups: Vec<String>,
}

struct Cached {
    found: Found,
    until: Instant,
}

/// A directory and its cache.
pub struct Directory {
    config: LdapConfig,
    /// Level names, lowest first.
    levels: Vec<String>,
    password: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.config.url)
            .field("bind_dn", &self.config.bind_dn)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// From the `[permissions.ldap]` settings (the password already read from its
    /// environment variable or file).
    pub fn new(
        config: LdapConfig,
        levels: Vec<String>,
        password: String,
    ) -> Result<Directory, String> {
        let tls = match &config.ca_file {
            Some(path) => Some(Arc::new(client_config(path)?)),
            None => None,
        };
        Ok(Directory {
            config,
            levels,
            password,
            tls,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The server's URL (for messages).
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn unreachable(&self, detail: impl Into<String>) -> DirectoryError {
        DirectoryError::Unreachable {
            url: self.config.url.clone(),
            detail: detail.into(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_seconds.max(1))
    }

    /// Connects and binds (what `serve --check`, start-up and the health module run).
    pub async fn check(&self) -> Result<(), DirectoryError> {
        let mut ldap = self.connect().await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.unreachable(describe(&e)))?;
        ldap3::drive!(conn);
        let bound = ldap
            .with_timeout(self.timeout())
            .simple_bind(&self.config.bind_dn, &self.password)
            .await
            .map_err(|e| self.unreachable(describe(&e)))?;
        if bound.rc != 0 {
            // 49: invalid credentials; 53 (unwilling), 50 (access): also the settings.
            let detail = result_text(bound.rc, &bound.text);
            return Err(match bound.rc {
                48..=50 | 53 => DirectoryError::BindRefused {
                    url: self.config.url.clone(),
                    dn: self.config.bind_dn.clone(),
                    detail,
                },
                _ => self.unreachable(detail),
            });
        }
        Ok(ldap)
    }

    /// Looks up each address (cached answers first); every address gets an answer, or
    /// the whole lookup fails.
    pub async fn lookup(&self, who: &[String]) -> Result<HashMap<String, Found>, DirectoryError> {
        let now = Instant::now();
        let mut answers = HashMap::new();
        let mut missing = Vec::new();
        {
            // A poisoned lock still holds a usable cache: skipping it would leave the
            // addresses unanswered, which reads as "holds nothing".
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for address in who {
                match cache.get(address) {
                    Some(c) if c.until > now => {
                        answers.insert(address.clone(), c.found.clone());
                    }
                    _ => missing.push(address.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(answers);
        }
        let mut ldap = self.connect().await?;
        for address in missing {
            let found = self.find(&mut ldap, &address).await?;
            let ttl = if found.level.is_some() {
                self.config.cache_seconds
            } else {
                self.config.negative_cache_seconds
            };
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(
                    address.clone(),
                    Cached {
                        found: found.clone(),
                        until: Instant::now() + Duration::from_secs(ttl),
                    },
                );
            answers.insert(address, found);
        }
        let _ = ldap.unbind().await;
        Ok(answers)
    }

    async fn search(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let result = ldap
            .with_timeout(self.timeout())
            .search(base, Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| self.unreachable(describe(&e)))?;
        let (entries, done) = (result.0, result.1);
        // 32 (no such object): the base does not exist; never read as "nobody".
        if done.rc != 0 {
            return Err(self.unreachable(format!(
                "search under `{base}` answered {}",
                result_text(done.rc, &done.text)
            )));
        }
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    async fn find(&self, ldap: &mut ldap3::Ldap, address: &str) -> Result<Found, DirectoryError> {
        let escaped = ldap_escape(address);
        let mut clauses = vec![format!("({}={escaped})", self.config.mail_attribute)];
        if let Some(login) = &self.config.login_attribute {
            clauses.push(format!("({login}={escaped})"));
        }
        let filter = format!("(|{})", clauses.concat());
        let people = self
            .search(ldap, &self.config.base_dn, &filter, vec!["memberOf", "1.1"])
            .await?;
        let person = match people.as_slice() {
            [] => {
                return Ok(Found {
                    dn: None,
                    level: None,
                    groups: Vec::new(),
                });
            }
            [one] => one,
            many => {
                // Two entries claim the address: grant nothing rather than guess.
                return Ok(Found {
                    dn: Some(
                        many.iter()
                            .map(|e| e.dn.clone())
                            .collect::<Vec<_>>()
                            .join(" and "),
                    ),
                    level: None,
                    groups: Vec::new(),
                });
            }
        };
        let groups = match self.config.group_lookup {
            GroupLookup::MemberOf => person
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            GroupLookup::Search => self.groups_by_search(ldap, &person.dn).await?,
        };
        let level = self.level_of(&groups);
        Ok(Found {
            dn: Some(person.dn.clone()),
            level,
            groups,
        })
    }

    /// Groups whose `member` (or `uniqueMember`) is `dn`, then the groups those are
    /// members of (nested), up to five levels.
    async fn groups_by_search(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
    ) -> Result<Vec<String>, DirectoryError> {
        let base = self
            .config
            .group_base_dn
            .clone()
            .unwrap_or_else(|| self.config.base_dn.clone());
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut frontier = vec![dn.to_owned()];
        for _ in 0..5 {
            let mut next = Vec::new();
            for member in &frontier {
                let m = ldap_escape(member);
                let filter = format!("(|(member={m})(uniqueMember={m}))");
                for group in self.search(ldap, &base, &filter, vec!["1.1"]).await? {
                    if seen.insert(group.dn.clone()) {
                        next.push(group.dn);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(seen.into_iter().collect())
    }

    /// The highest level a list of groups gives, and the group that gives it.
    fn level_of(&self, groups: &[String]) -> Option<(String, String)> {
        let mut best: Option<(usize, String, String)> = None;
        for group in groups {
            let Some(level) = self.config.mapped_level(group) else {
                continue;
            };
            let Some(rank) = self.levels.iter().position(|l| l == level) else {
                continue;
            };
            if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                best = Some((rank, level.to_owned(), group.clone()));
            }
        }
        best.map(|(_, level, group)| (level, group))
    }
}

/// An LDAP result code in words (as `ldapsearch` prints them), with the server's text.
fn result_text(rc: u32, text: &str) -> String {
    let name = match rc {
        1 => "Operations error",
        3 => "Time limit exceeded",
        32 => "No such object",
        48 => "Inappropriate authentication",
        49 => "Invalid credentials",
        50 => "Insufficient access",
        51 => "Server is busy",
        52 => "Server is unavailable",
        53 => "Server is unwilling to perform",
        _ => "LDAP error",
    };
    let text = text.trim();
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}): {text}")
    }
}

fn describe(e: &LdapError) -> String {
    match e {
        LdapError::Timeout { .. } => "timed out".to_owned(),
        other => other.to_string(),
    }
}

/// A TLS client configuration that trusts the CA certificates in `path` (PEM).
fn client_config(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the LDAP CA file {}: {e}", path.display()))?;
    for cert in certs {
        let cert =
            cert.map_err(|e| format!("the LDAP CA file {} is not PEM: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("the LDAP CA file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "the LDAP CA file {} holds no certificate",
            path.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
