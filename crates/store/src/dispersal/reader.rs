//! Reading a dispersed object by range (docs/FORMAT.md §7.2): a read maps its offset to a
//! piece and a stripe, fetches `k` of that stripe's shards at once (data slices first, then
//! parity, targets that failed lately last, then slices the write could not place that a
//! rebuild may have restored), drops any shard whose check fails or that cannot be read
//! (an S3 target's request times out after its `timeout_secs`), fetches the next in line
//! for each, and rebuilds the stripe from any `k` good ones. A stripe with fewer than
//! `k` good shards fails the read with a clear error; no unchecked byte is ever returned.
//! The last stripe decoded is kept, so the pipeline's unit-sized reads decode each once.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::Shared;
use super::code::{CHECK_LEN, Code, CodeError, Geometry, check};
use super::manifest::{Manifest, Piece};
use super::targets::SliceHandle;
use crate::{ObjectReader, StoreError};

struct Placed {
    start: u64,
    piece: Piece,
    geometry: Geometry,
}

/// Slices of the piece being read, opened once; `Err` once found unreadable or bad.
#[derive(Default)]
struct State {
    piece: Option<usize>,
    files: Vec<Option<Result<SliceHandle, ()>>>,
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

    /// Tells the targets' health about a failed read of a slice on target `i`: a slice
    /// that is missing or short is the slice's problem, not the target's.
    fn note_failure(&self, i: usize, error: &io::Error) {
        if self.shared.targets.only_the_slice(i, error) {
            self.shared.health.ok(i);
        } else {
            self.shared.health.failed(i, error);
        }
    }

    /// Reads shard `j` of each slice in `slices` of piece `p` (all at once where targets
    /// allow) and checks them; each good shard goes into `shards`. Returns how many.
    fn shards(
        &self,
        state: &mut State,
        p: usize,
        slices: &[usize],
        j: u64,
        shards: &mut [Option<Vec<u8>>],
    ) -> usize {
        let placed = &self.pieces[p];
        let mut wanted = Vec::with_capacity(slices.len());
        for &i in slices {
            if self.shared.targets.len() <= i {
                continue;
            }
            if state.files[i].is_none() {
                state.files[i] = Some(
                    self.shared
                        .targets
                        .open(i, &placed.piece.blob, placed.geometry.slice_len(&self.code))
                        .map_err(|e| self.note_failure(i, &e)),
                );
            }
            if matches!(state.files[i], Some(Ok(_))) {
                wanted.push(i);
            }
        }
        let (at, len) = placed.geometry.shard_at(&self.code, j);
        let reads: Vec<(&SliceHandle, u64, usize)> = wanted
            .iter()
            .filter_map(|&i| match &state.files[i] {
                Some(Ok(h)) => Some((h, at, len + CHECK_LEN)),
                _ => None,
            })
            .collect();
        let results = self.shared.targets.read_all(&reads);
        let mut found = 0;
        for (&i, (result, took)) in wanted.iter().zip(results) {
            let good = match result {
                Ok(mut buf) => {
                    self.shared.health.read_took(i, took);
                    let (shard, tail) = buf.split_at(len);
                    let ok = bool::from(subtle::ConstantTimeEq::ct_eq(
                        &check(&placed.piece.blob, i, j, shard)[..],
                        tail,
                    ));
                    self.shared.health.ok(i);
                    if ok {
                        buf.truncate(len);
                        Ok(buf)
                    } else {
                        Err("its check fails".to_owned())
                    }
                }
                Err(e) => {
                    self.note_failure(i, &e);
                    Err(e.to_string())
                }
            };
            match good {
                Ok(buf) => {
                    shards[i] = Some(buf);
                    found += 1;
                }
                Err(why) => {
                    self.shared.health.bad_slice(i);
                    tracing::warn!(target_index = i, blob = %placed.piece.blob, stripe = j, error = %why, "a dispersed slice is damaged, short or unreachable; reading around it");
                    state.files[i] = Some(Err(()));
                }
            }
        }
        found
    }

    /// Stripe `j` of piece `p`, rebuilt if need be.
    fn stripe(&self, state: &mut State, p: usize, j: u64) -> io::Result<Vec<u8>> {
        if state.piece != Some(p) {
            state.piece = Some(p);
            state.files = (0..self.code.n()).map(|_| None).collect();
        }
        let (k, n) = (self.code.k(), self.code.n());
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
        // The first `k` in line are read at once; each failure brings in the next.
        let placed: Vec<bool> = self.pieces[p].piece.slices.iter().map(Option::is_some).collect();
        let health = &self.shared.health;
        let up: Vec<bool> = (0..n).map(|i| health.is_up(i)).collect();
        let order = read_order(k, &placed, &up, &health.read_latencies(), health.probe());
        let mut found = 0;
        let mut next = 0;
        while found < k && next < order.len() {
            let take = (k - found).min(order.len() - next);
            found += self.shards(state, p, &order[next..next + take], j, &mut shards);
            next += take;
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

/// A data slice's target is passed over for parity when its shard reads average this many
/// times the typical target's, and at least [`SLOW_BY`] more: decoding costs less.
const SLOW_FACTOR: u64 = 4;
/// See [`SLOW_FACTOR`] (µs).
const SLOW_BY: u64 = 2_000;

/// The order in which a stripe's slices are tried (`placed[i]`: the write put slice `i`;
/// `up[i]`: target `i` answered its last request; `read_us[i]`: its moving average read
/// time, 0 if none yet). First the placed slices on targets that answer: data slices
/// (nothing to decode) unless their target is much slower than the typical one, then
/// parity slices fastest first, then the slow data slices. Then placed slices on targets
/// that failed lately, then any a write missed that a rebuild has since restored (their
/// shard checks vouch for them). With `probe`, slow data slices are read as usual, so a
/// target that has sped up again is seen to.
fn read_order(k: usize, placed: &[bool], up: &[bool], read_us: &[u64], probe: bool) -> Vec<usize> {
    let n = placed.len();
    let answering: Vec<usize> = (0..n).filter(|&i| placed[i] && up[i]).collect();
    let mut known: Vec<u64> = answering.iter().map(|&i| read_us[i]).filter(|&t| t > 0).collect();
    known.sort_unstable();
    let typical = known.get(known.len() / 2).copied().unwrap_or(0);
    let slow = |i: usize| {
        !probe && read_us[i] > typical.saturating_mul(SLOW_FACTOR) && read_us[i] > typical + SLOW_BY
    };
    let mut order: Vec<usize> = answering.iter().copied().filter(|&i| i < k && !slow(i)).collect();
    let mut rest: Vec<usize> = answering.iter().copied().filter(|&i| i >= k || slow(i)).collect();
    rest.sort_by_key(|&i| (i < k, read_us[i]));
    order.extend(rest);
    order.extend((0..n).filter(|&i| placed[i] && !up[i]));
    order.extend((0..n).filter(|&i| !placed[i]));
    order
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

#[cfg(test)]
mod tests {
    use super::read_order;

    #[test]
    fn reads_go_to_data_slices_then_the_fastest_parity() {
        let all = [true; 5];
        // Nothing known yet: data slices, then parity in index order.
        assert_eq!(read_order(3, &all, &all, &[0; 5], false), [0, 1, 2, 3, 4]);
        // Parity fastest first.
        assert_eq!(read_order(3, &all, &all, &[100, 100, 100, 900, 200], false), [0, 1, 2, 4, 3]);
        // A data target far slower than the rest goes after the parity.
        assert_eq!(read_order(3, &all, &all, &[100, 50_000, 100, 900, 200], false), [0, 2, 4, 3, 1]);
        // ... except when probing, so a target that sped up again is seen to.
        assert_eq!(read_order(3, &all, &all, &[100, 50_000, 100, 900, 200], true), [0, 1, 2, 4, 3]);
        // Slower, but by little in absolute terms: still read (a decode costs more).
        assert_eq!(read_order(3, &all, &all, &[100, 900, 100, 100, 100], false), [0, 1, 2, 3, 4]);
        // Targets that failed lately come after those that answer; unplaced slices last.
        let up = [true, false, true, true, true];
        let placed = [true, true, true, true, false];
        assert_eq!(read_order(3, &placed, &up, &[0; 5], false), [0, 2, 3, 1, 4]);
        // 10 of 16 with two data targets down: the fastest two parity slices are next.
        let mut up = [true; 16];
        up[3] = false;
        up[7] = false;
        let mut lat = [500u64; 16];
        lat[14] = 90;
        lat[11] = 120;
        let order = read_order(10, &[true; 16], &up, &lat, false);
        assert_eq!(&order[..10], [0, 1, 2, 4, 5, 6, 8, 9, 14, 11]);
        assert_eq!(&order[14..], [3, 7]);
    }
}
