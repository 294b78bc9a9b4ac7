//! Problems found in a config file, and where they are: each problem names a key path such as
//! `routes[2].credential.provider`, which is turned into the TOML position of that key so that
//! `keygate check` can print `PATH:LINE:COL: message`.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

/// One problem before it has been placed in the file.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub(crate) severity: Severity,
    /// Dotted key path, with `[n]` for array elements: `routes[0].timeout`.
    pub(crate) key: String,
    pub(crate) message: String,
}

/// One problem placed at a line and column (both 1-based) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub(crate) severity: Severity,
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(
            f,
            "{}:{}:{}: {prefix}{}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// A config file that could not be loaded: every error found (and any warnings), in file order.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub(crate) fn io(path: &Path, err: &std::io::Error) -> Self {
        ConfigError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read config file: {err}"),
            }],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Finds positions of key paths in one TOML text.
pub(crate) struct Locator<'a> {
    text: &'a str,
    root: Option<toml::Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator {
            text,
            root: DeTable::parse(text).ok(),
        }
    }

    /// Line and column of the deepest part of `key` that exists in the file.
    fn position(&self, key: &str) -> (usize, usize) {
        let offset = self.offset(key).unwrap_or(0);
        line_column(self.text, offset)
    }

    fn offset(&self, key: &str) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        let mut value: Option<&DeValue<'_>> = None;
        let mut found = None;
        for segment in key.split('.') {
            let (name, indices) = split_indices(segment);
            let Some(current) = table.or_else(|| value.and_then(DeValue::as_table)) else {
                break;
            };
            let Some((k, v)) = current.get_key_value(name) else {
                break;
            };
            found = Some(k.span().start);
            let mut item = v;
            for index in indices {
                match item.get_ref().as_array().and_then(|a| a.get(index)) {
                    Some(element) => {
                        found = Some(element.span().start);
                        item = element;
                    }
                    None => return found,
                }
            }
            table = None;
            value = Some(item.get_ref());
        }
        found
    }

    /// A diagnostic for a problem, placed in `path`.
    pub(crate) fn place(&self, path: &Path, problem: Problem) -> Diagnostic {
        let (line, column) = self.position(&problem.key);
        Diagnostic {
            severity: problem.severity,
            path: path.to_path_buf(),
            line,
            column,
            message: problem.message,
        }
    }
}

fn split_indices(segment: &str) -> (&str, Vec<usize>) {
    let mut parts = segment.split('[');
    let name = parts.next().unwrap_or_default();
    let indices = parts
        .filter_map(|p| p.trim_end_matches(']').parse().ok())
        .collect();
    (name, indices)
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[[routes]]\nname = \"a\"\n\n[[routes]]\nname = \"b\"\ntimeout = \"zz\"\n[routes.credential]\nflow = \"m2m\"\n";

    #[test]
    fn finds_nested_keys_in_arrays_of_tables() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.position("server.listen"), (2, 1));
        assert_eq!(locator.position("routes[1].timeout"), (9, 1));
        assert_eq!(locator.position("routes[1].credential.flow"), (11, 1));
    }

    #[test]
    fn falls_back_to_the_deepest_existing_part() {
        let locator = Locator::new(TEXT);
        assert_eq!(locator.position("routes[1].credential.nope"), (10, 9));
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncé d", 7), (2, 4));
    }
}
