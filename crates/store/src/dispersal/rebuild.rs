//! Rebuild and scrub (`cipherstore rebuild`, and the background scrubber in `serve`): walks
//! every record that carries a manifest (objects, and parts of uploads in progress), checks
//! each slice of each piece — present, of the right length, and, when verifying, every
//! shard against its check and the checks against the digest the manifest holds — and
//! re-creates missing or damaged slices from `k` good ones, visible only once complete (a
//! directory target's under a temporary name renamed into place, an S3 target's as one
//! upload). Slices no record names (left by
//! writes that never committed, or by replaced parts) are swept once older than a grace.

use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

use super::code::{CHECK_LEN, Code, SliceDigest, check};
use super::manifest::{Piece, unwrap};
use super::targets::{SliceHandle, SliceWriter};
use super::{DispersedStore, Shared};
use crate::{Page, StoreError, in_place};

/// How to rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Read every slice in full and check it (a scrub); otherwise only presence and length.
    pub verify: bool,
    /// Find and count, change nothing.
    pub dry_run: bool,
    /// Bytes read per second at most (`None`: as fast as the targets go).
    pub rate: Option<u64>,
    /// Slice files no record names are removed once older than this (`None`: never).
    pub sweep_grace: Option<Duration>,
}

/// What a rebuild found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Pieces (single objects and parts) checked.
    pub pieces: u64,
    /// Slice bytes read.
    pub bytes_read: u64,
    /// Per target: slices missing or of the wrong length.
    pub missing: Vec<u64>,
    /// Per target: slices present whose bytes failed their digest or checks.
    pub damaged: Vec<u64>,
    /// Per target: slices re-created.
    pub rebuilt: Vec<u64>,
    /// Pieces that had fewer than `n` good slices.
    pub below_width: u64,
    /// Pieces that had exactly `k` good slices: one more loss would have lost them.
    pub at_threshold: u64,
    /// Pieces with fewer than `k` good slices: their objects cannot be read.
    pub lost: Vec<String>,
    /// Slice files no record names, removed (or, in a dry run, found).
    pub orphans: u64,
    /// Errors that stopped a piece's rebuild (the piece stays as it was).
    pub errors: Vec<String>,
}

/// A piece and what names it.
struct Found {
    what: String,
    code: Code,
    piece: Piece,
}

/// The state of one slice of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SliceState {
    Good,
    Missing,
    Damaged,
}

impl DispersedStore {
    /// Every piece the records name, with what names it.
    async fn pieces(&self) -> Result<Vec<Found>, StoreError> {
        let mut out = Vec::new();
        let mut add = |what: String, record: &[u8]| -> Result<(), StoreError> {
            if let Some((m, _)) = unwrap(record)? {
                let code = if (m.k, m.n) == (self.shared.code.k(), self.shared.code.n()) {
                    self.shared.code.clone()
                } else {
                    Code::new(m.k, m.n)
                        .map_err(|e| StoreError::Corrupt { path: what.clone(), reason: e.to_string() })?
                };
                for piece in m.pieces {
                    out.push(Found { what: what.clone(), code: code.clone(), piece });
                }
            }
            Ok(())
        };
        for bucket in self.inner.list_buckets().await? {
            let b = &bucket.name;
            let mut after: Option<String> = None;
            loop {
                let page = self.inner.list(b, Page::new("", after.as_deref(), 1000)).await?;
                for named in &page {
                    add(format!("{b}/{}", named.name), &named.record)?;
                }
                match page.last() {
                    Some(last) if page.len() == 1000 => after = Some(last.name.clone()),
                    _ => break,
                }
            }
            for upload in self.inner.list_uploads(b).await? {
                for part in self.inner.list_parts(b, &upload.name).await? {
                    add(format!("{b} upload {} part {}", upload.name, part.number), &part.record)?;
                }
            }
        }
        Ok(out)
    }

    /// Checks every piece and re-creates what is missing or damaged; `progress` is told
    /// (pieces done, pieces in all) as it goes. The records are read through the record
    /// store; the slices are read, coded and written in place ([`in_place`]: `progress` is borrowed; a
    /// rebuild is an operator's command, not request handling).
    pub async fn rebuild(
        &self,
        options: &RebuildOptions,
        progress: &dyn Fn(u64, u64),
    ) -> Result<RebuildReport, StoreError> {
        let n = self.shared.code.n();
        let report = RebuildReport {
            missing: vec![0; n],
            damaged: vec![0; n],
            rebuilt: vec![0; n],
            ..RebuildReport::default()
        };
        let found = self.pieces().await?;
        in_place(|| self.check_all(&found, options, progress, report))
    }

    /// [`DispersedStore::rebuild`]'s blocking part: every piece of `found` checked and
    /// restored, then the sweep.
    fn check_all(
        &self,
        found: &[Found],
        options: &RebuildOptions,
        progress: &dyn Fn(u64, u64),
        mut report: RebuildReport,
    ) -> Result<RebuildReport, StoreError> {
        let started = Instant::now();
        let total = found.len() as u64;
        let mut named = HashSet::new();
        for (done, f) in found.iter().enumerate() {
            named.insert(f.piece.blob.clone());
            report.pieces += 1;
            if let Err(e) = rebuild_piece(&self.shared, f, options, &mut report, started) {
                report.errors.push(format!("{}: {e}", f.what));
            }
            progress(done as u64 + 1, total);
        }
        if let Some(grace) = options.sweep_grace {
            report.orphans = sweep(&self.shared, &named, grace, options.dry_run);
        }
        Ok(report)
    }
}

/// Waits as long as needed to keep reads under `rate` bytes per second.
fn pace(options: &RebuildOptions, report: &RebuildReport, started: Instant) {
    if let Some(rate) = options.rate.filter(|&r| r > 0) {
        let due = Duration::from_secs_f64(report.bytes_read as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Whether slice `i` of `f`'s piece is whole and, when verifying, intact.
fn state_of(
    shared: &Shared,
    f: &Found,
    i: usize,
    options: &RebuildOptions,
    report: &mut RebuildReport,
    started: Instant,
) -> SliceState {
    let g = f.piece.geometry();
    let Ok(file) = shared.targets.open(i, &f.piece.blob, g.slice_len(&f.code)) else {
        return SliceState::Missing;
    };
    match file.stored_len() {
        Ok(len) if len == g.slice_len(&f.code) => {}
        _ => return SliceState::Missing,
    }
    if !options.verify {
        return SliceState::Good;
    }
    // Every shard against its check; the checks, in order, against the recorded digest.
    let mut digest = SliceDigest::default();
    for j in 0..g.stripes() {
        let c = match read_shard(&file, f, i, j) {
            Ok(Some((_, c))) => c,
            Ok(None) => return SliceState::Damaged,
            Err(e) => {
                // Unreadable is not damaged: the target (or its network) may be down.
                shared.health.failed(i, &e);
                tracing::warn!(target_index = i, blob = %f.piece.blob, error = %e, "a slice cannot be read; counted missing");
                return SliceState::Missing;
            }
        };
        digest.update(&c);
        report.bytes_read += (g.shard_at(&f.code, j).1 + CHECK_LEN) as u64;
        pace(options, report, started);
    }
    match &f.piece.slices[i] {
        Some(want)
            if !bool::from(subtle::ConstantTimeEq::ct_eq(digest.finish().as_bytes(), want.as_bytes())) =>
        {
            SliceState::Damaged
        }
        _ => SliceState::Good,
    }
}

/// Shard `j` of slice `i` and its check; `None` if the check fails.
fn read_shard(
    file: &SliceHandle,
    f: &Found,
    i: usize,
    j: u64,
) -> io::Result<Option<(Vec<u8>, [u8; CHECK_LEN])>> {
    let (at, len) = f.piece.geometry().shard_at(&f.code, j);
    let mut buf = file.read_at(at, len + CHECK_LEN)?;
    let (shard, tail) = buf.split_at(len);
    let c = check(&f.piece.blob, i, j, shard);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&c[..], tail)) {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some((buf, c)))
}

fn rebuild_piece(
    shared: &Shared,
    f: &Found,
    options: &RebuildOptions,
    report: &mut RebuildReport,
    started: Instant,
) -> io::Result<()> {
    let (k, n) = (f.code.k(), f.code.n());
    if shared.targets.len() != n {
        return Err(io::Error::other(format!(
            "dispersed over {n} slices, but {} targets are configured",
            shared.targets.len()
        )));
    }
    let states: Vec<SliceState> = (0..n).map(|i| state_of(shared, f, i, options, report, started)).collect();
    for (i, s) in states.iter().enumerate() {
        match s {
            SliceState::Missing => report.missing[i] += 1,
            SliceState::Damaged => report.damaged[i] += 1,
            SliceState::Good => {}
        }
    }
    let good: Vec<usize> = (0..n).filter(|&i| states[i] == SliceState::Good).collect();
    if good.len() == n {
        return Ok(());
    }
    report.below_width += 1;
    if good.len() == k {
        report.at_threshold += 1;
    }
    if good.len() < k {
        report.lost.push(format!("{} (blob {}: {} of {k} slices needed)", f.what, f.piece.blob, good.len()));
        return Ok(());
    }
    if options.dry_run {
        return Ok(());
    }
    let bad: Vec<usize> = (0..n).filter(|&i| states[i] != SliceState::Good).collect();
    let files: Vec<Option<SliceHandle>> = (0..n)
        .map(|i| {
            if states[i] == SliceState::Good {
                shared.targets.open(i, &f.piece.blob, f.piece.geometry().slice_len(&f.code)).ok()
            } else {
                None
            }
        })
        .collect();
    // Dropped before finishing (on any error below), the new slices leave nothing.
    let mut outs: Vec<(usize, SliceWriter, SliceDigest)> = Vec::new();
    for &i in &bad {
        outs.push((i, shared.targets.create_rebuilt(i, &f.piece.blob)?, SliceDigest::default()));
    }
    let g = f.piece.geometry();
    for j in 0..g.stripes() {
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut have = 0;
        for &i in &good {
            if have == k {
                break;
            }
            if let Some((s, _)) = files[i].as_ref().and_then(|file| read_shard(file, f, i, j).ok().flatten())
            {
                report.bytes_read += s.len() as u64;
                shards[i] = Some(s);
                have += 1;
            }
        }
        f.code.rebuild(&mut shards, true).map_err(io::Error::other)?;
        for (i, out, hash) in &mut outs {
            let Some(shard) = &shards[*i] else {
                return Err(io::Error::other("a rebuilt shard is missing"));
            };
            let c = check(&f.piece.blob, *i, j, shard);
            out.append(&[shard], &c)?;
            hash.update(&c);
        }
        pace(options, report, started);
    }
    for (i, _, hash) in &outs {
        if f.piece.slices[*i].as_ref().is_some_and(|want| *want != hash.finish()) {
            return Err(io::Error::other(format!("slice {i} rebuilt with another digest than recorded")));
        }
    }
    let (indexes, writers): (Vec<usize>, Vec<SliceWriter>) = outs.into_iter().map(|(i, w, _)| (i, w)).unzip();
    let mut failed = None;
    for (i, result) in indexes.into_iter().zip(shared.targets.finish_all(writers)) {
        match result {
            Ok(()) => {
                report.rebuilt[i] += 1;
                shared.health.ok(i);
            }
            Err(e) => {
                shared.health.failed(i, &e);
                failed = Some(io::Error::new(e.kind(), format!("slice {i} could not be stored: {e}")));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Removes slices (and unfinished rebuilds) no record names, older than `grace`.
fn sweep(shared: &Shared, named: &HashSet<String>, grace: Duration, dry_run: bool) -> u64 {
    let mut removed = 0;
    for i in 0..shared.targets.len() {
        let Ok(entries) = shared.targets.entries(i) else { continue };
        for (name, age) in entries {
            let file = name.rsplit('/').next().unwrap_or_default();
            let blob = file.split('.').next().unwrap_or_default();
            // A rebuild's temporary file outlives it only if it stopped half-way.
            if named.contains(blob) && !file.ends_with(".rebuild") {
                continue;
            }
            if age >= grace {
                removed += 1;
                if !dry_run {
                    let _ = shared.targets.remove_slice(i, &name);
                }
            }
        }
    }
    removed
}
