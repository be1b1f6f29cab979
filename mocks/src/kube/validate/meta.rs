//! `metadata` rules of apimachinery `pkg/api/validation/objectmeta.go`: on create the name
//! (and the generateName, as a prefix), the namespace, labels and annotations; on update the
//! resourceVersion and the immutable identity fields. Also the name generator the API server
//! uses for `generateName` (`names.SimpleNameGenerator`).

use rand::Rng as _;
use serde_json::Value;

use super::names::{dns1123_label, label_value, name_is_dns_subdomain, qualified_name};
use super::{Bad, FieldError, Kind};

/// The annotations of an object may hold at most 256 KiB, keys and values counted together.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// A generated name is at most 63 bytes: the base cut to 58, then 5 random characters.
const MAX_GENERATED_NAME_LENGTH: usize = 63 - RANDOM_LENGTH;
const RANDOM_LENGTH: usize = 5;
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `base[:58]` followed by 5 random characters, as the real server generates names. (Upstream
/// draws from an alphabet without vowels and easily confused digits; so does this.)
pub fn generate_name(base: &str) -> String {
    let mut cut = base.len().min(MAX_GENERATED_NAME_LENGTH);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rng = rand::rng();
    let suffix: String = (0..RANDOM_LENGTH)
        .map(|_| char::from(ALPHANUMS[rng.random_range(0..ALPHANUMS.len())]))
        .collect();
    format!("{}{suffix}", &base[..cut])
}

fn str_at<'a>(meta: &'a Value, key: &str) -> Option<&'a str> {
    meta.get(key).and_then(Value::as_str)
}

/// Name, generateName and namespace of a new object (after name generation).
pub fn create(meta: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(g) = str_at(meta, "generateName").filter(|g| !g.is_empty()) {
        for m in name_is_dns_subdomain(g, true) {
            errs.push(FieldError::invalid("metadata.generateName", g, &m));
        }
    }
    match str_at(meta, "name").filter(|n| !n.is_empty()) {
        None => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) => {
            for m in name_is_dns_subdomain(n, false) {
                errs.push(FieldError::invalid("metadata.name", n, &m));
            }
        }
    }
    match (
        namespaced,
        str_at(meta, "namespace").filter(|n| !n.is_empty()),
    ) {
        (true, None) => errs.push(FieldError::required("metadata.namespace", "")),
        (true, Some(ns)) => {
            for m in dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns, &m));
            }
        }
        (false, Some(_)) => errs.push(FieldError::new(
            Kind::Forbidden,
            "metadata.namespace",
            Bad::None,
            "not allowed on this type",
        )),
        (false, None) => {}
    }
    errs.extend(common(meta));
    errs
}

/// An update (PUT or the result of a PATCH): `new` must carry a resourceVersion and keep the
/// identity of `old`.
pub fn update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rv = str_at(new, "resourceVersion").unwrap_or("");
    if rv.is_empty() {
        errs.push(FieldError::invalid(
            "metadata.resourceVersion",
            rv,
            "must be specified for an update",
        ));
    }
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let (n, o) = (new.get(field), old.get(field));
        if n != o {
            let shown = n.and_then(Value::as_str).unwrap_or("");
            errs.push(FieldError::invalid(
                &format!("metadata.{field}"),
                shown,
                "field is immutable",
            ));
        }
    }
    errs.extend(common(new));
    errs
}

/// Labels and annotations, shared by create and update.
fn common(meta: &Value) -> Vec<FieldError> {
    let mut errs = labels(meta.get("labels"));
    errs.extend(annotations(meta.get("annotations")));
    errs
}

/// Label keys are qualified names, values label values (`ValidateLabels`).
pub fn labels(labels: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
        for m in qualified_name(k) {
            errs.push(FieldError::invalid("metadata.labels", k, &m));
        }
        let v = v.as_str().unwrap_or("");
        for m in label_value(v) {
            errs.push(FieldError::invalid("metadata.labels", v, &m));
        }
    }
    errs
}

/// Annotation keys are qualified names once lower-cased; all of them together at most 256 KiB.
pub fn annotations(annotations: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.and_then(Value::as_object).into_iter().flatten() {
        for m in qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", k, &m));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            "metadata.annotations",
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_names_keep_58_bytes_of_the_base_and_add_5() {
        let n = generate_name("node-1-oob-");
        assert_eq!(n.len(), "node-1-oob-".len() + 5);
        assert!(n.starts_with("node-1-oob-"));
        assert!(name_is_dns_subdomain(&n, false).is_empty(), "{n}");
        let long = "a".repeat(100);
        let n = generate_name(&long);
        assert_eq!(n.len(), 63);
        assert!(n.starts_with(&"a".repeat(58)));
        assert_ne!(generate_name("x-"), generate_name("x-"), "random suffix");
    }

    #[test]
    fn a_generate_name_ending_in_a_dot_is_refused_as_the_real_server_does() {
        let meta = json!({"generateName": "e2e-2.oob.", "name": "e2e-2.oob.x7k2p", "namespace": "default"});
        let errs = create(&meta, true);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "metadata.generateName");
        assert!(errs[0].to_string().starts_with(
            "metadata.generateName: Invalid value: \"e2e-2.oob.\": a lowercase RFC 1123 subdomain"
        ));
        let meta = json!({"generateName": "e2e-2-oob-", "name": "e2e-2-oob-x7k2p", "namespace": "default"});
        assert!(create(&meta, true).is_empty());
    }

    #[test]
    fn names_and_namespaces_are_required_where_they_belong() {
        let errs = create(&json!({}), true);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "metadata.namespace"]);
        assert_eq!(
            errs[0].body(),
            "Required value: name or generateName is required"
        );
        let errs = create(&json!({"name": "n", "namespace": "default"}), false);
        assert_eq!(errs[0].kind, Kind::Forbidden);
        assert!(!create(&json!({"name": "Bad_Name", "namespace": "default"}), true).is_empty());
        assert!(!create(&json!({"name": "n", "namespace": "a.b"}), true).is_empty());
    }

    #[test]
    fn label_and_annotation_keys_and_values_are_checked() {
        let ok = json!({"oob.dev/cordoned": "true", "Example.com/Key": "x", "a": ""});
        assert!(
            annotations(Some(&ok)).is_empty(),
            "keys are lower-cased first"
        );
        // An empty name part is both empty and not matching the pattern, as upstream says.
        let bad = json!({"oob.dev/": "x", "-k": "y"});
        assert_eq!(annotations(Some(&bad)).len(), 3);
        assert!(labels(Some(&json!({"kubernetes.io/hostname": "node-1"}))).is_empty());
        let bad = labels(Some(&json!({"Example.com/k": "v", "k": "-v"})));
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].field, "metadata.labels");
    }

    #[test]
    fn annotations_hold_at_most_256_kib_in_total() {
        let big = |n: usize| json!({"a": "x".repeat(n - 1)});
        assert!(annotations(Some(&big(TOTAL_ANNOTATION_SIZE_LIMIT))).is_empty());
        let errs = annotations(Some(&big(TOTAL_ANNOTATION_SIZE_LIMIT + 1)));
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
        assert_eq!(errs[0].kind.cause(), "FieldValueTooLong");
    }

    #[test]
    fn updates_need_a_resource_version_and_keep_identity() {
        let old = json!({"name": "l", "namespace": "ns", "uid": "u", "resourceVersion": "3"});
        assert!(update(&old, &old).is_empty());
        let errs = update(&json!({"name": "l", "namespace": "ns", "uid": "u"}), &old);
        assert_eq!(
            errs[0].to_string(),
            "metadata.resourceVersion: Invalid value: \"\": must be specified for an update"
        );
        let renamed = json!({"name": "m", "namespace": "ns", "uid": "u", "resourceVersion": "3"});
        assert_eq!(update(&renamed, &old)[0].field, "metadata.name");
    }
}
