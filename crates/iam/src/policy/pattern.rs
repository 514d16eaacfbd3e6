//! Wildcard patterns as IAM policies write them: `*` matches any run of characters
//! (`/` included), `?` exactly one; everything else matches itself, with or without case.

/// Whether `text` matches `pattern`; `fold` compares ASCII letters without case.
///
/// Greedy with one backtrack point (the last `*` seen), so a match costs at most
/// `pattern.len() * text.len()` steps and usually one pass.
pub(crate) fn matches(pattern: &str, text: &str, fold: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let same = |a: u8, b: u8| if fold { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' && is_char_start(t, ti) || same(p[pi], t[ti])) {
            if p[pi] == b'?' {
                ti = next_char(t, ti);
            } else {
                ti += 1;
            }
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            let resume = next_char(t, st);
            star = Some((sp, resume));
            ti = resume;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether `pattern` has a wildcard.
pub(crate) fn is_wild(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

fn is_char_start(t: &[u8], i: usize) -> bool {
    t.get(i).is_some_and(|&b| (b as i8) >= -0x40)
}

/// The index after the UTF-8 character starting at `i` (so `?` is one character).
fn next_char(t: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < t.len() && (t[j] as i8) < -0x40 {
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y", true),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b/x", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t, false), want, "{p:?} against {t:?}");
        }
        assert!(matches("s3:Get*", "s3:getobject", true));
        assert!(!matches("s3:Get*", "s3:getobject", false));
        assert!(is_wild("s3:*") && is_wild("a?") && !is_wild("s3:GetObject"));
    }

    #[test]
    fn a_long_pattern_against_a_long_text_ends_quickly() {
        let p = "*a".repeat(50);
        let t = "a".repeat(2000) + "b";
        assert!(!matches(&p, &t, false));
    }
}
