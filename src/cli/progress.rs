//! A terminal progress bar for long operations, shown only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use pipeline::Progress;

/// Progress shown on stderr (or nowhere).
pub(super) struct Bar(Option<ProgressBar>);

impl Bar {
    /// A bar for `total` bytes (`None`: unknown), hidden when `quiet` or not a terminal.
    pub(super) fn new(verb: &str, total: Option<u64>, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if total.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(verb.to_owned());
        Self(Some(bar))
    }

    /// Whether anything is drawn.
    pub(super) fn visible(&self) -> bool {
        self.0.is_some()
    }

    /// Removes the bar.
    pub(super) fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }
}
