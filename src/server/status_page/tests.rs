//! The status page rendered from `/status` documents, escaped and labelled.

use super::cells::*;
use super::*;

#[test]
fn side_doors_and_grants_show_beside_the_profiles_escaped() {
    let doc = serde_json::json!({
        "profiles": [{"name": "Custom%3A Ops", "in_sync": true, "ranges": [], "checked_at": null,
                      "granted": ["app IPGuard, through permission set group <Ops>"]}],
        "doors": [{"door": "app-relaxation", "subject": "External Client App <X>",
                   "actual": "Bypass", "wanted": "Enforce", "in_sync": false}],
        "runs": []
    });
    let html = render(&doc);
    assert!(html.contains("<h2>Side doors</h2>"), "{html}");
    assert!(html.contains("External Client App &lt;X&gt;"));
    assert!(html.contains("drift: wants Enforce"));
    assert!(html.contains("guarded: app IPGuard, through permission set group &lt;Ops&gt;"));
    let without = render(&serde_json::json!({"profiles": [], "runs": []}));
    assert!(!without.contains("Side doors"));
}

#[test]
fn escapes_everything_from_the_org() {
    let doc = serde_json::json!({
        "locked_out": true,
        "desired": [{"start": "1.1.1.1", "end": "1.1.1.1", "description": "<script>x</script>"}],
        "profiles": [{"name": "A&B", "in_sync": false, "ranges": [], "checked_at": null}],
        "runs": [{"id": 1, "trigger": "admin", "started_at": "t", "outcome": "remediated", "deploy_id": null, "error": null}],
    });
    let html = render(&doc);
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("A&amp;B"));
    assert!(html.contains("Locked out"));
    assert!(html.contains("remediated"));
}

#[test]
fn escapes_sources_runs_attribution_and_errors() {
    let evil = "<img src=x onerror=alert(1)>\"'&";
    let doc = serde_json::json!({
        "locked_out": false,
        "leader": true,
        "updated_at": evil,
        "last_error": evil,
        "sources": [evil],
        "desired": [{"start": evil, "end": evil, "description": evil}],
        "profiles": [{"name": evil, "in_sync": true,
            "ranges": [{"start": evil, "end": "2.2.2.2", "description": evil}],
            "checked_at": evil}],
        "runs": [{"id": evil, "trigger": evil, "started_at": evil, "finished_at": evil,
            "outcome": evil, "deploy_id": evil, "error": evil, "failures": [evil],
            "plan": {"attribution": {"attributions": [
                {"changed_by": evil, "profile": evil, "changed_at": evil}]}}}],
    });
    let html = render(&doc);
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("\"'&<"), "{html}");
    // every value appears, escaped: 18 places take one
    assert!(
        html.matches("&lt;img src=x onerror=alert(1)&gt;").count() >= 18,
        "{html}"
    );
    assert!(!html.contains("role=\"alert\""));
}

#[test]
fn shows_timings_outcome_labels_and_attribution() {
    let doc = serde_json::json!({
        "locked_out": false,
        "leader": true,
        "sources": ["203.0.113.10/31"],
        "desired": [{"start": "203.0.113.10", "end": "203.0.113.11", "description": "ipguard: space"}],
        "profiles": [
            {"name": "Admin", "in_sync": true, "ranges": [], "checked_at": "2026-11-01T10:00:00Z"},
            {"name": "Support", "in_sync": false, "ranges": [], "checked_at": "2026-11-01T10:00:00Z"}],
        "runs": [
            {"id": 2, "trigger": "outbound_message", "started_at": "2026-11-01T10:00:00.000Z",
             "finished_at": "2026-11-01T10:00:02.340Z", "outcome": "remediated",
             "deploy_id": "0Af000000000001", "error": null, "failures": [],
             "plan": {"attribution": {"attributions": [
                {"changed_by": "admin@acme.example", "profile": "Admin",
                 "changed_at": "2026-11-01T09:59:58Z"}]}}},
            {"id": 1, "trigger": "startup", "started_at": "2026-11-01T09:00:00Z",
             "finished_at": "2026-11-01T09:00:00.250Z", "outcome": "failed",
             "deploy_id": null, "error": "deploy timed out", "failures": ["Admin: nope"]},
            {"id": 3, "trigger": "resync", "started_at": "2026-11-01T10:05:00Z",
             "finished_at": null, "outcome": null}],
    });
    let html = render(&doc);
    assert!(html.contains("2.3 s"), "{html}");
    assert!(html.contains("250 ms"), "{html}");
    assert!(html.contains("running"), "{html}");
    assert!(html.contains("✗</span> failed"), "{html}");
    assert!(html.contains("admin@acme.example"), "{html}");
    assert!(html.contains("0Af000000000001"));
    assert!(html.contains("Admin: nope"));
    assert!(html.contains("1 of 2 drifted"), "{html}");
    assert!(html.contains("<time datetime=\"2026-11-01T10:00:00Z\">2026-11-01 10:00:00</time>"));
    assert!(html.contains("<code>203.0.113.10/31</code>"));
    assert!(!html.contains("role=\"alert\""));
    assert!(!html.contains("<script"));
}

#[test]
fn profile_names_are_decoded_for_people_then_escaped() {
    let doc = serde_json::json!({
        "profiles": [
            {"name": "Custom%3A Support", "in_sync": true, "ranges": [], "checked_at": null},
            {"name": "x%3Cscript%3Ealert(1)%3C%2Fscript%3E", "in_sync": true, "ranges": [], "checked_at": null}],
        "runs": [{"id": 1, "outcome": "remediated", "plan": {"attribution": {"attributions": [
            {"changed_by": "a", "profile": "%3Cb%3E", "changed_at": null}]}}}],
    });
    let html = render(&doc);
    assert!(
        html.contains("Custom: Support <small class=\"mono full-name\">Custom%3A Support</small>"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(
        html.contains("x&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
}

#[test]
fn broad_ranges_are_flagged_in_words() {
    let doc = serde_json::json!({
        "profiles": [{"name": "Admin", "in_sync": true, "checked_at": null, "ranges": [
            {"start": "0.0.0.0", "end": "255.255.255.255", "description": null},
            {"start": "203.0.113.10", "end": "203.0.113.11", "description": "space"}]}],
    });
    let html = render(&doc);
    assert_eq!(html.matches("too broad").count(), 1, "{html}");
}

#[test]
fn long_errors_fold_into_details_escaped() {
    let long = format!("<b>{}</b>", "x".repeat(100));
    let doc = serde_json::json!({"runs": [{"id": 1, "outcome": "failed", "error": long}]});
    let html = render(&doc);
    assert!(html.contains("<details><summary>&lt;b&gt;xxx"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
}

#[test]
fn long_durations_read_in_minutes() {
    let d = duration(
        &serde_json::json!("2026-11-01T10:00:00Z"),
        &serde_json::json!("2026-11-01T10:04:05Z"),
    );
    assert_eq!(d, "4 min 05 s");
}
