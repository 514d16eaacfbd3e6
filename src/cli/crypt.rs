//! `encrypt`, `decrypt` and `inspect`: choose the file or stream path of the pipeline,
//! write outputs atomically, and report what was done.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::ModeArg;
use super::keyfile::read_key;
use super::progress::Bar;
use base::durable::AtomicOutput;
use engine::format::Header;
use engine::{Backend, CipherId, CustomerKey, HashId, Opener, SealSpec, Sealing};
use pipeline::{ByteRange, file, stream};

/// Where bytes come from.
enum Input {
    Stdin,
    /// A regular file and its size.
    File(File, u64),
    /// Something that can only be read in order (a FIFO, a character device).
    Stream(File),
}

fn open_input(path: &Path) -> anyhow::Result<Input> {
    if path.as_os_str() == "-" {
        return Ok(Input::Stdin);
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = f.metadata().with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory", path.display());
    }
    Ok(if meta.is_file() { Input::File(f, meta.len()) } else { Input::Stream(f) })
}

/// Where bytes go.
enum Output {
    Stdout,
    File(AtomicOutput),
}

fn open_output(path: &Path, what: &str) -> anyhow::Result<Output> {
    if path.as_os_str() == "-" {
        if std::io::stdout().is_terminal() {
            bail!("refusing to write {what} to a terminal: use -o FILE or redirect stdout");
        }
        return Ok(Output::Stdout);
    }
    Ok(Output::File(AtomicOutput::create(path).with_context(|| format!("cannot write {}", path.display()))?))
}

fn finish(output: Output, path: &Path) -> anyhow::Result<()> {
    if let Output::File(out) = output {
        out.commit().with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs `f` with a buffered writer on the output (stdout or the atomic file).
fn with_writer<T>(output: &Output, f: impl FnOnce(&mut dyn Write) -> T) -> T {
    match output {
        Output::Stdout => f(&mut BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
        Output::File(out) => f(&mut BufWriter::with_capacity(1 << 20, out.file())),
    }
}

fn report(bar: &Bar, verb: &str, bytes: u64, start: Instant, dest: &Path) {
    bar.finish();
    if bar.visible() {
        let secs = start.elapsed().as_secs_f64();
        let rate = bytes as f64 / secs.max(1e-9) / (1u64 << 30) as f64;
        eprintln!("{verb} {} in {secs:.2} s ({rate:.2} GiB/s) -> {}", human(bytes), dest.display());
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{b} bytes"),
    }
}

/// What `cipherstore encrypt` was asked for.
pub(super) struct EncryptOptions {
    /// Protection mode.
    pub mode: ModeArg,
    /// Customer key file (SSE-C).
    pub key_file: Option<PathBuf>,
    /// Bucket (SSE-KP).
    pub bucket: Option<String>,
    /// Key state directory (SSE-KP).
    pub keys_dir: Option<PathBuf>,
    /// Unit size override.
    pub unit_size: Option<u32>,
    /// AONT-RS cipher override.
    pub aont_cipher: Option<CipherId>,
    /// AONT-RS hash override.
    pub aont_hash: Option<HashId>,
}

/// `cipherstore encrypt`.
pub(super) fn encrypt(
    input: &Path,
    output: &Path,
    options: &EncryptOptions,
    backend: Backend,
    quiet: bool,
) -> anyhow::Result<()> {
    if options.mode != ModeArg::Aont && (options.aont_cipher.is_some() || options.aont_hash.is_some()) {
        bail!("--aont-cipher and --aont-hash apply to --mode aont only");
    }
    let protection = match (options.mode, options.key_file.as_deref(), options.bucket.as_deref()) {
        (ModeArg::Aont, None, None) => Sealing::Aont,
        (ModeArg::Aont, _, _) => {
            bail!("--key-file and --bucket are for --mode sse-c and sse-kp; AONT-RS needs no key")
        }
        (ModeArg::SseC, Some(k), None) => Sealing::SseC(CustomerKey::new(read_key(k)?)),
        (ModeArg::SseC, _, _) => bail!("--mode sse-c needs --key-file FILE (a 256-bit key) and no --bucket"),
        (ModeArg::SseKp, None, Some(b)) => {
            let (key, crn) = super::keys::bucket_key(options.keys_dir.as_deref(), b)?;
            Sealing::SseKp { key, crn }
        }
        (ModeArg::SseKp, _, _) => {
            bail!("--mode sse-kp needs --bucket NAME (see `cipherstore keys bind-bucket`) and no --key-file")
        }
    };
    let mut spec = SealSpec::new(protection, backend);
    if let Some(u) = options.unit_size {
        spec.unit_size = u;
    }
    if let Some(c) = options.aont_cipher {
        spec.aont_cipher = c;
    }
    if let Some(h) = options.aont_hash {
        spec.aont_hash = h;
    }
    let source = open_input(input)?;
    let out = open_output(output, "an encrypted object")?;
    let start = Instant::now();
    let total = match &source {
        Input::File(_, len) => Some(*len),
        _ => None,
    };
    let bar = Bar::new("encrypting", total, quiet);
    let done = match (source, &out) {
        (Input::File(f, len), Output::File(o)) => file::encrypt_file(&f, o.file(), &spec, &bar).map(|_| len),
        (Input::File(f, len), _) => with_writer(&out, |w| {
            stream::encrypt_stream(f, w, &spec, Some(len), &bar).map(|s| s.plaintext_len)
        }),
        (Input::Stream(f), _) => {
            with_writer(&out, |w| stream::encrypt_stream(f, w, &spec, None, &bar).map(|s| s.plaintext_len))
        }
        (Input::Stdin, _) => with_writer(&out, |w| {
            stream::encrypt_stream(std::io::stdin(), w, &spec, None, &bar).map(|s| s.plaintext_len)
        }),
    };
    bar.finish();
    let bytes = done.with_context(|| format!("cannot encrypt {}", input.display()))?;
    finish(out, output)?;
    report(&bar, "encrypted", bytes, start, output);
    Ok(())
}

/// `cipherstore decrypt`: `key` is the customer key (SSE-C) or the bucket key (SSE-KP).
pub(super) fn decrypt(
    input: &Path,
    output: &Path,
    key: Option<CustomerKey>,
    range: Option<ByteRange>,
    backend: Backend,
    quiet: bool,
) -> anyhow::Result<()> {
    let source = open_input(input)?;
    let start = Instant::now();
    let done = match source {
        Input::File(f, stored) => {
            let header =
                file::read_header(&f).with_context(|| format!("cannot decrypt {}", input.display()))?;
            if let Ok((h, _)) = Header::parse(&header)
                && let (Some(crn), None) = (h.sse_kp_key(), &key)
            {
                bail!(
                    "cannot decrypt {}: it is protected by SSE-KP root key {crn}: give --bucket NAME",
                    input.display()
                );
            }
            let opener = Opener::new(&header, key.as_ref(), backend)
                .with_context(|| format!("cannot decrypt {}", input.display()))?;
            let layout =
                opener.layout(stored).with_context(|| format!("cannot decrypt {}", input.display()))?;
            let bar = Bar::new("decrypting", Some(layout.plaintext_len()), quiet);
            let out = open_output(output, "plaintext")?;
            let r = match &out {
                Output::File(o) => file::decrypt_file(&f, &opener, o.file(), range, &bar),
                Output::Stdout => {
                    if range.is_some() {
                        bail!("--range writes to a file: use -o FILE");
                    }
                    with_writer(&out, |w| stream::decrypt_stream(f, w, key.as_ref(), backend, &bar))
                }
            };
            bar.finish();
            let bytes = r.with_context(|| format!("cannot decrypt {}", input.display()))?;
            finish(out, output)?;
            (bytes, bar)
        }
        other => {
            if range.is_some() {
                bail!("--range needs a file to read from, not a stream");
            }
            let bar = Bar::new("decrypting", None, quiet);
            let out = open_output(output, "plaintext")?;
            let r = match other {
                Input::Stream(f) => {
                    with_writer(&out, |w| stream::decrypt_stream(f, w, key.as_ref(), backend, &bar))
                }
                _ => with_writer(&out, |w| {
                    stream::decrypt_stream(std::io::stdin(), w, key.as_ref(), backend, &bar)
                }),
            };
            bar.finish();
            let bytes = r.with_context(|| format!("cannot decrypt {}", input.display()))?;
            finish(out, output)?;
            (bytes, bar)
        }
    };
    report(&done.1, "decrypted", done.0, start, output);
    Ok(())
}

/// `cipherstore inspect`.
pub(super) fn inspect(input: &Path) -> anyhow::Result<()> {
    let f = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let stored = f.metadata().with_context(|| format!("cannot read {}", input.display()))?.len();
    let bytes = file::read_header(&f).with_context(|| format!("cannot inspect {}", input.display()))?;
    let (h, hlen) = Header::parse(&bytes).with_context(|| format!("cannot inspect {}", input.display()))?;
    let mode = match h.mode {
        engine::Mode::Aont => "AONT-RS (keyless package transform)",
        engine::Mode::SseC => "SSE-C (chunked AES-256-GCM, customer key)",
        engine::Mode::SseKp => "SSE-KP (chunked AES-256-GCM, HSM root key)",
    };
    let root = h.sse_kp_key().map(|c| format!("\nroot key         {c}")).unwrap_or_default();
    println!("format version   1");
    println!("protection       {mode}{root}");
    println!("cipher / hash    {} / {}", h.cipher, h.hash);
    println!("unit size        {} bytes", h.unit_size);
    println!("header           {hlen} bytes");
    println!("stored size      {stored} bytes");
    match h.layout_for_stored(stored) {
        Ok(l) => println!("plaintext        {} bytes in {} units", l.plaintext_len(), l.units()),
        Err(e) => println!("plaintext        unknown: {e}"),
    }
    if h.plaintext_len.is_none() {
        println!("                 (written from a stream; length derived from the stored size)");
    }
    Ok(())
}
