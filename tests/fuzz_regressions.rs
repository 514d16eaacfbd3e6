//! Replays every saved fuzzing input (tests/fuzz_regressions/<target>/, crashes found by
//! scripts/fuzz once fixed, and seeds) and every frozen vector, whole and cut short,
//! through the fuzz entry points: each must return without panicking.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;

use tools::fuzz_entry;

type Entry = fn(&[u8]);

const TARGETS: [(&str, Entry); 10] = [
    ("format_header", fuzz_entry::format_header),
    ("decrypt", fuzz_entry::decrypt),
    ("sse_headers", fuzz_entry::sse_headers),
    ("stored_record", fuzz_entry::stored_record),
    ("chunk_framing", fuzz_entry::chunk_framing),
    ("identities", fuzz_entry::identities),
    ("policy", fuzz_entry::policy),
    ("acl", fuzz_entry::acl),
    ("admin_request", fuzz_entry::admin_request),
    ("kms_request", fuzz_entry::kms_request),
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

/// aws-chunked bodies through the S3 service: saved inputs, and frozen vectors as bodies
/// in both modes; then lifecycle configurations. One test owns the service's store, so it
/// can remove it at the end.
#[test]
fn aws_chunked_bodies_replay_without_a_server_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut inputs = files(&root.join("fuzz_regressions/aws_chunked"));
    assert!(inputs.len() >= 4, "only {} saved aws_chunked inputs", inputs.len());
    for v in files(&root.join("vectors")).iter().take(3) {
        for mode in [0u8, 1, 3] {
            inputs.push([&[mode, 0x10, 0][..], &v[..v.len().min(4096)]].concat());
        }
    }
    let dir = root.join("fuzz_regressions/aws_chunked");
    let status = |name: &str| fuzz_entry::aws_chunked(&std::fs::read(dir.join(name)).unwrap());
    // The seeds reach the decoder: a valid body is stored, the broken ones are refused.
    assert_eq!(status("unsigned-with-trailer"), 200);
    assert_eq!(status("signed-bad-signature"), 403);
    assert_eq!(status("missing-final-chunk"), 400);
    assert_eq!(status("oversize-chunk"), 400);
    for input in &inputs {
        fuzz_entry::aws_chunked(input);
    }
    lifecycle_configurations_replay_without_a_server_error();
    fuzz_entry::aws_chunked_cleanup();
}

/// Lifecycle configurations through the S3 service: the saved inputs reach validation
/// (a valid one is accepted, broken ones refused with a 4xx), and none answers a 500. Run
/// by the test above, which owns the service's store.
fn lifecycle_configurations_replay_without_a_server_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/lifecycle_config");
    let status = |name: &str| fuzz_entry::lifecycle_config(&std::fs::read(dir.join(name)).unwrap());
    assert_eq!(status("valid"), 200);
    for name in ["days-and-date", "negative-days", "cut-short"] {
        assert_eq!(status(name), 400, "{name}");
    }
    for input in files(&dir) {
        fuzz_entry::lifecycle_config(&input);
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
