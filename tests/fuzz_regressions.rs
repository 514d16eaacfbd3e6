//! Replays every saved fuzzing input (tests/fuzz_regressions/<target>/, crashes found by
//! scripts/fuzz once fixed, and seeds) and every frozen vector, whole and cut short,
//! through the fuzz entry points: each must return without panicking.

use std::path::Path;

use cipherstore::fuzz_entry;

type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 5] = [
    ("format_header", fuzz_entry::format_header),
    ("decrypt", fuzz_entry::decrypt),
    ("sse_headers", fuzz_entry::sse_headers),
    ("part_manifest", fuzz_entry::part_manifest),
    ("chunk_framing", fuzz_entry::chunk_framing),
];

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn saved_fuzz_inputs_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for (name, entry) in TARGETS {
        let inputs = files(&root.join("fuzz_regressions").join(name));
        assert!(!inputs.is_empty(), "no saved inputs for {name}");
        for input in &inputs {
            entry(input);
        }
    }
}

#[test]
fn frozen_vectors_whole_and_cut_short_replay_without_panics() {
    let vectors = files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"));
    assert!(vectors.len() >= 5, "only {} vectors", vectors.len());
    let mut runs = 0;
    for v in &vectors {
        for cut in [0, 1, 7, 8, 63, 64, 65, v.len() / 2, v.len().saturating_sub(1), v.len()] {
            let input = &v[..cut.min(v.len())];
            for (_, entry) in TARGETS {
                entry(input);
                runs += 1;
            }
        }
    }
    assert_eq!(runs, vectors.len() * 10 * TARGETS.len());
}
