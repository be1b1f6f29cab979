//! Valid and invalid examples from the upstream test tables (apimachinery
//! `pkg/util/validation/validation_test.go`, `pkg/api/validate/content/kube_test.go`).

use super::*;

fn all_ok(check: fn(&str) -> Vec<String>, values: &[String]) {
    for v in values {
        assert!(check(v).is_empty(), "{v:?} should pass: {:?}", check(v));
    }
}

fn all_bad(check: fn(&str) -> Vec<String>, values: &[String]) {
    for v in values {
        assert!(!check(v).is_empty(), "{v:?} should fail");
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn dns1123_labels_follow_the_upstream_table() {
    let mut good = owned(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
    ]);
    good.push("a".repeat(63));
    all_ok(dns1123_label, &good);
    let mut bad = owned(&[
        "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a",
        "a_b", "1_", "_1", "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a",
        "a b", "1 ", " 1", "1 2",
    ]);
    bad.push("a".repeat(64));
    all_bad(dns1123_label, &bad);
    assert_eq!(dns1123_label("a.b"), ["must not contain dots"]);
}

#[test]
fn dns1123_subdomains_follow_the_upstream_table() {
    let mut good = owned(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        "a.a",
        "ab.a",
        "abc.a",
        "a1.a",
        "a-1.a",
        "a--1--2--b.a",
        "a.1",
        "ab.1",
        "abc.1",
        "a1.1",
        "a-1.1",
        "a--1--2--b.1",
        "0.a",
        "01.a",
        "012.a",
        "1a.a",
        "1-a.a",
        "1--a--b--2",
        "0.1",
        "01.1",
        "012.1",
        "1a.1",
        "1-a.1",
        "1--a--b--2.1",
        "a.b.c.d.e",
        "aa.bb.cc.dd.ee",
        "1.2.3.4.5",
        "11.22.33.44.55",
    ]);
    good.push("a".repeat(253));
    all_ok(dns1123_subdomain, &good);
    let mut bad = owned(&[
        "",
        "A",
        "ABC",
        "aBc",
        "A1",
        "A-1",
        "1-A",
        "-",
        "a-",
        "-a",
        "1-",
        "-1",
        "_",
        "a_",
        "_a",
        "a_b",
        "1_",
        "_1",
        "1_2",
        ".",
        "a.",
        ".a",
        "a..b",
        "1.",
        ".1",
        "1..2",
        " ",
        "a ",
        " a",
        "a b",
        "1 ",
        " 1",
        "1 2",
        "A.a",
        "aB.a",
        "ab.A",
        "A1.a",
        "a1.A",
        "A.1",
        "aB.1",
        "A1.1",
        "1A.1",
        "0.A",
        "01.A",
        "012.A",
        "1A.a",
        "1a.A",
        "A.B.C.D.E",
        "AA.BB.CC.DD.EE",
        "a.B.c.d.e",
        "aa.bB.cc.dd.ee",
        "a@b",
        "a,b",
        "a_b",
        "a;b",
        "a:b",
        "a%b",
        "a?b",
        "a$b",
    ]);
    bad.push("a".repeat(254));
    all_bad(dns1123_subdomain, &bad);
    assert_eq!(
        dns1123_subdomain("e2e-2.oob."),
        ["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
    );
    assert_eq!(
        dns1123_subdomain(&"a".repeat(254)),
        ["must be no more than 253 characters"]
    );
}

#[test]
fn qualified_names_follow_the_upstream_table() {
    let mut good = owned(&[
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "1234",
        "simple/simple",
        "now-with-dashes/simple",
        "now-with-dashes/now-with-dashes",
        "now.with.dots/simple",
        "now-with.dashes-and.dots/simple",
        "1-num.2-num/3-num",
        "1234/5678",
        "1.2.3.4/5678",
        "Uppercase_Is_OK_123",
        "example.com/Uppercase_Is_OK_123",
        "requests.storage-foo",
        "oob.dev/cordoned",
        "oob.dev/remediation",
    ]);
    good.push("a".repeat(63));
    good.push(format!("{}/{}", "a".repeat(253), "b".repeat(63)));
    all_ok(qualified_name, &good);
    let mut bad = owned(&[
        "nospecialchars%^=@",
        "cantendwithadash-",
        "-cantstartwithadash-",
        "only/one/slash",
        "Example.com/abc",
        "example_com/abc",
        "example.com/",
        "/simple",
    ]);
    bad.push("a".repeat(64));
    bad.push(format!("{}/abc", "a".repeat(254)));
    all_bad(qualified_name, &bad);
    assert_eq!(qualified_name("/simple"), ["prefix part must be non-empty"]);
    assert_eq!(
        qualified_name("example.com/")[0],
        "name part must be non-empty"
    );
    assert_eq!(
        qualified_name(&"a".repeat(64))[0],
        "name part must be no more than 63 characters"
    );
    assert!(qualified_name("only/one/slash")[0].starts_with("a qualified name must consist"));
}

#[test]
fn label_values_follow_the_upstream_table() {
    let mut good = owned(&[
        "simple",
        "now-with-dashes",
        "1-starts-with-num",
        "end-with-num-1",
        "1234",
        "",
    ]);
    good.push("a".repeat(63));
    all_ok(label_value, &good);
    let mut bad = owned(&[
        "nospecialchars%^=@",
        "Tama-nui-te-rā.is.Māori.sun",
        "\\backslashes\\are\\bad",
        "-starts-with-dash",
        "ends-with-dash-",
        ".starts.with.dot",
        "ends.with.dot.",
    ]);
    bad.push("a".repeat(64));
    all_bad(label_value, &bad);
}

#[test]
fn config_map_keys_follow_the_upstream_table() {
    let good = owned(&[
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        ".a",
        "Key",
        "KEY_NAME",
        "key-name",
        "key.name",
        "token-id",
        "token-secret",
    ]);
    all_ok(config_map_key, &good);
    let mut bad = owned(&["", ".", "..", "..a", "a/b", "a b", "a:b", "a@b"]);
    bad.push("a".repeat(254));
    all_bad(config_map_key, &bad);
    assert_eq!(config_map_key("..a"), ["must not start with '..'"]);
}

#[test]
fn generate_name_may_end_in_a_dash_but_not_a_dot() {
    assert_eq!(mask_trailing_dash("foo-"), "foa");
    assert_eq!(mask_trailing_dash("a-"), "a");
    assert_eq!(mask_trailing_dash("-"), "-");
    assert_eq!(mask_trailing_dash("foo"), "foo");
    assert!(name_is_dns_subdomain("node-1-oob-", true).is_empty());
    assert!(name_is_dns_subdomain("foo-", true).is_empty());
    assert!(!name_is_dns_subdomain("foo-", false).is_empty());
    assert!(!name_is_dns_subdomain("-", true).is_empty());
    assert!(!name_is_dns_subdomain("e2e-2.oob.", true).is_empty());
    assert!(!name_is_dns_subdomain("node-1.oob.", true).is_empty());
    assert!(!name_is_dns_subdomain(&format!("{}-", "a".repeat(254)), true).is_empty());
}
