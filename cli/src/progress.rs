//! Progress on long operations, drawn on stderr only when it is a terminal: piped or
//! redirected output carries the same result lines and no bars.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

fn started(pb: ProgressBar) -> ProgressBar {
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A spinner with `message` and the time spent, for waits of unknown length.
pub fn spinner(message: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner().with_message(message.into());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    started(pb)
}

/// A bar counting `total` things done, with `message`.
pub fn counter(total: u64, message: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new(total).with_message(message.into());
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .expect("a valid template"),
    );
    started(pb)
}

/// A spinner counting bytes received and their rate, with `message`.
pub fn transfer(message: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner().with_message(message.into());
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg}: {bytes} ({binary_bytes_per_sec}, {elapsed})",
        )
        .expect("a valid template"),
    );
    started(pb)
}
