//! The plugin's exit codes, for scripts: the one place their numbers are written.

use http::StatusCode;
use std::fmt::Write as _;

/// How `kubectl shepherd` ends. `--help` lists these (see [`ExitCode::help_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done.
    Success = 0,
    /// Any other failure (another HTTP status, an unreadable kubeconfig or answer, ...).
    Failure = 1,
    /// Usage: bad arguments, no API server given, or a server URL that is not https.
    Usage = 2,
    /// Not authenticated (401).
    Unauthenticated = 3,
    /// Forbidden (403).
    Forbidden = 4,
    /// Not found (404).
    NotFound = 5,
    /// Conflict, e.g. the ticket is already decided (409).
    Conflict = 6,
    /// Invalid input (400, 422).
    Invalid = 7,
    /// Rate limited (429).
    RateLimited = 8,
    /// The API or its database is unavailable (503, or no connection).
    Unavailable = 9,
}

impl ExitCode {
    /// Every code, in order.
    pub const ALL: [ExitCode; 10] = [
        ExitCode::Success,
        ExitCode::Failure,
        ExitCode::Usage,
        ExitCode::Unauthenticated,
        ExitCode::Forbidden,
        ExitCode::NotFound,
        ExitCode::Conflict,
        ExitCode::Invalid,
        ExitCode::RateLimited,
        ExitCode::Unavailable,
    ];

    /// The process exit code.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The code of an API answer that is not a success.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Self::Invalid,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => Self::Unavailable,
            _ => Self::Failure,
        }
    }

    /// A few words for `--help`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Success => "ok",
            Self::Failure => "other failure",
            Self::Usage => "usage",
            Self::Unauthenticated => "not authenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid input",
            Self::RateLimited => "rate limited",
            Self::Unavailable => "unavailable",
        }
    }

    /// `Exit codes: 0 ok, 1 other failure, ...`: the text after `--help`.
    pub fn help_text() -> String {
        let mut text = String::from("Exit codes:");
        for (i, code) in Self::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(text, "{sep} {} {}", code.code(), code.description());
        }
        text.push('.');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_numbered_in_order() {
        for (i, code) in ExitCode::ALL.iter().enumerate() {
            assert_eq!(code.code(), i32::try_from(i).unwrap(), "{code:?}");
        }
    }

    #[test]
    fn statuses_map_to_documented_codes() {
        for (status, code) in [
            (401, ExitCode::Unauthenticated),
            (403, ExitCode::Forbidden),
            (404, ExitCode::NotFound),
            (409, ExitCode::Conflict),
            (400, ExitCode::Invalid),
            (422, ExitCode::Invalid),
            (429, ExitCode::RateLimited),
            (503, ExitCode::Unavailable),
            (500, ExitCode::Failure),
            (502, ExitCode::Failure),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(ExitCode::from_status(status), code, "{status}");
        }
    }

    #[test]
    fn help_lists_every_code() {
        assert_eq!(
            ExitCode::help_text(),
            "Exit codes: 0 ok, 1 other failure, 2 usage, 3 not authenticated, 4 forbidden, \
             5 not found, 6 conflict, 7 invalid input, 8 rate limited, 9 unavailable."
        );
    }
}
