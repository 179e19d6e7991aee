//! A library's release number as `pip show` prints it, for the flags that
//! name the release running a workload (`--bitsandbytes-version`,
//! `--transformers-version`): what some libraries keep in memory changed
//! from one release to the next.

use serde::{Serialize, Serializer};
use std::fmt;

/// A release `MAJOR.MINOR.PATCH`, ordered by its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release {
    /// The first number (4 in transformers 4.38.2).
    pub major: u32,
    /// The second number (38 in 4.38.2).
    pub minor: u32,
    /// The third number (2 in 4.38.2); 0 when not given.
    pub patch: u32,
}

impl Release {
    /// The release `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Release {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// Reads `MAJOR.MINOR[.PATCH]`; a local or pre-release suffix after the
    /// numbers is ignored (`0.42.0.post2`, `0.43.0rc1`, `4.38.0.dev0`).
    /// `None` when the first two numbers are not there.
    pub fn parse(text: &str) -> Option<Release> {
        let mut parts = text.trim().split('.');
        let mut number = |required: bool| -> Option<u32> {
            match parts.next() {
                Some(p) => {
                    let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
                    digits.parse().ok()
                }
                None if required => None,
                None => Some(0),
            }
        };
        Some(Release {
            major: number(true)?,
            minor: number(true)?,
            patch: number(false)?,
        })
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Release {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_pip_prints() {
        assert_eq!(Release::parse("4.38.2"), Some(Release::new(4, 38, 2)));
        assert_eq!(Release::parse(" 4.41 "), Some(Release::new(4, 41, 0)));
        assert_eq!(Release::parse("4.38.0.dev0"), Some(Release::new(4, 38, 0)));
        assert_eq!(Release::parse("0.43.0rc1"), Some(Release::new(0, 43, 0)));
        assert_eq!(Release::parse("0.42.0.post2"), Some(Release::new(0, 42, 0)));
    }

    #[test]
    fn refuses_what_is_not_a_release() {
        for text in ["", "4", "latest", "v4.38", "4.x", ".38.1"] {
            assert_eq!(Release::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn orders_by_number_not_text() {
        assert!(Release::new(4, 9, 0) < Release::new(4, 10, 0));
        assert!(Release::new(4, 41, 9) < Release::new(4, 42, 0));
        assert_eq!(Release::new(4, 42, 0).to_string(), "4.42.0");
    }
}
