//! `[[quota]]`: parsing, errors, layering, and what the kernel gets.

use policy_common::{QUOTA_ALL_CLASSES, kind, present};

use super::{
    CompiledPolicy, QuotaPeriod, Subject,
    tests::{err, layers, parse_str},
};

const USERS: &str = r#"
[[class]]
name = "bulk"
match = { proto = "tcp", ports = [22] }

[[user]]
name = "alice"
ips = ["10.0.0.2"]
group = "staff"

[[user]]
name = "bob"
ips = ["10.0.0.3"]
group = "staff"

[[user]]
name = "carol"
ips = ["10.0.0.4"]
"#;

#[test]
fn quotas_fold_onto_each_user_they_name() {
    let p = parse_str(&format!(
        "{USERS}
[[quota]]
group = \"staff\"
class = \"bulk\"
quota = \"5GiB/week\"
reset = \"fri 18:00\"
exhausted = \"limit 1Mbit\"

[[quota]]
quota = \"100GB/month\"
exhausted = \"deny\"
"
    ))
    .unwrap();
    assert_eq!(p.quotas.len(), 2);
    assert_eq!(p.quotas[0].subject, Subject::Group("staff".into()));
    assert_eq!(p.quotas[0].period, QuotaPeriod::Week);
    assert_eq!(p.quotas[0].reset.minute, 18 * 60);
    let c = CompiledPolicy::compile(&p);
    assert_ne!(c.config.present & present::QUOTAS, 0);
    // alice and bob: bulk and everything; carol: everything.
    assert_eq!(c.quotas.len(), 5);
    assert_eq!(c.config.quota_slots, 2);
    let alice = c.users.iter().find(|u| u.name == "alice").unwrap().id;
    let mine: Vec<_> = c.quotas.iter().filter(|q| q.user == alice).collect();
    assert_eq!(mine[0].bytes, 5 << 30);
    assert_eq!(mine[0].exhausted.kind, kind::LIMIT);
    assert_eq!(mine[1].class, QUOTA_ALL_CLASSES);
    assert_eq!(mine[1].exhausted.kind, kind::DENY);
    assert!(
        mine[0]
            .describe
            .starts_with("5GiB/week (resets fri 18:00), then limit"),
        "{}",
        mine[0].describe
    );
}

#[test]
fn no_quotas_cost_the_kernel_nothing() {
    let c = CompiledPolicy::compile(&parse_str(USERS).unwrap());
    assert_eq!(c.config.present & present::QUOTAS, 0);
    assert_eq!(c.config.quota_slots, 0);
}

#[test]
fn bad_quotas_name_file_line_column_and_field() {
    let q = |body: &str| err(&format!("{USERS}\n[[quota]]\n{body}"));
    let e = q("quota = \"5GiB\"\nexhausted = \"deny\"\n");
    assert!(
        e.starts_with("p.toml:21:9: quota[0].quota: ") && e.contains("per `day`"),
        "{e}"
    );
    let e = q("quota = \"5GiB/day\"\nexhausted = \"allow\"\n");
    assert!(
        e.starts_with("p.toml:22:13: quota[0].exhausted: ") && e.contains("no quota"),
        "{e}"
    );
    let e = q("user = \"dave\"\nquota = \"5GiB/day\"\nexhausted = \"deny\"\n");
    assert_eq!(e, "p.toml:21:8: quota[0].user: no user named `dave`");
    let e = q("user = \"unidentified\"\nquota = \"5GiB/day\"\nexhausted = \"deny\"\n");
    assert!(e.contains("the unidentified user has no quota"), "{e}");
    let e = q("class = \"video\"\nquota = \"5GiB/day\"\nexhausted = \"deny\"\n");
    assert_eq!(e, "p.toml:21:9: quota[0].class: no class named `video`");
    let e = q("quota = \"5GiB/month\"\nreset = \"31\"\nexhausted = \"deny\"\n");
    assert!(
        e.starts_with("p.toml:22:9: quota[0].reset: ") && e.contains("1 to 28"),
        "{e}"
    );
    let e = q("quota = \"5GiB/day\"\nexhausted = \"deny\"\nbudget = 1\n");
    assert!(e.contains("unknown field `budget`"), "{e}");
}

#[test]
fn five_quotas_for_one_user_are_refused() {
    let one = "[[quota]]\nuser = \"alice\"\nquota = \"1GiB/day\"\nexhausted = \"deny\"\n";
    let e = err(&format!("{USERS}\n{}", one.repeat(5)));
    assert!(
        e.contains("quota[4]") && e.contains("user `alice` would have 5 quotas"),
        "{e}"
    );
}

#[test]
fn a_later_layer_adds_quotas_and_never_removes_one() {
    let base = format!("{USERS}\n[[quota]]\nquota = \"10GiB/day\"\nexhausted = \"deny\"\n");
    let agency = "[[quota]]\nuser = \"alice\"\nclass = \"bulk\"\nquota = \"1GiB/day\"\nexhausted = \"limit 1Mbit\"\n";
    let (_d, l) = layers(&[&base, agency]);
    let l = l.unwrap();
    assert_eq!(l.policy.quotas.len(), 2, "both apply");
    assert!(
        l.provenance.contains_key("quota everyone all")
            && l.provenance.contains_key("quota user alice bulk"),
        "{:?}",
        l.provenance.keys().collect::<Vec<_>>()
    );
    // A layer without quotas keeps the earlier ones.
    let (_d, l) = layers(&[&base, "[settings]\nmode = \"enforce\"\n"]);
    assert_eq!(l.unwrap().policy.quotas.len(), 1);
}
