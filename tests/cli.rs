//! The `cipherstore` binary as a user runs it: round trips through files and pipes, byte
//! ranges, clear errors with a non-zero exit and no partial output left behind.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::plaintext;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cipherstore"));
    c.env_remove("CIPHERSTORE_BACKEND");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn run_err(args: &[&str], needle: &str) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: stderr {err:?} lacks {needle:?}");
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "one clear error line: {err}");
    err
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
    fn p(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.p(name).to_string_lossy().into_owned()
    }
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.p(name), bytes).unwrap();
        self.s(name)
    }
    /// Only the named files exist: no temporary or partial output.
    fn only(&self, names: &[&str]) {
        let mut found: Vec<String> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(found, want);
    }
}

fn key_file(d: &Dir, name: &str, byte: u8) -> String {
    let path = d.write(name, &hex(&[byte; 32]));
    std::fs::set_permissions(d.p(name), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn hex(b: &[u8]) -> Vec<u8> {
    b.iter().map(|x| format!("{x:02x}")).collect::<String>().into_bytes()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn aont_and_sse_c_files_round_trip() {
    let d = Dir::new();
    let plain = plaintext(3_000_000, 1);
    let input = d.write("in", &plain);
    let key = key_file(&d, "k", 7);
    run_ok(&["encrypt", &input, "-o", &d.s("a.cso")]);
    run_ok(&["decrypt", &d.s("a.cso"), "-o", &d.s("a.out")]);
    assert_eq!(read(&d.p("a.out")), plain);
    run_ok(&["encrypt", &input, "-o", &d.s("c.cso"), "--mode", "sse-c", "--key-file", &key]);
    run_ok(&["decrypt", &d.s("c.cso"), "-o", &d.s("c.out"), "--key-file", &key]);
    assert_eq!(read(&d.p("c.out")), plain);
    for (c, h) in [("ctr", "sha256"), ("gcm", "blake3")] {
        run_ok(&[
            "encrypt",
            &input,
            "-o",
            &d.s("x.cso"),
            "--aont-cipher",
            c,
            "--aont-hash",
            h,
            "--unit-size",
            "64K",
        ]);
        run_ok(&["decrypt", &d.s("x.cso"), "-o", &d.s("x.out")]);
        assert_eq!(read(&d.p("x.out")), plain);
    }
    assert_ne!(read(&d.p("a.cso"))[100..200], plain[..100]);
}

#[test]
fn stdin_and_stdout_work_both_ways() {
    let d = Dir::new();
    let plain = plaintext(700_000, 2);
    let mut child =
        bin().args(["encrypt", "-", "-o", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = plain.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&feed).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let obj = d.write("piped.cso", &out.stdout);
    let back = run_ok(&["decrypt", &obj, "-o", "-"]);
    assert_eq!(back.stdout, plain);
    let mut child = bin().args(["decrypt", "-", "-o", &d.s("p.out")]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(&d.p("p.out")), plain);
    let info = String::from_utf8(run_ok(&["inspect", &obj]).stdout).unwrap();
    assert!(info.contains("written from a stream"), "{info}");
    assert!(info.contains("700000 bytes"), "{info}");
}

#[test]
fn ranges_decrypt_only_the_asked_bytes() {
    let d = Dir::new();
    let plain = plaintext(5_000_000, 3);
    let input = d.write("in", &plain);
    let key = key_file(&d, "k", 9);
    run_ok(&["encrypt", &input, "-o", &d.s("c.cso"), "--mode", "sse-c", "--key-file", &key]);
    run_ok(&["decrypt", &d.s("c.cso"), "-o", &d.s("r"), "--key-file", &key, "--range", "1048570-2097160"]);
    assert_eq!(read(&d.p("r")), &plain[1_048_570..=2_097_160]);
    run_ok(&["decrypt", &d.s("c.cso"), "-o", &d.s("t"), "--key-file", &key, "--range", "4999990-"]);
    assert_eq!(read(&d.p("t")), &plain[4_999_990..]);
    run_err(
        &["decrypt", &d.s("c.cso"), "-o", &d.s("u"), "--key-file", &key, "--range", "5000000-5000001"],
        "range not satisfiable",
    );
    run_err(&["decrypt", &d.s("c.cso"), "-o", &d.s("u"), "--range", "9-1"], "ends before it starts");
}

#[test]
fn failures_are_clear_and_leave_no_output() {
    let d = Dir::new();
    let plain = plaintext(300_000, 4);
    let input = d.write("in", &plain);
    let key = key_file(&d, "k", 1);
    let wrong = key_file(&d, "w", 2);
    run_ok(&["encrypt", &input, "-o", &d.s("c.cso"), "--mode", "sse-c", "--key-file", &key]);
    run_ok(&["encrypt", &input, "-o", &d.s("a.cso")]);
    run_err(&["decrypt", &d.s("c.cso"), "-o", &d.s("out"), "--key-file", &wrong], "wrong key");
    run_err(&["decrypt", &d.s("c.cso"), "-o", &d.s("out")], "a key is required");
    run_err(
        &["decrypt", &d.s("a.cso"), "-o", &d.s("out"), "--key-file", &key],
        "not encrypted with a customer or bucket key",
    );
    run_err(&["decrypt", &input, "-o", &d.s("out")], "not a cipherstore object");
    let mut bad = read(&d.p("a.cso"));
    let mid = bad.len() / 2;
    bad[mid] ^= 4;
    let bad = d.write("bad.cso", &bad);
    run_err(&["decrypt", &bad, "-o", &d.s("out")], "integrity check failed");
    let full = read(&d.p("c.cso"));
    let cut = d.write("cut.cso", &full[..full.len() - 1000]);
    run_err(&["decrypt", &cut, "-o", &d.s("out"), "--key-file", &key], "truncated");
    run_err(&["decrypt", &cut, "-o", "-", "--key-file", &key], "truncated");
    run_err(&["encrypt", &d.s("missing"), "-o", &d.s("out")], "cannot open");
    run_err(&["encrypt", &input, "-o", &d.s("out"), "--mode", "sse-c"], "needs --key-file");
    run_err(&["encrypt", &input, "-o", &d.s("out"), "--key-file", &key], "AONT-RS needs no key");
    run_err(
        &["encrypt", &input, "-o", &d.s("out"), "--unit-size", "100"],
        "unit size must be 4 KiB to 16 MiB",
    );
    let short = d.write("short.key", b"0123");
    run_err(
        &["encrypt", &input, "-o", &d.s("out"), "--mode", "sse-c", "--key-file", &short],
        "expected a 256-bit key",
    );
    d.only(&["in", "k", "w", "c.cso", "a.cso", "bad.cso", "cut.cso", "short.key"]);
}

#[test]
fn a_failed_decrypt_keeps_the_previous_output_file() {
    let d = Dir::new();
    let input = d.write("in", &plaintext(10_000, 5));
    run_ok(&["encrypt", &input, "-o", &d.s("a.cso")]);
    let existing = d.write("out", b"keep me");
    let mut bad = read(&d.p("a.cso"));
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let bad = d.write("bad.cso", &bad);
    run_err(&["decrypt", &bad, "-o", &existing], "integrity check failed");
    assert_eq!(read(&d.p("out")), b"keep me");
}

#[test]
fn portable_backend_reads_what_the_accelerated_one_wrote() {
    let d = Dir::new();
    let plain = plaintext(1_500_000, 6);
    let input = d.write("in", &plain);
    let key = key_file(&d, "k", 3);
    run_ok(&["encrypt", &input, "-o", &d.s("c.cso"), "--mode", "sse-c", "--key-file", &key]);
    let out = bin()
        .env("CIPHERSTORE_BACKEND", "portable")
        .args(["decrypt", &d.s("c.cso"), "-o", &d.s("p"), "--key-file", &key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(read(&d.p("p")), plain);
    let cpu = bin().env("CIPHERSTORE_BACKEND", "portable").args(["cpu"]).output().unwrap();
    let text = String::from_utf8(cpu.stdout).unwrap();
    assert!(text.contains("Backend: portable"), "{text}");
    assert!(text.contains("RustCrypto aes-gcm"), "{text}");
    let bad = bin().env("CIPHERSTORE_BACKEND", "turbo").args(["cpu"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown backend"));
}

#[test]
fn help_cpu_and_bench_speak_to_users() {
    let help = String::from_utf8(run_ok(&["--help"]).stdout).unwrap();
    for word in ["encrypt", "decrypt", "inspect", "cpu", "bench", "Examples:", "--key-file"] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let enc = String::from_utf8(run_ok(&["encrypt", "--help"]).stdout).unwrap();
    assert!(enc.contains("--mode") && enc.contains("sse-c") && enc.contains("atomically"), "{enc}");
    let version = String::from_utf8(run_ok(&["--version"]).stdout).unwrap();
    assert!(version.starts_with("cipherstore "), "{version}");
    let cpu: serde_json::Value = serde_json::from_slice(&run_ok(&["cpu", "--json"]).stdout).unwrap();
    assert!(cpu["features"]["aes_ni"].is_boolean());
    assert_eq!(cpu["primitives"].as_array().map(Vec::len), Some(4));
    let bench: serde_json::Value =
        serde_json::from_slice(&run_ok(&["bench", "--json", "--size", "1", "--seconds", "0.01"]).stdout)
            .unwrap();
    let rows = bench.as_array().unwrap();
    assert!(rows.len() >= 10);
    assert!(rows.iter().all(|r| r["gb_per_s"].as_f64().is_some_and(|v| v > 0.0)));
    assert!(rows.iter().any(|r| { r["name"].as_str().is_some_and(|n| n.starts_with("AONT-RS encode")) }));
}

#[test]
fn refuses_to_write_binary_to_a_terminal_only() {
    // With stdout a pipe, `-o -` is allowed; the terminal case is checked in crypt.rs.
    let d = Dir::new();
    let input = d.write("in", b"hello");
    let out = run_ok(&["encrypt", &input, "-o", "-"]);
    assert!(out.stdout.starts_with(b"\x89CST\r\n\x1a\n"));
}
