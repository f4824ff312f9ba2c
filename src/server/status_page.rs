//! `/status` as a small server-rendered page: no JavaScript, readable on a phone.

use serde_json::Value;

fn esc(text: &str) -> String {
    crate::xml::escape(text).into_owned()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

fn range_list(ranges: &Value) -> String {
    let items: Vec<String> = ranges
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let (start, end) = (text(&r["start"]), text(&r["end"]));
                    let span = if start == end {
                        start
                    } else {
                        format!("{start} – {end}")
                    };
                    match r["description"].as_str() {
                        Some(d) => format!("<li>{span} <small>({})</small></li>", esc(d)),
                        None => format!("<li>{span}</li>"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "<p>none</p>".into()
    } else {
        format!("<ul>{}</ul>", items.join(""))
    }
}

/// "who (profile, when)" for each attributed change, or a dash.
fn changed_by(attribution: &Value) -> String {
    let items: Vec<String> = attribution["attributions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} <small>({}, {})</small>",
                text(&a["changed_by"]),
                text(&a["profile"]),
                text(&a["changed_at"])
            )
        })
        .collect();
    if items.is_empty() {
        "—".into()
    } else {
        items.join("<br>")
    }
}

pub fn render(doc: &Value) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>ipguard status</title><style>body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem;border-bottom:1px solid #ccc;vertical-align:top}\
.alert{background:#fee;border:2px solid #b00;padding:.6rem}.ok{color:#060}.bad{color:#b00}</style></head><body><main>\
<h1>ipguard status</h1>",
    );
    if doc["locked_out"].as_bool() == Some(true) {
        html.push_str(
            "<p class=\"alert\" role=\"alert\"><strong>Locked out:</strong> Salesforce refuses ipguard's \
             logins (<code>ip restricted</code>). Add the space's outbound IPs to the integration \
             user's profile Login IP Ranges, then run <code>ipguard check</code>.</p>",
        );
    }
    html.push_str("<h2>Desired ranges</h2>");
    html.push_str(&range_list(&doc["desired"]));
    html.push_str("<h2>Profiles</h2><table><thead><tr><th scope=\"col\">Profile</th><th scope=\"col\">State</th><th scope=\"col\">Ranges seen</th><th scope=\"col\">Checked</th></tr></thead><tbody>");
    for p in doc["profiles"].as_array().into_iter().flatten() {
        let state = if p["in_sync"].as_bool() == Some(true) {
            "<span class=\"ok\">in sync</span>"
        } else {
            "<span class=\"bad\">drift</span>"
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}</td></tr>",
            text(&p["name"]),
            range_list(&p["ranges"]),
            text(&p["checked_at"])
        ));
    }
    html.push_str("</tbody></table><h2>Recent runs</h2><table><thead><tr><th scope=\"col\">Run</th><th scope=\"col\">Trigger</th><th scope=\"col\">Started</th><th scope=\"col\">Outcome</th><th scope=\"col\">Deploy</th><th scope=\"col\">Changed by</th><th scope=\"col\">Error</th></tr></thead><tbody>");
    for r in doc["runs"].as_array().into_iter().flatten() {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&r["id"]),
            text(&r["trigger"]),
            text(&r["started_at"]),
            text(&r["outcome"]),
            text(&r["deploy_id"]),
            changed_by(&r["plan"]["attribution"]),
            text(&r["error"])
        ));
    }
    html.push_str("</tbody></table></main></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
