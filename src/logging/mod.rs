//! Logs on stderr, as text (one line per event) or JSON, filtered by `RUST_LOG` (default
//! `info`). In the text format every field value and message is written with its control
//! characters escaped (`\n`, `\u{1b}`, ...), so nothing a client sends (a path, an API field, an
//! error quoting one) can start a forged line of its own or drive a terminal. JSON escapes them
//! by itself.

mod batched;

use std::fmt::{self, Write as _};

pub use batched::{BatchedStderr, LogGuard};

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, Writer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (once, at start).
///
/// Lines go out in batches ([`batched`]); keep the returned guard alive for the program's life
/// (it writes what is still buffered when dropped).
#[must_use = "dropping the guard ends batched logging; hold it in main"]
pub fn init(log_format: LogFormat) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = BatchedStderr::start();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match log_format {
        LogFormat::Text => builder.fmt_fields(text_fields()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}

/// The text format's fields: `message name=value ...` like tracing-subscriber's default, with
/// control characters escaped.
fn text_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    format::debug_fn(write_field).delimited(" ")
}

fn write_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let mut escaped = Escaping(writer);
    if field.name() == "message" {
        write!(escaped, "{value:?}")
    } else {
        write!(escaped, "{}={value:?}", field.name())
    }
}

/// Writes through to `W`, control characters escaped.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(char::is_control) {
            self.0.write_str(&rest[..at])?;
            let control = rest[at..].chars().next().unwrap_or_default();
            write!(self.0, "{}", control.escape_default())?;
            rest = &rest[at + control.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// What tests log into: a writer whose bytes they read back.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(emit: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(text_fields())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        captured.text()
    }

    #[test]
    fn a_field_with_a_newline_stays_on_its_line() {
        let forged = "x\n2026-01-01T00:00:00Z  INFO keygate: forged admin=true";
        let text = logged(|| {
            let span = tracing::info_span!("call", operation = %forged);
            let _entered = span.enter();
            tracing::debug!(error = %forged, name = forged, "refused: {forged}");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(text.matches("forged admin=true").count(), 4, "{text}");
        assert!(text.contains(r"x\n2026"), "{text}");
    }

    #[test]
    fn terminal_escapes_are_escaped_and_plain_text_is_untouched() {
        let text = logged(|| tracing::info!(path = %"/a\u{1b}[2J\r", user = "josé", "plain"));
        assert!(!text.trim_end().contains(char::is_control), "{text:?}");
        assert!(text.contains(r"path=/a\u{1b}[2J\r"), "{text}");
        assert!(text.contains(r#"user="josé""#), "{text}");
        assert!(text.contains(" plain path="), "{text}");
    }
}
