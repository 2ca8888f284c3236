//! The `$filter` the emulator understands: comparisons on `receivedDateTime` joined by `and`.
//! Anything else is refused with Graph's error rather than silently ignored.

use chrono::{DateTime, Utc};

use super::errors::{GraphError, GraphResult};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

#[derive(Clone, Debug)]
pub struct Received {
    clauses: Vec<(Op, DateTime<Utc>)>,
}

impl Received {
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.clauses.iter().all(|(op, v)| match op {
            Op::Ge => t >= *v,
            Op::Gt => t > *v,
            Op::Le => t <= *v,
            Op::Lt => t < *v,
            Op::Eq => t == *v,
        })
    }
}

fn unsupported(f: &str) -> GraphError {
    GraphError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "ErrorInvalidUrlQueryFilter",
        format!("The query filter '{f}' is not supported."),
    )
}

/// Parses `receivedDateTime ge 2026-01-01T00:00:00Z and receivedDateTime lt …`.
pub fn parse_received(filter: Option<&str>) -> GraphResult<Option<Received>> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    let mut clauses = Vec::new();
    for clause in filter.split(" and ") {
        let parts: Vec<&str> = clause.split_whitespace().collect();
        let [prop, op, value] = parts.as_slice() else {
            return Err(unsupported(filter));
        };
        if !prop.eq_ignore_ascii_case("receivedDateTime") {
            return Err(unsupported(filter));
        }
        let op = match op.to_ascii_lowercase().as_str() {
            "ge" => Op::Ge,
            "gt" => Op::Gt,
            "le" => Op::Le,
            "lt" => Op::Lt,
            "eq" => Op::Eq,
            _ => return Err(unsupported(filter)),
        };
        let value = value.trim_matches('\'');
        let t = DateTime::parse_from_rfc3339(value)
            .map_err(|_| unsupported(filter))?
            .with_timezone(&Utc);
        clauses.push((op, t));
    }
    Ok(Some(Received { clauses }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_refuses_other_properties() {
        let f = parse_received(Some(
            "receivedDateTime ge 2026-01-01T00:00:00Z and receivedDateTime lt 2026-02-01T00:00:00Z",
        ))
        .ok()
        .flatten();
        let Some(f) = f else {
            panic!("filter should parse")
        };
        let inside =
            DateTime::parse_from_rfc3339("2026-01-15T00:00:00Z").map(|t| t.with_timezone(&Utc));
        assert!(inside.is_ok_and(|t| f.matches(t)));
        assert!(parse_received(Some("subject eq 'x'")).is_err());
    }
}
