//! Parsing of the string forms of the domain's closed enums.
//!
//! Every enum here has exactly one spelling per variant (the one stored in PostgreSQL and
//! shown in Kubernetes status), so parsing is exact and case-sensitive: accepting "Prod"
//! or "APPROVED" would let two spellings of one value reach the database.

/// A string that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}: expected one of {expected}")]
pub struct ParseEnumError {
    /// What was being parsed, e.g. "environment".
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// Finds the variant of `all` whose string form is `value`.
pub(crate) fn parse_enum<T: Copy>(
    kind: &'static str,
    value: &str,
    all: &[T],
    as_str: impl Fn(T) -> &'static str,
) -> Result<T, ParseEnumError> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == value)
        .ok_or_else(|| ParseEnumError {
            kind,
            value: value.to_owned(),
            expected: all
                .iter()
                .map(|v| as_str(*v))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Implements `Display` and `FromStr` for an enum that has `ALL` and `as_str()`.
macro_rules! impl_str_enum {
    ($ty:ty, $kind:literal) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::domain::parse::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::domain::parse::parse_enum($kind, s, &Self::ALL, Self::as_str)
            }
        }
    };
}
pub(crate) use impl_str_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Blue,
    }

    fn colour_str(c: Colour) -> &'static str {
        match c {
            Colour::Red => "red",
            Colour::Blue => "blue",
        }
    }

    #[test]
    fn parses_exact_spelling_only() {
        let all = [Colour::Red, Colour::Blue];
        assert_eq!(
            parse_enum("colour", "red", &all, colour_str),
            Ok(Colour::Red)
        );
        assert_eq!(
            parse_enum("colour", "blue", &all, colour_str),
            Ok(Colour::Blue)
        );
        for bad in ["Red", "RED", " red", "red ", "", "green"] {
            let err = parse_enum("colour", bad, &all, colour_str).unwrap_err();
            assert_eq!(err.value, bad);
            assert_eq!(
                err.to_string(),
                format!("unknown colour {bad:?}: expected one of red, blue")
            );
        }
    }
}
