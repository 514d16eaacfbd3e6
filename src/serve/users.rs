//! The users file: `ACCESS_KEY SECRET_KEY` per line, `#` comments. On first start without
//! one, a file with a single random development user is created (mode 0600).

use std::path::Path;

use anyhow::Context;

/// Users as (access key, secret key).
pub fn load(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(ak), Some(sk), None) if sk.len() >= 8 => users.push((ak.to_owned(), sk.to_owned())),
            _ => anyhow::bail!(
                "{} line {}: expected `ACCESS_KEY SECRET_KEY` (secret of 8+ characters)",
                path.display(),
                n + 1
            ),
        }
    }
    anyhow::ensure!(!users.is_empty(), "{} lists no users", path.display());
    Ok(users)
}

/// A users file with one random development user, created if missing (mode 0600).
pub fn ensure(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut rnd = [0u8; 30];
    crate::engine::primitives::fill_random(&mut rnd);
    let hexs = crate::hex::encode(&rnd);
    let line = format!(
        "# access-key secret-key, one user per line\ndev{} {}\n",
        &hexs[..12].to_uppercase(),
        &hexs[12..]
    );
    crate::durable::write_atomic(path, line.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
