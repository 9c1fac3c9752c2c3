//! Printing as kubectl does: aligned tables with short ages, or the API's bodies as JSON or
//! YAML (`-o json`, `-o yaml`).

use crate::cli::Output;
use crate::client::Failure;
use chrono::{DateTime, Utc};
use serde::Serialize;

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
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
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
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
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
            let text =
                serde_json::to_string_pretty(value).map_err(|e| Failure::other(e.to_string()))?;
            println!("{text}");
            Ok(true)
        }
        Output::Yaml => {
            let text = serde_saphyr::to_string(value).map_err(|e| Failure::other(e.to_string()))?;
            print!("{text}");
            Ok(true)
        }
    }
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
    fn unset_values_print_as_a_dash() {
        assert_eq!(dash(&None), "-");
        assert_eq!(dash(&Some("x".into())), "x");
    }
}
