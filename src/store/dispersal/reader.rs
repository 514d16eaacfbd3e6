//! Reading a dispersed object by range (docs/FORMAT.md §7.2): a read maps its offset to a
//! piece and a stripe, fetches that stripe's shards (data slices first, then parity, then
//! slices the write could not place that a rebuild may have restored), drops any shard whose check fails or whose file
//! cannot be read, and rebuilds the stripe from any `k` good ones. A stripe with fewer than
//! `k` good shards fails the read with a clear error; no unchecked byte is ever returned.
//! The last stripe decoded is kept, so the pipeline's unit-sized reads decode each once.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, PoisonError};

use super::Shared;
use super::code::{CHECK_LEN, Code, CodeError, Geometry, check};
use super::manifest::{Manifest, Piece};
use crate::store::{ObjectReader, StoreError};

struct Placed {
    start: u64,
    piece: Piece,
    geometry: Geometry,
}

/// Slice files of the piece being read, opened once; `Err` once found unreadable or bad.
#[derive(Default)]
struct State {
    piece: Option<usize>,
    files: Vec<Option<Result<File, ()>>>,
    cached: Option<(usize, u64, Vec<u8>)>,
}

/// A dispersed object's bytes.
pub(super) struct DispersedReader {
    shared: Arc<Shared>,
    code: Code,
    pieces: Vec<Placed>,
    len: u64,
    state: Mutex<State>,
}

impl DispersedReader {
    pub(super) fn new(shared: Arc<Shared>, manifest: Manifest) -> Result<Self, CodeError> {
        let code = if manifest.k == shared.code.k() && manifest.n == shared.code.n() {
            shared.code.clone()
        } else {
            Code::new(manifest.k, manifest.n)?
        };
        let mut start = 0;
        let pieces = manifest
            .pieces
            .into_iter()
            .map(|piece| {
                let placed = Placed { start, geometry: piece.geometry(), piece };
                start += placed.piece.len;
                placed
            })
            .collect();
        Ok(Self { shared, code, pieces, len: start, state: Mutex::new(State::default()) })
    }

    /// Reads shard `j` of slice `i` of piece `p` and checks it.
    fn shard(&self, state: &mut State, p: usize, i: usize, j: u64) -> Option<Vec<u8>> {
        let placed = &self.pieces[p];
        if self.shared.targets.len() <= i {
            return None;
        }
        if state.files[i].is_none() {
            state.files[i] = Some(self.shared.targets.open(i, &placed.piece.blob).map_err(|e| {
                self.shared.health.failed(i, &e);
            }));
        }
        let Some(Ok(file)) = &state.files[i] else { return None };
        let (at, len) = placed.geometry.shard_at(&self.code, j);
        let mut buf = vec![0u8; len + CHECK_LEN];
        let good = match file.read_exact_at(&mut buf, at) {
            Ok(()) => {
                let (shard, tail) = buf.split_at(len);
                bool::from(subtle::ConstantTimeEq::ct_eq(&check(&placed.piece.blob, i, j, shard)[..], tail))
            }
            Err(e) => {
                self.shared.health.failed(i, &e);
                false
            }
        };
        if !good {
            self.shared.health.bad_slice(i);
            tracing::warn!(target_index = i, blob = %placed.piece.blob, stripe = j, "a dispersed slice is damaged or short; reading around it");
            state.files[i] = Some(Err(()));
            return None;
        }
        buf.truncate(len);
        Some(buf)
    }

    /// Stripe `j` of piece `p`, rebuilt if need be.
    fn stripe(&self, state: &mut State, p: usize, j: u64) -> io::Result<Vec<u8>> {
        if state.piece != Some(p) {
            state.piece = Some(p);
            state.files = (0..self.code.n()).map(|_| None).collect();
        }
        let (k, n) = (self.code.k(), self.code.n());
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut found = 0;
        // Slices the write placed first (data, then parity), then any a write missed that a
        // rebuild has since restored (their shard checks vouch for them).
        let slices = &self.pieces[p].piece.slices;
        let order = (0..n).filter(|&i| slices[i].is_some()).chain((0..n).filter(|&i| slices[i].is_none()));
        for i in order {
            if found == k {
                break;
            }
            if let Some(s) = self.shard(state, p, i, j) {
                shards[i] = Some(s);
                found += 1;
            }
        }
        if found < k {
            // Carried as the store's own error, so the S3 layer answers 503 and logs this.
            return Err(io::Error::other(StoreError::Unavailable(format!(
                "a dispersed object cannot be read: only {found} of the {k} slices needed are available (threshold {k} of width {n})"
            ))));
        }
        if shards[..k].iter().any(Option::is_none) {
            self.shared.health.degraded_read();
            self.code.rebuild(&mut shards, false).map_err(io::Error::other)?;
        }
        let range = self.pieces[p].geometry.stripe(j);
        let want = usize::try_from(range.end - range.start).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(want);
        for s in shards.iter().take(k).flatten() {
            let take = (want - out.len()).min(s.len());
            out.extend_from_slice(&s[..take]);
        }
        if out.len() != want {
            return Err(io::Error::other("a dispersed stripe came back short"));
        }
        Ok(out)
    }
}

impl ObjectReader for DispersedReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            if at >= self.len {
                break;
            }
            let p = self.pieces.partition_point(|x| x.start + x.piece.len <= at);
            let Some(placed) = self.pieces.get(p) else { break };
            let local = at - placed.start;
            let j = placed.geometry.stripe_of(local);
            let range = placed.geometry.stripe(j);
            let hit = matches!(&state.cached, Some((cp, cj, _)) if *cp == p && *cj == j);
            if !hit {
                let bytes = self.stripe(&mut state, p, j)?;
                state.cached = Some((p, j, bytes));
            }
            let Some((_, _, bytes)) = &state.cached else { break };
            let from = usize::try_from(local - range.start).map_err(io::Error::other)?;
            let n = (bytes.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
            done += n;
        }
        Ok(done)
    }
}
