//! Policy evaluation, table by table: every matcher, deny precedence, the defaults, globs,
//! roles, expiry, tool scopes.

use super::*;

fn origin(line: usize) -> Origin {
    Origin {
        file: "policies/test.toml".into(),
        line,
    }
}

fn rule(name: &str, effect: Effect, who: Who, what: What) -> Rule {
    Rule {
        name: name.into(),
        origin: origin(1),
        effect,
        who,
        what,
        expires: None,
    }
}

fn globs(list: &[&str]) -> Vec<Glob> {
    list.iter().map(|g| Glob::new(g)).collect()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn person(provider: &str, subject: &str, email: &str, groups: &[&str]) -> Identity {
    Identity {
        provider: provider.into(),
        subject: subject.into(),
        email: (!email.is_empty()).then(|| email.into()),
        name: None,
        groups: strings(groups),
    }
}

fn scopes(s: &str) -> ScopeSet {
    ScopeSet::parse(s).unwrap()
}

fn set(rules: Vec<Rule>, groups: Vec<GroupDef>) -> PolicySet {
    PolicySet::new(
        groups,
        rules.into_iter().map(|r| (vec!["db".into()], r)).collect(),
        Vec::new(),
        &[
            UpstreamName::parse("db").unwrap(),
            UpstreamName::parse("other").unwrap(),
        ],
    )
}

fn platform() -> GroupDef {
    GroupDef {
        name: "platform".into(),
        origin: origin(1),
        emails: strings(&["carol@partner.org"]),
        email_domains: strings(&["example.com"]),
        provider_groups: strings(&["acme/platform"]),
        admins: strings(&["bob@example.com"]),
        owners: strings(&["alice@example.com"]),
    }
}

const NOW: u64 = 1_800_000_000;

fn access(p: &PolicySet, id: &Identity, client: &str, granted: &str) -> bool {
    let granted = scopes(granted);
    let s = Subject::new(p, id, client, &granted);
    p.upstream("db").unwrap().access(&s, NOW).allowed
}

#[test]
fn each_who_field_matches_only_its_people() {
    let alice = person("google", "a1", "Alice@Example.com", &["eng"]);
    let mallory = person("github", "m9", "mallory@evil.test", &[]);
    let who = |f: &dyn Fn(&mut Who)| {
        let mut w = Who::default();
        f(&mut w);
        w
    };
    let cases: Vec<(&str, Who, bool, bool)> = vec![
        (
            "users",
            who(&|w| w.users = strings(&["google:a1"])),
            true,
            false,
        ),
        (
            "emails (case-insensitive)",
            who(&|w| w.emails = strings(&["alice@example.com"])),
            true,
            false,
        ),
        (
            "email_domains",
            who(&|w| w.email_domains = strings(&["example.com"])),
            true,
            false,
        ),
        (
            "provider groups",
            who(&|w| {
                w.groups = vec![GroupRef {
                    name: "eng".into(),
                    role: None,
                }]
            }),
            true,
            false,
        ),
        (
            "providers",
            who(&|w| w.providers = strings(&["github"])),
            false,
            true,
        ),
        (
            "clients (glob)",
            who(&|w| w.clients = globs(&["https://*.claude.ai/*"])),
            true,
            false,
        ),
        (
            "scopes (all needed)",
            who(&|w| w.scopes = vec![Scope::parse("db:read").unwrap()]),
            true,
            false,
        ),
        ("nobody named: everyone", Who::default(), true, true),
        (
            "two fields: both must hold",
            who(&|w| {
                w.providers = strings(&["google"]);
                w.email_domains = strings(&["evil.test"]);
            }),
            false,
            false,
        ),
    ];
    for (what, who, want_alice, want_mallory) in cases {
        let p = set(vec![rule("r", Effect::Allow, who, What::default())], vec![]);
        let a = access(
            &p,
            &alice,
            "https://app.claude.ai/oauth/client.json",
            "db:read",
        );
        let m = access(&p, &mallory, "agc_123", "mcp");
        assert_eq!((a, m), (want_alice, want_mallory), "{what}");
    }
}

#[test]
fn deny_wins_over_allow_whatever_the_order() {
    let alice = person("google", "a1", "alice@example.com", &[]);
    let allow = rule(
        "allow example.com",
        Effect::Allow,
        Who {
            email_domains: strings(&["example.com"]),
            ..Default::default()
        },
        What::default(),
    );
    let deny = rule(
        "deny alice",
        Effect::Deny,
        Who {
            emails: strings(&["alice@example.com"]),
            ..Default::default()
        },
        What::default(),
    );
    for rules in [
        vec![allow.clone(), deny.clone()],
        vec![deny.clone(), allow.clone()],
    ] {
        let p = set(rules, vec![]);
        let granted = scopes("mcp");
        let d = p
            .upstream("db")
            .unwrap()
            .access(&Subject::new(&p, &alice, "c", &granted), NOW);
        assert!(!d.allowed);
        assert_eq!(d.rule.unwrap().name, "deny alice");
    }
}

#[test]
fn defaults_deny_only_where_an_allow_rule_governs() {
    let bob = person("local", "bob", "bob@other.org", &[]);
    // Only a deny rule (for someone else): everyone else keeps access.
    let only_deny = set(
        vec![rule(
            "deny eve",
            Effect::Deny,
            Who {
                emails: strings(&["eve@x.org"]),
                ..Default::default()
            },
            What::default(),
        )],
        vec![],
    );
    assert!(access(&only_deny, &bob, "c", "mcp"));
    // An allow rule for someone else: bob is denied by default, with no rule named.
    let only_allow = set(
        vec![rule(
            "allow eve",
            Effect::Allow,
            Who {
                emails: strings(&["eve@x.org"]),
                ..Default::default()
            },
            What::default(),
        )],
        vec![],
    );
    let granted = scopes("mcp");
    let d = only_allow
        .upstream("db")
        .unwrap()
        .access(&Subject::new(&only_allow, &bob, "c", &granted), NOW);
    assert!(!d.allowed && d.rule.is_none());
    assert_eq!(d.explain(), "denied: no allow rule matches");
    // Rules for `db` do not touch `other`: it has none.
    assert!(only_allow.upstream("other").is_none());
}

#[test]
fn roles_in_declared_groups_order_owner_admin_member() {
    let p = set(
        vec![rule(
            "platform admins",
            Effect::Allow,
            Who {
                groups: vec![GroupRef {
                    name: "platform".into(),
                    role: Some(Role::Admin),
                }],
                ..Default::default()
            },
            What::default(),
        )],
        vec![platform()],
    );
    let cases = [
        ("alice@example.com", &[][..], true, Some(Role::Owner)),
        ("bob@example.com", &[][..], true, Some(Role::Admin)),
        ("dave@example.com", &[][..], false, Some(Role::Member)),
        ("carol@partner.org", &[][..], false, Some(Role::Member)),
        (
            "erin@else.org",
            &["acme/platform"][..],
            false,
            Some(Role::Member),
        ),
        ("frank@else.org", &[][..], false, None),
    ];
    for (email, groups, want, role) in cases {
        let id = person("google", email, email, groups);
        assert_eq!(access(&p, &id, "c", "mcp"), want, "{email}");
        let granted = scopes("mcp");
        let s = Subject::new(&p, &id, "c", &granted);
        assert_eq!(s.memberships.first().map(|m| m.1), role, "{email}");
    }
}

#[test]
fn expired_rules_no_longer_count() {
    let mut temp = rule(
        "contractor until",
        Effect::Allow,
        Who {
            emails: strings(&["c@x.org"]),
            ..Default::default()
        },
        What::default(),
    );
    temp.expires = Some(NOW + 1);
    let p = set(vec![temp], vec![]);
    let c = person("google", "c", "c@x.org", &[]);
    let granted = scopes("mcp");
    let rules = p.upstream("db").unwrap();
    let s = Subject::new(&p, &c, "x", &granted);
    assert!(rules.access(&s, NOW).allowed);
    // Expired, it matches no one, but the upstream stays closed: an allow-list whose last
    // entry expires must not open the upstream to everyone.
    let after = rules.access(&s, NOW + 1);
    assert!(!after.allowed && after.rule.is_none());
}

#[test]
fn call_rules_use_method_and_item_globs() {
    let eng = GroupRef {
        name: "eng".into(),
        role: None,
    };
    let p = set(
        vec![
            rule(
                "eng may search",
                Effect::Allow,
                Who {
                    groups: vec![eng.clone()],
                    ..Default::default()
                },
                What {
                    tools: globs(&["search_*", "get_*"]),
                    ..Default::default()
                },
            ),
            rule(
                "nobody deletes",
                Effect::Deny,
                Who::default(),
                What {
                    tools: globs(&["delete_*", "get_secret"]),
                    ..Default::default()
                },
            ),
            rule(
                "no sampling method",
                Effect::Deny,
                Who::default(),
                What {
                    methods: globs(&["completion/*"]),
                    ..Default::default()
                },
            ),
        ],
        vec![],
    );
    let rules = p.upstream("db").unwrap();
    assert!(rules.inspects_calls() && rules.filters_lists());
    let eng_person = person("google", "e", "e@example.com", &["eng"]);
    let other = person("google", "o", "o@example.com", &[]);
    let granted = scopes("mcp");
    let call = |id: &Identity, method: &str, name: Option<&str>| {
        let s = Subject::new(&p, id, "c", &granted);
        rules.call(&s, Call { method, name }, NOW)
    };
    let cases = [
        (&eng_person, "tools/call", Some("search_docs"), true),
        (&eng_person, "tools/call", Some("get_secret"), false),
        (&eng_person, "tools/call", Some("delete_all"), false),
        (&eng_person, "tools/call", Some("echo"), false),
        (&other, "tools/call", Some("search_docs"), false),
        // Methods no allow rule governs keep working for everyone (the session survives).
        (&other, "initialize", None, true),
        (&other, "tools/list", None, true),
        (&other, "prompts/get", Some("anything"), true),
        (&other, "completion/complete", None, false),
    ];
    for (id, method, name, want) in cases {
        assert_eq!(
            call(id, method, name).allowed,
            want,
            "{} {method} {name:?}",
            id.subject
        );
    }
    let d = call(&eng_person, "tools/call", Some("delete_all"));
    assert_eq!(d.rule.unwrap().name, "nobody deletes");
    let s = Subject::new(&p, &eng_person, "c", &granted);
    assert!(rules.may_list(&s, ItemKind::Tool, "search_docs", NOW));
    assert!(!rules.may_list(&s, ItemKind::Tool, "delete_all", NOW));
    assert!(rules.may_list(&s, ItemKind::Prompt, "delete_all", NOW));
}

#[test]
fn tool_scopes_name_only_what_is_missing() {
    let p = PolicySet::new(
        vec![],
        vec![],
        vec![(
            vec!["*".into()],
            ScopeRequirement {
                origin: origin(3),
                tools: globs(&["write_*"]),
                scopes: vec![
                    Scope::parse("db:write").unwrap(),
                    Scope::parse("db:read").unwrap(),
                ],
            },
        )],
        &[UpstreamName::parse("db").unwrap()],
    );
    let rules = p.upstream("db").unwrap();
    let write = Call {
        method: "tools/call",
        name: Some("write_row"),
    };
    let missing: Vec<String> = rules
        .missing_scopes(write, &scopes("mcp db:read"))
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(missing, ["db:write"]);
    assert!(rules
        .missing_scopes(write, &scopes("db:read db:write"))
        .is_empty());
    let read = Call {
        method: "tools/call",
        name: Some("read_row"),
    };
    assert!(rules.missing_scopes(read, &scopes("mcp")).is_empty());
    let list = Call {
        method: "tools/list",
        name: None,
    };
    assert!(rules.missing_scopes(list, &scopes("mcp")).is_empty());
}

#[test]
fn api_keys_are_named_by_rules_and_match_no_person() {
    let p = set(
        vec![rule(
            "the ci bot only",
            Effect::Allow,
            Who {
                api_keys: strings(&["ci-bot"]),
                ..Default::default()
            },
            What::default(),
        )],
        vec![],
    );
    let bot = person("key", "ci-bot", "", &[]);
    let other_bot = person("key", "nightly", "", &[]);
    // A person whose provider merely has the same subject is no key.
    let impostor = person("local", "ci-bot", "ci-bot@example.com", &[]);
    assert!(access(&p, &bot, "key:ci-bot", "mcp"));
    assert!(!access(&p, &other_bot, "key:nightly", "mcp"));
    assert!(!access(&p, &impostor, "c", "mcp"));
}
