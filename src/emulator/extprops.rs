//! Single-value extended properties (MAPI properties by tag or name).
//!
//! Graph echoes ids in a canonical form: `Integer 0x0E08` comes back as `Integer 0xe08`.
//! Ids are matched case-insensitively and always emitted canonically.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::errors::{GraphError, GraphResult};
use super::state::Message;

const TYPES: &[&str] = &[
    "Binary",
    "Boolean",
    "Currency",
    "CLSID",
    "Double",
    "Float",
    "Guid",
    "Integer",
    "Long",
    "Object",
    "Short",
    "String",
    "SystemTime",
    "BinaryArray",
    "CLSIDArray",
    "CurrencyArray",
    "DoubleArray",
    "FloatArray",
    "IntegerArray",
    "LongArray",
    "ShortArray",
    "StringArray",
    "SystemTimeArray",
];

/// PR_MESSAGE_SIZE and PidTagMessageFlags, computed from the item rather than stored.
const MESSAGE_SIZE: &str = "Integer 0xe08";
const MESSAGE_FLAGS: &str = "Integer 0xe07";

fn invalid_id(id: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidExtendedPropertyValue",
        format!("The extended property id '{id}' is not valid."),
    )
}

/// `Integer 0x0E08` → `Integer 0xe08`; named ids keep their text after the type.
pub fn canonical(id: &str) -> GraphResult<String> {
    let id = id.trim();
    let (ty, rest) = id
        .split_once(char::is_whitespace)
        .ok_or_else(|| invalid_id(id))?;
    let ty = TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(ty))
        .ok_or_else(|| invalid_id(id))?;
    let rest = rest.trim();
    let lower = rest.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        let tag = u32::from_str_radix(hex, 16).map_err(|_| invalid_id(id))?;
        return Ok(format!("{ty} 0x{tag:x}"));
    }
    if rest.starts_with('{') {
        return Ok(format!("{ty} {rest}"));
    }
    Err(invalid_id(id))
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…' or id eq '…')`.
/// Returns the canonical ids asked for; an empty list means "all that are set".
pub fn parse_expand(expand: Option<&str>) -> GraphResult<Option<Vec<String>>> {
    let Some(expand) = expand else {
        return Ok(None);
    };
    let expand = expand.trim();
    let name = "singleValueExtendedProperties";
    if !expand
        .get(..name.len())
        .is_some_and(|head| same(head, name))
    {
        return Err(GraphError::bad_request(format!(
            "Parsing OData Select and Expand failed: could not find a property named '{expand}'."
        )));
    }
    let rest = expand.get(name.len()..).unwrap_or("").trim();
    if rest.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| GraphError::bad_request("Malformed $expand."))?;
    let filter = inner
        .trim()
        .strip_prefix("$filter=")
        .or_else(|| inner.trim().strip_prefix("filter="))
        .ok_or_else(|| GraphError::bad_request("Only $filter is supported inside this $expand."))?;
    let mut ids = Vec::new();
    for clause in filter.split(" or ") {
        let clause = clause.trim();
        let quoted = clause
            .strip_prefix("id eq ")
            .or_else(|| clause.strip_prefix("Id eq "))
            .map(|q| q.trim().trim_matches('\''))
            .ok_or_else(|| {
                GraphError::bad_request(format!("Unsupported filter clause '{clause}'."))
            })?;
        ids.push(canonical(quoted)?);
    }
    Ok(Some(ids))
}

fn value_of(m: &Message, id: &str) -> Option<String> {
    if same(id, MESSAGE_SIZE) {
        // An estimate in Exchange; here the stored MIME's length.
        return Some(m.mime.len().to_string());
    }
    if same(id, MESSAGE_FLAGS) {
        let mut flags = 0u32;
        if m.is_read {
            flags |= 0x1; // MSGFLAG_READ
        }
        if m.is_draft {
            flags |= 0x8; // MSGFLAG_UNSENT
        }
        if m.parsed.has_attachments {
            flags |= 0x10; // MSGFLAG_HASATTACH
        }
        return Some(flags.to_string());
    }
    m.ext
        .iter()
        .find(|(k, _)| same(k, id))
        .map(|(_, v)| v.clone())
}

/// The expanded collection; properties that are not set are left out, as Graph does.
pub fn render(m: &Message, ids: &[String]) -> Value {
    let wanted: Vec<String> = if ids.is_empty() {
        m.ext.keys().cloned().collect()
    } else {
        ids.to_vec()
    };
    Value::Array(
        wanted
            .iter()
            .filter_map(|id| value_of(m, id).map(|v| json!({"id": id, "value": v})))
            .collect(),
    )
}

/// `"singleValueExtendedProperties":[{"id":"Integer 0x1081","value":"102"}]` in a PATCH/POST.
pub fn parse_patch(v: &Value) -> GraphResult<Vec<(String, String)>> {
    let arr = v.as_array().ok_or_else(|| {
        GraphError::bad_request("singleValueExtendedProperties must be an array.")
    })?;
    arr.iter()
        .map(|p| {
            let id = p
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| GraphError::bad_request("An extended property needs an id."))?;
            let value = match p.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => {
                    return Err(GraphError::bad_request(
                        "An extended property needs a value.",
                    ))
                }
            };
            Ok((canonical(id)?, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonicalised() {
        assert_eq!(
            canonical("Integer 0x0E08").ok().as_deref(),
            Some("Integer 0xe08")
        );
        assert_eq!(
            canonical("integer 0x1081").ok().as_deref(),
            Some("Integer 0x1081")
        );
        assert!(canonical("Nonsense 0x1").is_err());
        assert!(canonical("Integer 0xZZ").is_err());
        let e = parse_expand(Some(
            "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08' or id eq 'Integer 0x1081')",
        ));
        assert_eq!(
            e.ok().flatten(),
            Some(vec![
                "Integer 0xe08".to_string(),
                "Integer 0x1081".to_string()
            ])
        );
    }
}
