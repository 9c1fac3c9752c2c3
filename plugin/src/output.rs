//! Printing as kubectl does: aligned tables with short ages, or the API's bodies as JSON or
//! YAML (`-o json`, `-o yaml`).
//!
//! Text from the server (names, reasons, error messages) reaches the terminal only through
//! [`terminal_safe`], so a server or an object name cannot send terminal control sequences.

use crate::cli::Output;
use crate::client::Failure;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL and C1: Unicode's `Cc`) written as a visible
/// escape: `\n`, `\r`, `\t`, `\x1b` (C0 and DEL), `\u{9b}` (C1). Every piece of server
/// text printed for a human goes through this, newlines included: each lands on one line
/// of its own (a table cell, a `Field: value` line, the `error:` line), where a raw newline
/// could fake a line of output. Other Unicode is untouched. Idempotent: the escapes are
/// printable.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// kubectl's short ages: 42s, 5m, 3h, 2d.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, headers in capitals (as kubectl prints).
/// Every cell goes through [`terminal_safe`].
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| terminal_safe(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.to_string()
                } else {
                    format!("{c:<width$}   ", width = widths[i])
                }
            })
            .collect::<String>()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(|cell| &**cell).collect()));
        out.push('\n');
    }
    out
}

/// Prints `value` as JSON or YAML and returns true; returns false for `-o table`, which the
/// caller prints its own way.
pub fn print_structured<T: Serialize>(output: Output, value: &T) -> Result<bool, Failure> {
    match output {
        Output::Table => Ok(false),
        Output::Json => {
            println!("{}", json_text(value)?);
            Ok(true)
        }
        Output::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(|e| Failure::other(e.to_string()))?;
            print!("{text}");
            Ok(true)
        }
    }
}

/// `value` as pretty JSON without a raw control character. serde_json escapes C0 controls
/// (JSON requires it) but writes DEL and C1 controls (U+007F..U+009F, where U+009B is a CSI
/// to some terminals) as they are; those can only stand inside strings, so they become
/// `\u007f`..`\u009f`: the same JSON value, printable. (serde-saphyr already escapes every
/// control character in `-o yaml`.)
fn json_text<T: Serialize>(value: &T) -> Result<String, Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::other(e.to_string()))?;
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The value, or `-` when unset.
pub fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        let ago = |s| now - chrono::Duration::seconds(s);
        assert_eq!(age(ago(5), now), "5s");
        assert_eq!(age(ago(600), now), "10m");
        assert_eq!(age(ago(3 * 3600), now), "3h");
        assert_eq!(age(ago(3 * 86400), now), "3d");
        assert_eq!(age(now + chrono::Duration::seconds(3), now), "0s");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "STATUS"],
            &[vec!["a-long-name".into(), "Running".into()]],
        );
        assert_eq!(t, "NAME          STATUS\na-long-name   Running\n");
    }

    #[test]
    fn control_characters_are_escaped_visibly() {
        // ESC and CSI sequences (colour, clear screen, cursor moves), OSC (window title)
        // ended by BEL, carriage return (overwrites the line), DEL, C1 (U+009B is CSI).
        assert_eq!(
            terminal_safe("\u{1b}[31mred\u{1b}[0m"),
            "\\x1b[31mred\\x1b[0m"
        );
        assert_eq!(terminal_safe("\u{1b}[2J\u{1b}[H"), "\\x1b[2J\\x1b[H");
        assert_eq!(terminal_safe("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(terminal_safe("bell\u{7}"), "bell\\x07");
        assert_eq!(terminal_safe("Approved\rRejected"), "Approved\\rRejected");
        assert_eq!(terminal_safe("a\nerror: fake"), "a\\nerror: fake");
        assert_eq!(terminal_safe("a\tb\u{0}c"), "a\\tb\\x00c");
        assert_eq!(terminal_safe("del\u{7f}"), "del\\x7f");
        assert_eq!(
            terminal_safe("\u{9b}2J\u{80}\u{85}\u{9f}"),
            "\\u{9b}2J\\u{80}\\u{85}\\u{9f}"
        );
    }

    #[test]
    fn printable_text_is_untouched() {
        for text in [
            "",
            "shop-web-01",
            "cluster \"target-3\" is Degraded, not Healthy",
            "Grüße, 漢字, emoji 🐑, no-break\u{a0}space, a\\x1b backslash",
        ] {
            assert!(
                matches!(terminal_safe(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        // Escaping twice changes nothing more.
        let once = terminal_safe("\u{1b}[1m\u{9b}\r").into_owned();
        assert_eq!(terminal_safe(&once), once);
    }

    #[test]
    fn table_cells_are_escaped_and_aligned() {
        let t = table(
            &["NAME", "STATUS"],
            &[
                vec!["evil\u{1b}[2J".into(), "Running\r".into()],
                vec!["ok".into(), "Stopped".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME          STATUS\nevil\\x1b[2J   Running\\r\nok            Stopped\n"
        );
    }

    #[test]
    fn json_output_escapes_every_control_character_and_keeps_the_value() {
        let value = vec!["a\u{1b}[31m\u{7}\r\n\u{7f}\u{9b}2J\u{85} é漢".to_string()];
        let text = json_text(&value).unwrap();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert!(
            text.contains(r"\u001b[31m\u0007\r\n\u007f\u009b2J\u0085 é漢"),
            "{text}"
        );
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn yaml_output_escapes_every_control_character() {
        let value = vec!["a\u{1b}[31m\u{7}\r\n\u{7f}\u{9b}2J".to_string()];
        let text = serde_saphyr::to_string(&value).unwrap();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn unset_values_print_as_a_dash() {
        assert_eq!(dash(&None), "-");
        assert_eq!(dash(&Some("x".into())), "x");
    }
}
