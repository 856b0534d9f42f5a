//! Globs on dotted names (`public.customers`, `public.*.email`): `*` matches any run of
//! characters (dots included), `?` any one character. Case-sensitive, because names are
//! compared after PostgreSQL's own identifier folding.

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<char>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.chars().collect(),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        matches_from(&self.pattern, &text)
    }

    /// Whether the glob matches `prefix` followed by at least one possible continuation
    /// (a wildcard column `t.*` may be any column of t).
    pub fn matches_some_extension(&self, prefix: &str) -> bool {
        let prefix: Vec<char> = prefix.chars().collect();
        (0..=self.pattern.len()).any(|split| {
            // The glob's head must match the prefix exactly; its tail can then match
            // some string, unless the head ended mid-literal (handled by the exact test).
            matches_from(&self.pattern[..split], &prefix)
        })
    }

    /// Whether the glob matches some string that ends in `suffix` (a name in a schema
    /// the proxy cannot know: `?.customers`).
    pub fn matches_some_prefix(&self, suffix: &str) -> bool {
        let suffix: Vec<char> = suffix.chars().collect();
        (0..=self.pattern.len()).any(|split| matches_from(&self.pattern[split..], &suffix))
    }

    /// Whether the glob matches `prefix` followed by *every* possible continuation.
    pub fn matches_every_extension(&self, prefix: &str) -> bool {
        let prefix: Vec<char> = prefix.chars().collect();
        (0..=self.pattern.len()).any(|split| {
            self.pattern[split..].iter().all(|c| *c == '*')
                && matches_from(&self.pattern[..split], &prefix)
        })
    }
}

fn matches_from(pattern: &[char], text: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last star: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(Glob::new("public.customers").matches("public.customers"));
        assert!(!Glob::new("public.customers").matches("public.customers2"));
        assert!(Glob::new("public.*").matches("public.customers"));
        assert!(Glob::new("*").matches("anything.at.all"));
        assert!(Glob::new("*.customers.*").matches("public.customers.email"));
        assert!(Glob::new("public.t?").matches("public.t1"));
        assert!(!Glob::new("public.t?").matches("public.t12"));
        assert!(Glob::new("*password*").matches("user_password_hash"));
        assert!(!Glob::new("Public.*").matches("public.x"));
    }

    #[test]
    fn wildcard_columns() {
        let email = Glob::new("public.customers.email");
        assert!(email.matches_some_extension("public.customers."));
        assert!(!email.matches_every_extension("public.customers."));
        assert!(!email.matches_some_extension("public.orders."));
        let all = Glob::new("public.customers.*");
        assert!(all.matches_every_extension("public.customers."));
        assert!(Glob::new("*").matches_every_extension("x.y."));
    }

    #[test]
    fn unknown_schemas() {
        assert!(Glob::new("public.customers").matches_some_prefix(".customers"));
        assert!(Glob::new("*.secrets").matches_some_prefix(".secrets"));
        assert!(!Glob::new("*.secrets").matches_some_prefix(".customers"));
        assert!(Glob::new("vault.*").matches_some_prefix(".tokens"));
        assert!(Glob::new("public.customers.ssn").matches_some_prefix(".customers.ssn"));
        assert!(!Glob::new("public.customers.ssn").matches_some_prefix(".orders.ssn"));
    }
}
