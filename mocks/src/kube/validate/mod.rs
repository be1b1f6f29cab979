//! Field validation as a real kube-apiserver does it for the objects `oob` writes, and the
//! 422 `Status` it answers with. The rules are ported (rewritten, not copied) from upstream
//! Kubernetes: apimachinery `pkg/util/validation` (name formats, in [`names`]),
//! `pkg/api/validation/objectmeta.go` (metadata, in [`meta`]) and the per-type validation of
//! Events, Leases, Secrets and Nodes (in [`objects`]).
//!
//! Deliberately left out: anything `oob` never sends (pod specs, owner references beyond
//! their presence, managed fields, server-side apply field ownership).

pub mod meta;
pub mod names;
pub mod objects;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The kind of a field error, as `field.ErrorType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Required,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    Duplicate,
}

impl Kind {
    /// What the error body starts with (`Invalid value`, `Required value`, …).
    fn text(self) -> &'static str {
        match self {
            Kind::Required => "Required value",
            Kind::Invalid => "Invalid value",
            Kind::NotSupported => "Unsupported value",
            Kind::Forbidden => "Forbidden",
            Kind::TooLong => "Too long",
            Kind::Duplicate => "Duplicate value",
        }
    }

    /// `details.causes[].reason`.
    fn cause(self) -> &'static str {
        match self {
            Kind::Required => "FieldValueRequired",
            Kind::Invalid => "FieldValueInvalid",
            Kind::NotSupported => "FieldValueNotSupported",
            Kind::Forbidden => "FieldValueForbidden",
            Kind::TooLong => "FieldValueTooLong",
            Kind::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// The offending value, printed the way the Go server prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// Not shown (`Required`, `Forbidden`, `TooLong`).
    None,
    /// Shown quoted, Go `%q` style.
    Str(String),
    Int(i64),
    /// Shown as is (e.g. `0x0`, Go's `%#v` of an unsigned zero).
    Raw(&'static str),
}

/// One `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: Kind,
    /// `metadata.generateName`, `spec.taints[0].key`, …
    pub field: String,
    pub bad: Bad,
    pub detail: String,
}

impl FieldError {
    pub fn new(kind: Kind, field: &str, bad: Bad, detail: &str) -> Self {
        Self {
            kind,
            field: field.to_owned(),
            bad,
            detail: detail.to_owned(),
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        Self::new(Kind::Invalid, field, Bad::Str(value.to_owned()), detail)
    }

    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(Kind::Required, field, Bad::None, detail)
    }

    /// `Too long: must have at most N bytes`.
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::new(
            Kind::TooLong,
            field,
            Bad::None,
            &format!("must have at most {max} bytes"),
        )
    }

    pub fn not_supported(field: &str, value: &str, allowed: &[&str]) -> Self {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Self::new(
            Kind::NotSupported,
            field,
            Bad::Str(value.to_owned()),
            &format!("supported values: {}", list.join(", ")),
        )
    }

    /// The message without the field (`details.causes[].message`).
    pub fn body(&self) -> String {
        let mut s = match (&self.bad, self.kind) {
            (_, Kind::Required | Kind::Forbidden | Kind::TooLong) | (Bad::None, _) => {
                self.kind.text().to_owned()
            }
            (Bad::Str(v), _) => format!("{}: {}", self.kind.text(), go_quote(v)),
            (Bad::Int(i), _) => format!("{}: {i}", self.kind.text()),
            (Bad::Raw(r), _) => format!("{}: {r}", self.kind.text()),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A string quoted as Go's `%q` does for the printable ASCII and UTF-8 values seen here.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `is invalid:` message: one error as is, several as `[a, b]` (duplicates dropped, as
/// `utilerrors.NewAggregate` does when printing).
pub fn aggregate(errs: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let s = e.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    match seen.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The kind of object a 422 is about, as `schema.GroupKind` prints it.
#[derive(Debug, Clone, Copy)]
pub struct GroupKind {
    pub group: &'static str,
    pub kind: &'static str,
}

pub const EVENT: GroupKind = GroupKind {
    group: "events.k8s.io",
    kind: "Event",
};
pub const LEASE: GroupKind = GroupKind {
    group: "coordination.k8s.io",
    kind: "Lease",
};
pub const SECRET: GroupKind = GroupKind {
    group: "",
    kind: "Secret",
};
pub const NODE: GroupKind = GroupKind {
    group: "",
    kind: "Node",
};

/// What the storage layer answers an update without a resourceVersion of a type that allows
/// no unconditional update (Leases): it names the resource, not the kind, and prints the
/// missing version as an unsigned `0x0`.
pub fn missing_resource_version(
    resource: &'static str,
    group: &'static str,
    name: &str,
) -> Response {
    let err = FieldError::new(
        Kind::Invalid,
        "metadata.resourceVersion",
        Bad::Raw("0x0"),
        "must be specified for an update",
    );
    let gk = GroupKind {
        group,
        kind: resource,
    };
    let body = invalid_body(gk, name, &[err]);
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

/// The `Status` body of a 422 (`errors.NewInvalid`).
pub fn invalid_body(gk: GroupKind, name: &str, errs: &[FieldError]) -> Value {
    let qualified = if gk.group.is_empty() {
        gk.kind.to_owned()
    } else {
        format!("{}.{}", gk.kind, gk.group)
    };
    let causes: Vec<Value> = errs
        .iter()
        .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field}))
        .collect();
    let mut details = json!({"name": name, "kind": gk.kind, "causes": causes});
    if !gk.group.is_empty() {
        details["group"] = json!(gk.group);
    }
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{qualified} {} is invalid: {}", go_quote(name), aggregate(errs)),
        "reason": "Invalid", "details": details, "code": 422,
    })
}

/// The 422 response for `errs`, or `None` when there is nothing to report.
pub fn rejection(gk: GroupKind, name: &str, errs: &[FieldError]) -> Option<Response> {
    if errs.is_empty() {
        return None;
    }
    let body = invalid_body(gk, name, errs);
    Some((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_reads_like_the_real_server() {
        let e = FieldError::invalid("metadata.generateName", "e2e-2.oob.", "bad");
        let body = invalid_body(EVENT, "x", &[e]);
        assert_eq!(
            body["message"],
            "Event.events.k8s.io \"x\" is invalid: metadata.generateName: Invalid value: \"e2e-2.oob.\": bad"
        );
        assert_eq!(body["details"]["group"], "events.k8s.io");
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(
            body["details"]["causes"][0]["message"],
            "Invalid value: \"e2e-2.oob.\": bad"
        );
        assert_eq!(body["code"], 422);
    }

    #[test]
    fn several_errors_are_bracketed_and_core_kinds_have_no_group() {
        let errs = [
            FieldError::required("reason", ""),
            FieldError::too_long("metadata.annotations", 262144),
            FieldError::required("reason", ""),
        ];
        let body = invalid_body(NODE, "n", &errs);
        assert_eq!(
            body["message"],
            "Node \"n\" is invalid: [reason: Required value, metadata.annotations: Too long: must have at most 262144 bytes]"
        );
        assert!(body["details"].get("group").is_none());
        assert_eq!(body["details"]["causes"][1]["reason"], "FieldValueTooLong");
    }

    #[test]
    fn an_update_without_resource_version_names_the_resource() {
        let err = FieldError::new(
            Kind::Invalid,
            "metadata.resourceVersion",
            Bad::Raw("0x0"),
            "must be specified for an update",
        );
        let gk = GroupKind {
            group: "coordination.k8s.io",
            kind: "leases",
        };
        assert_eq!(
            invalid_body(gk, "l", &[err])["message"],
            "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        );
    }

    #[test]
    fn values_print_as_go_does() {
        let e = FieldError::new(
            Kind::Invalid,
            "spec.leaseDurationSeconds",
            Bad::Int(0),
            "must be greater than 0",
        );
        assert_eq!(
            e.to_string(),
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        let e = FieldError::not_supported("type", "Info", &["Normal", "Warning"]);
        assert_eq!(
            e.body(),
            "Unsupported value: \"Info\": supported values: \"Normal\", \"Warning\""
        );
    }
}
