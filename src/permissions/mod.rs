//! Commit permissions: who holds which level, and whether a request may land where it asks.
//!
//! The rule (first version): for every repository a request goes to (try, then each final
//! destination), every patch needs its author, or someone who gave it review+ or feedback+,
//! to hold the repository's level; a final (non-try) destination also needs the requester
//! to hold its level. A denial names who lacked what.

use std::collections::BTreeMap;

use crate::config::{Config, RepoConfig};
use crate::request::{Patch, Review, email_of};

/// Where user levels come from. A file (the configuration) today; LDAP later.
pub trait PermissionSource: Send + Sync {
    /// The highest level a user holds, if any (identities are email addresses,
    /// compared case-insensitively).
    fn level_of(&self, user: &str) -> Option<usize>;
    /// The rank of a level name.
    fn rank(&self, level: &str) -> Option<usize>;
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
                        .map(|r| format!("{} ({})", r.who, describe(source, &r.who)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            problems.push(format!(
                "patch {} (`{}`): its author {} ({}) does not hold {}, required by `{}`; {}",
                patch.position,
                patch.name,
                author,
                describe(source, author),
                repo.level,
                repo.name,
                reviewers
            ));
        }
        if (requester_everywhere || !repo.is_try) && !holds(requester) {
            problems.push(format!(
                "the requester {} ({}) does not hold {}, required by `{}`",
                email_of(requester),
                describe(source, requester),
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

fn describe(source: &dyn PermissionSource, who: &str) -> String {
    match source.level_of(who) {
        Some(_) => "has a lower level".to_owned(),
        None => "no level".to_owned(),
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
