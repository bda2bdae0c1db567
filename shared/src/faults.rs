//! Crash points: named places where a process can be made to die on purpose, so that tests
//! on the real path can prove a function killed at the worst moment loses and duplicates
//! nothing.
//!
//! Off unless `INLET_CRASH_POINTS` is set, as `name=probability` pairs separated by commas
//! (`converter.fragment_staged=0.1,compactor.after_commit=0.2`). A point that fires aborts the
//! process on the spot, as a Lambda runtime killed by its timeout or its memory limit dies: no
//! unwinding, no cleanup, no answer to the invocation.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The variable arming crash points.
pub const CRASH_POINTS_VARIABLE: &str = "INLET_CRASH_POINTS";

/// Every crash point, so a misspelt name is refused instead of never firing.
pub const CRASH_POINTS: &[&str] = &[
    "converter.fragment_staged",
    "converter.before_seal",
    "converter.after_seal",
    "compactor.before_commit",
    "compactor.after_commit",
    "compactor.before_delete",
    "compactor.mid_delete",
    "history.rebuild_saved",
];

/// The variable naming a poison key: the converter dies on reading any object whose key
/// holds it (an object that kills the converter whenever it is read).
pub const CRASH_ON_KEY_VARIABLE: &str = "INLET_CRASH_ON_KEY";

/// Aborts the process if `key` holds the `INLET_CRASH_ON_KEY` text.
pub fn crash_on_key(key: &str) {
    static POISON: OnceLock<Option<String>> = OnceLock::new();
    let poison = POISON.get_or_init(|| std::env::var(CRASH_ON_KEY_VARIABLE).ok().filter(|text| !text.is_empty()));
    if let Some(poison) = poison
        && key.contains(poison.as_str())
    {
        eprintln!("{{\"level\":\"WARN\",\"message\":\"poison object read: aborting\",\"key\":\"{key}\"}}");
        std::process::abort();
    }
}

/// Parses an `INLET_CRASH_POINTS` value.
pub fn parse_crash_points(spec: &str) -> Result<HashMap<String, f64>, String> {
    let mut points = HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, probability) = entry
            .split_once('=')
            .ok_or_else(|| format!("{CRASH_POINTS_VARIABLE}: {entry:?} is not name=probability"))?;
        if !CRASH_POINTS.contains(&name) {
            return Err(format!(
                "{CRASH_POINTS_VARIABLE}: unknown crash point {name:?}; known: {}",
                CRASH_POINTS.join(", ")
            ));
        }
        let probability: f64 =
            probability.parse().ok().filter(|p| (0.0..=1.0).contains(p)).ok_or_else(|| {
                format!("{CRASH_POINTS_VARIABLE}: {name}={probability} is not a probability in 0..=1")
            })?;
        points.insert(name.to_string(), probability);
    }
    Ok(points)
}

fn armed() -> &'static HashMap<String, f64> {
    static ARMED: OnceLock<HashMap<String, f64>> = OnceLock::new();
    ARMED.get_or_init(|| match std::env::var(CRASH_POINTS_VARIABLE) {
        Ok(spec) => parse_crash_points(&spec).unwrap_or_else(|err| panic!("{err}")),
        Err(_) => HashMap::new(),
    })
}

/// Aborts the process here, with the probability `INLET_CRASH_POINTS` gives `name`.
pub fn crash_point(name: &'static str) {
    debug_assert!(CRASH_POINTS.contains(&name), "crash point {name} is not listed");
    let Some(&probability) = armed().get(name) else { return };
    if rand::random::<f64>() < probability {
        // Written straight to stderr: the process dies before any buffered log is flushed.
        eprintln!("{{\"level\":\"WARN\",\"message\":\"crash point fired: aborting\",\"point\":\"{name}\"}}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_mistakes_are_named() {
        let points = parse_crash_points("converter.before_seal=0.5, compactor.after_commit=1").unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points["compactor.after_commit"], 1.0);
        assert!(parse_crash_points("").unwrap().is_empty());
        assert!(parse_crash_points("converter.nowhere=0.5").unwrap_err().contains("unknown crash point"));
        assert!(parse_crash_points("converter.before_seal=2").unwrap_err().contains("probability"));
        assert!(parse_crash_points("converter.before_seal").unwrap_err().contains("name=probability"));
    }
}
