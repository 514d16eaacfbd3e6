//! Sealing and opening runs of units laid out contiguously in one buffer, in stored layout
//! (each unit's plaintext followed by room for its overhead), sequentially or across the
//! current rayon pool.

use rayon::prelude::*;

use crate::engine::{Error, Layout, Opener, Sealer};

/// Splits `buf` (units `first..first + n` in stored layout) into per-unit slices.
fn unit_slices<'a>(layout: &Layout, first: u64, buf: &'a mut [u8]) -> Vec<(u64, &'a mut [u8])> {
    let mut out = Vec::new();
    let mut rest = buf;
    let mut i = first;
    while !rest.is_empty() && i < layout.units() {
        let n = layout.stored_unit_len(i).min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        out.push((i, head));
        rest = tail;
        i += 1;
    }
    out
}

/// Seals every unit in `buf`, which holds units from `first` on in stored layout with
/// their plaintext in place. `parallel` fans units out over the rayon pool.
pub fn seal_units(sealer: &Sealer, layout: &Layout, first: u64, buf: &mut [u8], parallel: bool) -> Result<(), Error> {
    let units = unit_slices(layout, first, buf);
    let seal = |(i, u): (u64, &mut [u8])| sealer.seal_unit(i, layout.is_final(i), u);
    if parallel {
        units.into_par_iter().try_for_each(seal)
    } else {
        units.into_iter().try_for_each(seal)
    }
}

/// Opens every unit in `buf` (units from `first` on, in stored layout) in place.
pub fn open_units(opener: &Opener, layout: &Layout, first: u64, buf: &mut [u8], parallel: bool) -> Result<(), Error> {
    let units = unit_slices(layout, first, buf);
    let open = |(i, u): (u64, &mut [u8])| opener.open_unit(i, layout.is_final(i), u).map(|_| ());
    if parallel {
        units.into_par_iter().try_for_each(open)
    } else {
        units.into_iter().try_for_each(open)
    }
}

/// Lays `plaintext` out in stored layout (body only, no header), each unit followed by
/// room for its overhead, ready for [`seal_units`] from unit 0.
pub fn lay_out(layout: &Layout, plaintext: &[u8]) -> Vec<u8> {
    let body = (layout.stored_len() - layout.header_len()) as usize;
    let mut buf = vec![0u8; body];
    let base = layout.header_len();
    for i in 0..layout.units() {
        let p = layout.plain_offset(i) as usize;
        let n = layout.plain_len(i).min(plaintext.len().saturating_sub(p));
        let s = (layout.stored_offset(i) - base) as usize;
        buf[s..s + n].copy_from_slice(&plaintext[p..p + n]);
    }
    buf
}
