//! A tiny command-line parser: `--name value`, `--name=value` and `--flag`.
//!
//! Hand-rolled to keep the dependency list short; unknown arguments are
//! reported by [`Args::finish`].

use std::str::FromStr;

/// Arguments not yet consumed.
#[derive(Debug, Clone)]
pub struct Args {
    items: Vec<String>,
    used: Vec<bool>,
}

impl Args {
    /// The process arguments, without the program name.
    pub fn from_env() -> Self {
        Self::new(std::env::args().skip(1).collect())
    }

    /// Arguments from a list (tests).
    pub fn new(items: Vec<String>) -> Self {
        let used = vec![false; items.len()];
        Self { items, used }
    }

    /// True when `--name` is present (consumed).
    pub fn flag(&mut self, name: &str) -> bool {
        let mut found = false;
        for (i, item) in self.items.iter().enumerate() {
            if !self.used[i] && item == name {
                self.used[i] = true;
                found = true;
            }
        }
        found
    }

    /// The value of `--name value` or `--name=value` (the last one wins).
    pub fn value<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        let mut raw: Option<String> = None;
        let prefix = format!("{name}=");
        let mut i = 0;
        while i < self.items.len() {
            if self.used[i] {
                i += 1;
                continue;
            }
            if self.items[i] == name {
                if i + 1 >= self.items.len() {
                    return Err(format!("{name} needs a value"));
                }
                self.used[i] = true;
                self.used[i + 1] = true;
                raw = Some(self.items[i + 1].clone());
                i += 2;
                continue;
            }
            if let Some(v) = self.items[i].strip_prefix(&prefix) {
                self.used[i] = true;
                raw = Some(v.to_string());
            }
            i += 1;
        }
        match raw {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| format!("bad value for {name}: {v:?}")),
        }
    }

    /// Like [`Args::value`] with a default.
    pub fn value_or<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        Ok(self.value(name)?.unwrap_or(default))
    }

    /// Fails when an argument was not consumed.
    pub fn finish(self) -> Result<(), String> {
        let left: Vec<&str> = self
            .items
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(s, _)| s.as_str())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("unknown arguments: {}", left.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        Args::new(s.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn values_and_flags() {
        let mut a = args("--conns 50 --size=64 --stream --duration 1.5");
        assert_eq!(a.value::<usize>("--conns").unwrap(), Some(50));
        assert_eq!(a.value::<usize>("--size").unwrap(), Some(64));
        assert_eq!(a.value::<f64>("--duration").unwrap(), Some(1.5));
        assert_eq!(a.value::<usize>("--depth").unwrap(), None);
        assert!(a.flag("--stream"));
        assert!(a.finish().is_ok());
    }

    #[test]
    fn errors() {
        let mut a = args("--conns x");
        assert!(a.value::<usize>("--conns").is_err());
        let mut a = args("--conns");
        assert!(a.value::<usize>("--conns").is_err());
        let a = args("--bogus");
        assert!(a.finish().unwrap_err().contains("--bogus"));
    }
}
