//! Commit permissions: who holds which level, and whether a request may land where it asks.
//!
//! The rule (first version): for every repository a request goes to (try, then each final
//! destination), every patch needs its author, or someone who gave it review+ or feedback+,
//! to hold the repository's level; a final (non-try) destination also needs the requester
//! to hold its level. A denial names who lacked what.

pub mod ldap;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::{Config, PermissionSourceKind, RepoConfig};
use crate::request::{Patch, Review, email_of};

pub use ldap::{Directory, DirectoryError};

/// Who holds which level, as the rule reads it: the static table, or a [`Snapshot`] of
/// what the table and the directory said for the people of one check.
pub trait PermissionSource: Send + Sync {
    /// The highest level a user holds, if any (identities are email addresses,
    /// compared case-insensitively).
    fn level_of(&self, user: &str) -> Option<usize>;
    /// The rank of a level name.
    fn rank(&self, level: &str) -> Option<usize>;
    /// What `user` holds and where that comes from, for a denial.
    fn describe(&self, user: &str) -> String {
        match self.level_of(user) {
            Some(_) => "has a lower level".to_owned(),
            None => "no level".to_owned(),
        }
    }
}

/// What one person holds, and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holding {
    /// The address looked up.
    pub identity: String,
    /// The level held (none: none).
    pub level: Option<String>,
    /// `static table`, `LDAP group <dn>`, or where it was looked for.
    pub source: String,
    /// The whole story, for a denial or the request page.
    pub detail: String,
}

/// Levels and where they come from: the static table, and the directory if configured.
#[derive(Debug)]
pub struct Permissions {
    table: StaticPermissions,
    directory: Option<Directory>,
}

impl Permissions {
    /// From the configuration (reads the LDAP bind password).
    pub fn from_config(config: &Config) -> Result<Permissions, String> {
        let table = StaticPermissions::from_config(config);
        let directory = match (config.permissions.source, &config.permissions.ldap) {
            (PermissionSourceKind::Ldap, Some(ldap)) => {
                let password = ldap.bind_password().map_err(|e| e.to_string())?;
                Some(Directory::new(
                    ldap.clone(),
                    config.permissions.levels.clone(),
                    password,
                )?)
            }
            _ => None,
        };
        Ok(Permissions { table, directory })
    }

    /// The directory, if levels come from one.
    pub fn directory(&self) -> Option<&Directory> {
        self.directory.as_ref()
    }

    /// What `people` hold as far as the static table knows, the others marked with
    /// `why` the directory was not asked (a page that must show something while the
    /// directory is down). Never used to decide.
    pub fn offline_snapshot<'a>(
        &self,
        people: impl IntoIterator<Item = &'a str>,
        why: &str,
    ) -> Snapshot {
        let (mut snapshot, ask) = self.table_answers(people);
        for address in ask {
            snapshot.holdings.insert(
                address.clone(),
                Holding {
                    identity: address,
                    level: None,
                    source: "unknown".to_owned(),
                    detail: format!("not known: {why}"),
                },
            );
        }
        snapshot
    }

    /// What `people` hold: the static table first (service accounts), then the
    /// directory. An unreachable directory is an error, never "no level".
    pub async fn snapshot<'a>(
        &self,
        people: impl IntoIterator<Item = &'a str>,
    ) -> Result<Snapshot, DirectoryError> {
        let (mut snapshot, ask) = self.table_answers(people);
        if let Some(directory) = &self.directory
            && !ask.is_empty()
        {
            let found = directory.lookup(&ask).await?;
            for address in ask {
                let holding = match found.get(&address) {
                    Some(f) => directory_holding(directory, &address, f),
                    None => Holding {
                        identity: address.clone(),
                        level: None,
                        source: format!("LDAP {}", directory.url()),
                        detail: format!("no level: not looked up in {}", directory.url()),
                    },
                };
                snapshot.holdings.insert(address, holding);
            }
        }
        Ok(snapshot)
    }

    /// The static table's answers, and the addresses left for the directory.
    fn table_answers<'a>(
        &self,
        people: impl IntoIterator<Item = &'a str>,
    ) -> (Snapshot, Vec<String>) {
        let at = crate::store::now_ms();
        let mut holdings = HashMap::new();
        let mut ask = Vec::new();
        for who in people {
            let address = email_of(who).to_lowercase();
            if holdings.contains_key(&address) || ask.contains(&address) {
                continue;
            }
            match self.table.users.get(&address) {
                Some(level) => {
                    holdings.insert(
                        address.clone(),
                        Holding {
                            identity: address,
                            level: Some(level.clone()),
                            source: "static table".to_owned(),
                            detail: format!("holds {level} (static table)"),
                        },
                    );
                }
                None if self.directory.is_some() => ask.push(address),
                None => {
                    holdings.insert(
                        address.clone(),
                        Holding {
                            identity: address,
                            level: None,
                            source: "static table".to_owned(),
                            detail: "no level (not in the static table)".to_owned(),
                        },
                    );
                }
            }
        }
        (
            Snapshot {
                levels: self.table.levels.clone(),
                holdings,
                at,
            },
            ask,
        )
    }
}

fn directory_holding(directory: &Directory, address: &str, found: &ldap::Found) -> Holding {
    let url = directory.url();
    match (&found.dn, &found.level) {
        (None, _) => Holding {
            identity: address.to_owned(),
            level: None,
            source: format!("LDAP {url}"),
            detail: format!("no level: {address} is not in the directory {url}"),
        },
        (Some(dn), Some((level, group))) => Holding {
            identity: address.to_owned(),
            level: Some(level.clone()),
            source: format!("LDAP group {group}"),
            detail: format!("holds {level} from LDAP group {group} (as {dn})"),
        },
        (Some(dn), None) => Holding {
            identity: address.to_owned(),
            level: None,
            source: format!("LDAP {url}"),
            detail: if found.groups.is_empty() {
                format!("no level: {dn} in {url} is in no group")
            } else {
                format!(
                    "no level: {dn} in {url} is in no group mapped to a level (groups: {})",
                    found.groups.join("; ")
                )
            },
        },
    }
}

/// What the people of one check hold, as looked up once.
#[derive(Debug, Clone)]
pub struct Snapshot {
    levels: Vec<String>,
    holdings: HashMap<String, Holding>,
    /// When it was looked up (ms).
    pub at: i64,
}

impl Snapshot {
    /// What `who` holds, if they were looked up.
    pub fn holding(&self, who: &str) -> Option<&Holding> {
        self.holdings.get(&email_of(who).to_lowercase())
    }
}

impl PermissionSource for Snapshot {
    fn level_of(&self, user: &str) -> Option<usize> {
        let level = self.holding(user)?.level.as_deref()?;
        self.rank(level)
    }

    fn rank(&self, level: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == level)
    }

    fn describe(&self, user: &str) -> String {
        match self.holding(user) {
            Some(h) => h.detail.clone(),
            None => "not looked up".to_owned(),
        }
    }
}

/// Who satisfied a level for a request, recorded when it was authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The repository.
    pub repo: String,
    /// The level it requires.
    pub level: String,
    /// Whose level counted: `patch 1 author`, `patch 2 review+`, `requester`.
    pub role: String,
    /// The identity looked up.
    pub identity: String,
    /// The level they hold.
    pub holds: String,
    /// Where that comes from (`static table`, `LDAP group <dn>`).
    pub source: String,
    /// When it was looked up (ms).
    pub decided_at: i64,
}

/// The decisions behind a granted check: for each repository, who vouched for each
/// patch and the requester's level where it counted.
pub fn decisions(
    snapshot: &Snapshot,
    requester: &str,
    patches: &[Patch],
    repos: &[&RepoConfig],
    requester_everywhere: bool,
) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut push = |repo: &RepoConfig, role: String, who: &str| {
        if let Some(h) = snapshot.holding(who) {
            out.push(Decision {
                repo: repo.name.clone(),
                level: repo.level.clone(),
                role,
                identity: h.identity.clone(),
                holds: h.level.clone().unwrap_or_default(),
                source: h.source.clone(),
                decided_at: snapshot.at,
            });
        }
    };
    for repo in repos {
        for patch in patches {
            match voucher(snapshot, patch, &repo.level) {
                Some(Voucher::Author(author)) => {
                    push(repo, format!("patch {} author", patch.position), author)
                }
                Some(Voucher::Reviewer(r)) => push(
                    repo,
                    format!("patch {} {}+", patch.position, r.kind.as_str()),
                    &r.who,
                ),
                None => {}
            }
        }
        if requester_everywhere || !repo.is_try {
            push(repo, "requester".to_owned(), requester);
        }
    }
    out
}

/// Everyone whose level the rule may read for these patches and this requester.
pub fn people<'p>(requester: &'p str, patches: &'p [Patch]) -> Vec<&'p str> {
    let mut who = vec![requester];
    for patch in patches {
        who.push(patch.accountable());
        who.extend(patch.reviews.iter().map(|r| r.who.as_str()));
    }
    who
}

/// Levels and users from the configuration (and the file it names).
#[derive(Debug, Clone)]
pub struct StaticPermissions {
    levels: Vec<String>,
    users: BTreeMap<String, String>,
}

impl StaticPermissions {
    /// From the configuration.
    pub fn from_config(config: &Config) -> StaticPermissions {
        StaticPermissions {
            levels: config.permissions.levels.clone(),
            users: config
                .permissions
                .users
                .iter()
                .map(|(user, level)| (user.to_lowercase(), level.clone()))
                .collect(),
        }
    }
}

impl PermissionSource for StaticPermissions {
    fn level_of(&self, user: &str) -> Option<usize> {
        let level = self.users.get(&email_of(user).to_lowercase())?;
        self.rank(level)
    }

    fn rank(&self, level: &str) -> Option<usize> {
        self.levels.iter().position(|l| l == level)
    }
}

/// Whether `who` holds `level` (or a higher one).
pub fn holds(source: &dyn PermissionSource, who: &str, level: &str) -> bool {
    match (source.rank(level), source.level_of(who)) {
        (Some(required), Some(held)) => held >= required,
        _ => false,
    }
}

/// Who makes a patch acceptable where a level is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voucher<'p> {
    /// Its accountable author holds the level.
    Author(&'p str),
    /// Someone who gave it review+ or feedback+ does.
    Reviewer(&'p Review),
}

/// The rule for one patch and one level: its author, or else the first of its reviewers
/// and feedback givers, who holds `level` (none: the patch may not go there).
pub fn voucher<'p>(
    source: &dyn PermissionSource,
    patch: &'p Patch,
    level: &str,
) -> Option<Voucher<'p>> {
    let author = patch.accountable();
    if holds(source, author, level) {
        return Some(Voucher::Author(author));
    }
    patch
        .reviews
        .iter()
        .find(|r| holds(source, &r.who, level))
        .map(Voucher::Reviewer)
}

/// Why a request may not land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// One line per problem, e.g. "patch 1 (`fix.patch`): neither its author bob@x nor
    /// its reviewers (none) hold scm_level_3, required by `central`".
    pub problems: Vec<String>,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

/// Checks a request against every repository it goes to. With `requester_everywhere`,
/// the requester must hold every repository's level, try included: for requests whose
/// authors and reviewers are only claimed by the submitter (the JSON API), so that a
/// token without a level cannot get code run on try in someone else's name.
pub fn check(
    source: &dyn PermissionSource,
    requester: &str,
    patches: &[Patch],
    repos: &[&RepoConfig],
    requester_everywhere: bool,
) -> Result<(), Denial> {
    let mut problems = Vec::new();
    for repo in repos {
        let Some(required) = source.rank(&repo.level) else {
            problems.push(format!(
                "repository `{}` requires unknown level `{}`",
                repo.name, repo.level
            ));
            continue;
        };
        let holds = |who: &str| source.level_of(who).is_some_and(|l| l >= required);
        for patch in patches {
            let author = patch.accountable();
            if voucher(source, patch, &repo.level).is_some() {
                continue;
            }
            let reviewers = if patch.reviews.is_empty() {
                "no reviewer or feedback giver is recorded".to_owned()
            } else {
                format!(
                    "nor do its reviewers/feedback givers {}",
                    patch
                        .reviews
                        .iter()
                        .map(|r| format!("{} ({})", r.who, source.describe(&r.who)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            problems.push(format!(
                "patch {} (`{}`): its author {} ({}) does not hold {}, required by `{}`; {}",
                patch.position,
                patch.name,
                author,
                source.describe(author),
                repo.level,
                repo.name,
                reviewers
            ));
        }
        if (requester_everywhere || !repo.is_try) && !holds(requester) {
            problems.push(format!(
                "the requester {} ({}) does not hold {}, required by `{}`",
                email_of(requester),
                source.describe(requester),
                repo.level,
                repo.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Denial { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::PatchFormat;
    use crate::request::{Review, ReviewKind};

    fn config() -> Config {
        toml::from_str(
            r#"
            [[repositories]]
            name = "central"
            kind = "git"
            pull_url = "/c"
            level = "scm_level_3"
            [[repositories]]
            name = "try"
            kind = "git"
            pull_url = "/t"
            level = "scm_level_1"
            try = true
            ci_command = "true"
            [permissions.users]
            "alice@example.com" = "scm_level_3"
            "bob@example.com" = "scm_level_1"
            "#,
        )
        .unwrap()
    }

    fn patch(author: &str, reviews: &[&str]) -> Patch {
        Patch {
            position: 1,
            name: "p".into(),
            format: PatchFormat::PlainDiff,
            author: author.into(),
            submitter: None,
            date: None,
            message: "m".into(),
            diff: String::new(),
            files: vec![],
            reviews: reviews
                .iter()
                .map(|w| Review {
                    who: (*w).into(),
                    kind: ReviewKind::Review,
                })
                .collect(),
        }
    }

    #[test]
    fn author_with_level_may_land() {
        let config = config();
        let perms = StaticPermissions::from_config(&config);
        let repos = [config.repo("try").unwrap(), config.repo("central").unwrap()];
        let patches = [patch("Alice <ALICE@example.com>", &[])];
        assert_eq!(
            check(&perms, "alice@example.com", &patches, &repos, false),
            Ok(())
        );
    }

    #[test]
    fn a_reviewer_with_level_vouches_for_the_author() {
        let config = config();
        let perms = StaticPermissions::from_config(&config);
        let repos = [config.repo("central").unwrap()];
        let patches = [patch("Newcomer <new@example.com>", &["alice@example.com"])];
        assert_eq!(
            check(&perms, "alice@example.com", &patches, &repos, false),
            Ok(())
        );
    }

    #[test]
    fn denial_names_who_lacked_what() {
        let config = config();
        let perms = StaticPermissions::from_config(&config);
        let repos = [config.repo("try").unwrap(), config.repo("central").unwrap()];
        let patches = [patch("Newcomer <new@example.com>", &["bob@example.com"])];
        let denial = check(&perms, "bob@example.com", &patches, &repos, false).unwrap_err();
        let text = denial.to_string();
        // try (level 1): bob vouches. central: nobody holds level 3.
        assert_eq!(denial.problems.len(), 2, "{text}");
        assert!(text.contains("new@example.com (no level)"), "{text}");
        assert!(
            text.contains("bob@example.com (has a lower level)"),
            "{text}"
        );
        assert!(text.contains("scm_level_3"), "{text}");
        assert!(text.contains("requester bob@example.com"), "{text}");
    }

    #[test]
    fn api_requesters_need_the_try_level_too() {
        let config = config();
        let perms = StaticPermissions::from_config(&config);
        let repos = [config.repo("try").unwrap()];
        // The patch claims alice as its author, but nobody vouches for the submitter.
        let patches = [patch("Alice <alice@example.com>", &[])];
        assert_eq!(
            check(&perms, "nobody@example.com", &patches, &repos, false),
            Ok(())
        );
        let denial = check(&perms, "nobody@example.com", &patches, &repos, true).unwrap_err();
        assert!(
            denial.to_string().contains("requester nobody@example.com"),
            "{denial}"
        );
    }
}
