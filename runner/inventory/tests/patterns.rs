//! Ansible host patterns for `--limit` and plays' `hosts:`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{Tree, names, one};
use rookery_inventory::Inventory;

const INV: &str = r#"
[web]
web1.example.com
web2.example.com
[db]
db1.example.com
db2.internal
[staging]
web2.example.com
db2.internal
[prod:children]
web
db
"#;

fn sel(inv: &Inventory, p: &str) -> Vec<String> {
    names(&inv.select(p).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn names_groups_globs_regex() {
    let (_t, inv) = one(INV, "inv.ini");
    let all = [
        "web1.example.com",
        "web2.example.com",
        "db1.example.com",
        "db2.internal",
    ];
    assert_eq!(sel(&inv, "all"), all);
    assert_eq!(sel(&inv, "*"), all);
    assert_eq!(sel(&inv, "db"), ["db1.example.com", "db2.internal"]);
    assert_eq!(sel(&inv, "db2.internal"), ["db2.internal"]);
    assert_eq!(sel(&inv, "web*"), ["web1.example.com", "web2.example.com"]);
    assert_eq!(
        sel(&inv, "*.example.com"),
        ["web1.example.com", "web2.example.com", "db1.example.com"]
    );
    assert_eq!(
        sel(&inv, "~(web|db)1"),
        ["web1.example.com", "db1.example.com"]
    );
    assert_eq!(
        sel(&inv, "w?b[12].example.com"),
        ["web1.example.com", "web2.example.com"]
    );
}

#[test]
fn union_intersection_exclusion_in_inventory_order() {
    let (_t, inv) = one(INV, "inv.ini");
    assert_eq!(sel(&inv, "db:web"), sel(&inv, "all"));
    assert_eq!(
        sel(&inv, "db,web1.example.com"),
        ["web1.example.com", "db1.example.com", "db2.internal"]
    );
    assert_eq!(
        sel(&inv, "prod:&staging"),
        ["web2.example.com", "db2.internal"]
    );
    assert_eq!(
        sel(&inv, "prod:!staging"),
        ["web1.example.com", "db1.example.com"]
    );
    // Exclusions apply after unions regardless of where they are written.
    assert_eq!(sel(&inv, "!staging:web"), ["web1.example.com"]);
    assert_eq!(sel(&inv, "!db"), ["web1.example.com", "web2.example.com"]);
    assert_eq!(
        sel(&inv, "web:web1.example.com:web"),
        ["web1.example.com", "web2.example.com"]
    );
}

#[test]
fn subscripts() {
    let (_t, inv) = one(INV, "inv.ini");
    assert_eq!(sel(&inv, "prod[0]"), ["web1.example.com"]);
    assert_eq!(sel(&inv, "prod[-1]"), ["db2.internal"]);
    assert_eq!(
        sel(&inv, "prod[1:2]"),
        ["web2.example.com", "db1.example.com"]
    );
    assert_eq!(sel(&inv, "prod[2:]"), ["db1.example.com", "db2.internal"]);
}

#[test]
fn retry_file_limit() {
    let t = Tree::new(&[
        ("inv.ini", INV),
        ("site.retry", "db2.internal\n\nweb1.example.com\n"),
    ]);
    let inv = t.load("inv.ini");
    let limit = format!("@{}", t.path("site.retry").display());
    assert_eq!(sel(&inv, &limit), ["web1.example.com", "db2.internal"]);
    assert_eq!(
        names(&inv.select_limited("prod", Some(&limit)).unwrap()),
        ["web1.example.com", "db2.internal"]
    );
    assert_eq!(
        names(&inv.select_limited("web", Some("staging")).unwrap()),
        ["web2.example.com"]
    );
}

#[test]
fn unknown_names_are_errors_with_suggestions() {
    let (_t, inv) = one(INV, "inv.ini");
    let err = inv.select("prod:!stagin").unwrap_err().to_string();
    assert_eq!(
        err,
        "host pattern `prod:!stagin`: no host or group matches `stagin`; did you mean `staging`?"
    );
    let err = inv.select("nothing-like-it").unwrap_err().to_string();
    assert_eq!(
        err,
        "host pattern `nothing-like-it`: no host or group matches `nothing-like-it`"
    );
    assert!(
        inv.select("~(unclosed")
            .unwrap_err()
            .to_string()
            .contains("invalid regular expression")
    );
    // A glob that matches nothing is as suspicious as a misspelt name.
    assert!(inv.select("zz*").is_err());
    // An existing but empty group is fine.
    let (_t, inv) = one("[empty]\n[g]\nh\n", "inv.ini");
    assert!(inv.select("empty").unwrap().is_empty());
}
