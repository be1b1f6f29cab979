//! The three patch types the API server accepts, as the API server applies them: JSON merge
//! patch (RFC 7386), strategic merge patch (lists merged by their patchMergeKey where the
//! Kubernetes schema declares one), and JSON patch (RFC 6902).

use serde_json::Value;

/// The patch types a real API server accepts for built-in types, in the order its 415 lists.
pub const PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// Why a patch was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// A content type not in [`PATCH_TYPES`] (415).
    UnsupportedMediaType,
    /// A server-side apply without `?fieldManager=` (422).
    NoFieldManager,
    /// A JSON patch operation that failed (422).
    JsonPatch(String),
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedMediaType => write!(
                f,
                "the body of the request was in an unknown format - accepted media types include: {}",
                PATCH_TYPES.join(", ")
            ),
            Self::NoFieldManager => write!(f, "fieldManager: Required value: is required for apply patch"),
            Self::JsonPatch(e) => write!(f, "the JSON patch could not be applied: {e}"),
        }
    }
}

/// Apply `patch` to `target` as the content type says. Server-side apply is approximated by a
/// merge (no field ownership), after the fieldManager check the real server makes.
pub fn apply(
    target: &mut Value,
    patch: &Value,
    content_type: Option<&str>,
    field_manager: Option<&str>,
) -> Result<(), PatchError> {
    match content_type {
        Some("application/merge-patch+json") => merge(target, patch),
        Some("application/strategic-merge-patch+json") => strategic(target, patch),
        Some("application/json-patch+json") => {
            json_patch(target, patch).map_err(PatchError::JsonPatch)?
        }
        Some("application/apply-patch+yaml") => {
            if field_manager.is_none_or(str::is_empty) {
                return Err(PatchError::NoFieldManager);
            }
            merge(target, patch)
        }
        _ => return Err(PatchError::UnsupportedMediaType),
    }
    Ok(())
}

/// Lists merged by key in a strategic merge patch (path from the object root → merge key).
const MERGE_KEYS: &[(&str, &str)] = &[
    ("/status/conditions", "type"),
    ("/status/addresses", "type"),
    ("/metadata/ownerReferences", "uid"),
    ("/spec/containers", "name"),
];

/// RFC 7386: objects merge, `null` deletes, everything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "", false);
}

/// Strategic merge patch (the subset Kubernetes uses for the types served here).
pub fn strategic(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "", true);
}

fn strategic_at(target: &mut Value, patch: &Value, path: &str, strategic: bool) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        let child = format!("{path}/{k}");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let key = strategic
            .then(|| {
                MERGE_KEYS
                    .iter()
                    .find(|(p, _)| *p == child)
                    .map(|(_, k)| *k)
            })
            .flatten();
        match (t.get_mut(k), v, key) {
            (Some(Value::Array(existing)), Value::Array(items), Some(key)) => {
                merge_list(existing, items, key)
            }
            (Some(existing), Value::Object(_), _) => strategic_at(existing, v, &child, strategic),
            _ => {
                let mut fresh = Value::Null;
                strategic_at(&mut fresh, v, &child, strategic);
                t.insert(k.clone(), if v.is_object() { fresh } else { v.clone() });
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let id = item.get(key).cloned();
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        let pos = existing.iter().position(|e| e.get(key) == id.as_ref());
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => merge(&mut existing[i], item),
            (None, false) => existing.push(item.clone()),
            (None, true) => {}
        }
    }
}

/// RFC 6902 (add, remove, replace, test). Errors name the failing operation.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation without \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation without \"path\"")?;
        let value = op.get("value").cloned();
        match kind {
            "test" => {
                if target.pointer(path) != value.as_ref() {
                    return Err(format!("test failed at {path}"));
                }
            }
            "remove" => {
                let (parent, last) = split(path)?;
                let p = target.pointer_mut(parent).ok_or(format!("no {parent}"))?;
                match p {
                    Value::Object(m) => m.remove(last).map(|_| ()).ok_or(format!("no {path}"))?,
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index {last}"))?;
                        if i >= a.len() {
                            return Err(format!("no {path}"));
                        }
                        a.remove(i);
                    }
                    _ => return Err(format!("cannot remove {path}")),
                }
            }
            "add" | "replace" => {
                let value = value.ok_or(format!("{kind} without \"value\""))?;
                let (parent, last) = split(path)?;
                let p = target.pointer_mut(parent).ok_or(format!("no {parent}"))?;
                match p {
                    Value::Object(m) => {
                        if kind == "replace" && !m.contains_key(last) {
                            return Err(format!("no {path} to replace"));
                        }
                        m.insert(last.to_owned(), value);
                    }
                    Value::Array(a) if last == "-" => a.push(value),
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index {last}"))?;
                        match kind {
                            "add" if i <= a.len() => a.insert(i, value),
                            "replace" if i < a.len() => a[i] = value,
                            _ => return Err(format!("index {i} out of range at {path}")),
                        }
                    }
                    _ => return Err(format!("cannot {kind} at {path}")),
                }
            }
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(())
}

fn split(path: &str) -> Result<(&str, &str), String> {
    path.rsplit_once('/').ok_or(format!("bad path {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_deletes_nulls_and_replaces_lists() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_conditions_by_type() {
        let mut v = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        strategic(
            &mut v,
            &json!({"status": {"conditions": [{"type": "HardwareHealthy", "status": "False"}]}}),
        );
        strategic(
            &mut v,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(
            v["status"]["conditions"],
            json!([{"type": "Ready", "status": "Unknown"}, {"type": "HardwareHealthy", "status": "False"}])
        );
    }

    #[test]
    fn unknown_patch_types_are_refused_with_the_accepted_list() {
        let mut v = json!({});
        let e = apply(&mut v, &json!({}), Some("application/json"), None).unwrap_err();
        assert_eq!(e, PatchError::UnsupportedMediaType);
        assert_eq!(e.to_string(), "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml");
        let e = apply(&mut v, &json!({}), None, None).unwrap_err();
        assert_eq!(e, PatchError::UnsupportedMediaType);
        let apply_yaml = Some("application/apply-patch+yaml");
        let e = apply(&mut v, &json!({"a": 1}), apply_yaml, None).unwrap_err();
        assert_eq!(e, PatchError::NoFieldManager);
        apply(&mut v, &json!({"a": 1}), apply_yaml, Some("oob")).unwrap();
        assert_eq!(v, json!({"a": 1}));
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"spec": {"taints": []}});
        json_patch(&mut v, &json!([{"op": "add", "path": "/spec/taints/-", "value": {"key": "k"}}, {"op": "test", "path": "/spec/taints/0/key", "value": "k"}])).unwrap();
        assert_eq!(v["spec"]["taints"][0]["key"], "k");
        assert!(json_patch(
            &mut v,
            &json!([{"op": "test", "path": "/spec/taints/0/key", "value": "x"}])
        )
        .is_err());
        json_patch(&mut v, &json!([{"op": "remove", "path": "/spec/taints/0"}])).unwrap();
        assert_eq!(v["spec"]["taints"], json!([]));
    }
}
