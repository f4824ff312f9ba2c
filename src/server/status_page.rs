//! `/status` as a small server-rendered page: no JavaScript, readable on a phone.
//!
//! Plain HTML and one inline stylesheet: a lock-out banner, where the allowed IPs come from and
//! the ranges they become, every guarded profile's state, and the recent runs with their
//! outcome, timing, deploy and who caused them. Every value from the org, the store or the
//! environment is escaped. Tested in headless Chromium by `tests/it/status_page.rs`.

use chrono::{DateTime, FixedOffset};
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

fn parse_time(v: &Value) -> Option<DateTime<FixedOffset>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// A timestamp as `<time>`: readable UTC to the second (captions say "UTC" once, so table
/// columns stay narrow), the exact value for machines.
fn time(v: &Value) -> String {
    match (v.as_str(), parse_time(v)) {
        (Some(raw), Some(t)) => format!(
            "<time datetime=\"{}\">{}</time>",
            esc(raw),
            t.to_utc().format("%Y-%m-%d %H:%M:%S")
        ),
        _ => text(v),
    }
}

/// `finished - started`, as "850 ms", "2.3 s" or "4 min 05 s"; "running" when not finished.
fn duration(started: &Value, finished: &Value) -> String {
    let (Some(s), Some(f)) = (parse_time(started), parse_time(finished)) else {
        return if finished.is_null() && !started.is_null() {
            "running".into()
        } else {
            "—".into()
        };
    };
    let ms = (f - s).num_milliseconds().max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn range_span(r: &Value) -> String {
    let (start, end) = (text(&r["start"]), text(&r["end"]));
    if start == end {
        start
    } else {
        format!("{start} – {end}")
    }
}

/// Whether a range lets almost anyone log in (wider than a /8 or a /32), as `check` warns.
fn is_broad(r: &Value) -> bool {
    match (r["start"].as_str(), r["end"].as_str()) {
        (Some(start), Some(end)) => crate::ranges::LoginIpRange::parse_existing(start, end, None)
            .is_ok_and(|range| !range.within_size_limit()),
        _ => false,
    }
}

fn range_list(ranges: &Value) -> String {
    let items: Vec<String> = ranges
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let span = range_span(r);
                    let broad = if is_broad(r) {
                        " <span class=\"badge bad\">too broad</span>"
                    } else {
                        ""
                    };
                    match r["description"].as_str() {
                        Some(d) => format!(
                            "<li><span class=\"nowrap\">{span}</span>{broad} <small>({})</small></li>",
                            esc(d)
                        ),
                        None => format!("<li><span class=\"nowrap\">{span}</span>{broad}</li>"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "<p>none</p>".into()
    } else {
        format!("<ul class=\"ranges\">{}</ul>", items.join(""))
    }
}

/// Why ranges are added or removed (kept ones need no word), one line each.
fn reasons(why: &Value) -> String {
    let items: Vec<String> = why
        .as_array()
        .into_iter()
        .flatten()
        // A desired range kept needs no explanation; anyone else's range kept does.
        .filter(|w| {
            !(w["action"].as_str() == Some("keep") && w["reason"].as_str() == Some("desired"))
        })
        .map(|w| {
            let reason = w["reason"].as_str().and_then(|r| {
                serde_json::from_value::<crate::reconcile::plan::Reason>(Value::from(r)).ok()
            });
            format!(
                "<li>{} {}: {}</li>",
                esc(w["action"].as_str().unwrap_or("")),
                range_span(w),
                esc(reason.map_or("", |r| r.text()))
            )
        })
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"reasons\">{}</ul>", items.join(""))
    }
}

/// A profile's full name as Setup shows it (`Custom%3A Support` → `Custom: Support`), with the
/// full name ipguard is configured with beside it when they differ. Escaped after decoding.
fn profile_name(v: &Value) -> String {
    let Some(full) = v.as_str() else {
        return text(v);
    };
    let label = percent_encoding::percent_decode_str(full).decode_utf8_lossy();
    if label == full {
        esc(full)
    } else {
        format!(
            "{} <small class=\"mono full-name\">{}</small>",
            esc(&label),
            esc(full)
        )
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
                "<span class=\"nowrap\">{}</span> <small>({}, {})</small>",
                text(&a["changed_by"]),
                a["profile"]
                    .as_str()
                    .map(|p| esc(&percent_encoding::percent_decode_str(p).decode_utf8_lossy()))
                    .unwrap_or_else(|| text(&a["profile"])),
                time(&a["changed_at"])
            )
        })
        .collect();
    if items.is_empty() {
        "—".into()
    } else {
        items.join("<br>")
    }
}

/// The outcome as a badge in words, like the profile states ("in sync", "locked out"); the
/// code `/status` JSON and `history` use (`in_sync`) stays in `data-outcome` for machines, and
/// colour only repeats the words.
fn outcome(v: &Value) -> String {
    let Some(o) = v.as_str() else {
        return "<span class=\"badge warn\">… running</span>".into();
    };
    let (class, mark) = match o {
        "in_sync" => ("ok", "✓"),
        "remediated" => ("ok", "✓"),
        "planned" => ("warn", "•"),
        "failed" | "locked_out" => ("bad", "✗"),
        _ => ("warn", "?"),
    };
    format!(
        "<span class=\"badge {class}\" data-outcome=\"{code}\"><span aria-hidden=\"true\">{mark}</span> {words}</span>",
        code = esc(o),
        words = esc(&o.replace('_', " "))
    )
}

/// A profile's state in words. While ipguard is locked out it cannot read the org, so the last
/// read only says what held then: "unknown since" that read, never "in sync".
fn profile_state(p: &Value) -> String {
    let state = p["state"].as_str().unwrap_or(match p["in_sync"].as_bool() {
        Some(true) => "in_sync",
        _ => "drift",
    });
    match state {
        "in_sync" => {
            "<span class=\"badge ok\"><span aria-hidden=\"true\">✓</span> in sync</span>".into()
        }
        "unknown" => format!(
            "<span class=\"badge warn\"><span aria-hidden=\"true\">?</span> unknown</span> \
             <small class=\"since\">since {} (last read before the lock-out)</small>",
            time(&p["checked_at"])
        ),
        _ => "<span class=\"badge bad\"><span aria-hidden=\"true\">✗</span> drift</span>".into(),
    }
}

/// Errors longer than this fold into a `<details>` (no JavaScript needed to open it).
const ERROR_PREVIEW: usize = 60;

/// The error and each per-profile failure of a run; long ones show their start and open on
/// demand (the newest error is also shown in full as "Last error" at the top).
fn errors(run: &Value) -> String {
    let mut items: Vec<String> = Vec::new();
    if let Some(e) = run["error"].as_str() {
        if e.chars().count() > ERROR_PREVIEW {
            let preview: String = e.chars().take(ERROR_PREVIEW).collect();
            items.push(format!(
                "<details><summary>{}…</summary>{}</details>",
                esc(preview.trim_end()),
                esc(e)
            ));
        } else {
            items.push(esc(e));
        }
    }
    items.extend(run["failures"].as_array().into_iter().flatten().map(text));
    if items.is_empty() {
        "—".into()
    } else {
        items.join("<br>")
    }
}

/// A table in a horizontally scrolling, keyboard-focusable region named by its caption. On a
/// narrow screen the caption says that the table scrolls sideways (`.scroll-hint`), since a
/// cut-off column looks like the whole of it.
fn table(id: &str, caption: &str, class: &str, head: &[&str], rows: &[String]) -> String {
    let head: String = head
        .iter()
        .map(|h| format!("<th scope=\"col\">{h}</th>"))
        .collect();
    let body = if rows.is_empty() {
        format!(
            "<tr><td colspan=\"{}\">none yet</td></tr>",
            head.matches("<th").count()
        )
    } else {
        rows.concat()
    };
    // Only the tables wider than a phone (a class sets their minimum width) say they scroll.
    let hint = if class.is_empty() {
        ""
    } else {
        "<span class=\"scroll-hint\"> — scroll sideways for every column</span>"
    };
    format!(
        "<div class=\"scroll\" role=\"region\" aria-labelledby=\"{id}\" tabindex=\"0\">\
         <table class=\"{class}\"><caption id=\"{id}\">{caption}{hint}</caption>\
         <thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )
}

/// The one stylesheet of every page (the Content-Security-Policy allows exactly its hash).
pub const STYLE: &str = "\
:root{color:#1a1a1a;background:#fff;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;line-height:1.4}\
body{margin:0 auto;padding:1rem;max-width:80rem}\
h1{font-size:1.6rem;margin:.2rem 0 .6rem}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}\
dl.summary{display:flex;flex-wrap:wrap;gap:.4rem 1.6rem;margin:0}dl.summary div{min-width:9rem}\
dl.summary dt{font-size:.85rem;color:#4a4a4a}dl.summary dd{margin:0;font-weight:600}\
.scroll{overflow-x:auto;max-width:100%;\
background:linear-gradient(to right,#fff 50%,#fff0) left/2rem 100% no-repeat local,\
linear-gradient(to left,#fff 50%,#fff0) right/2rem 100% no-repeat local,\
radial-gradient(farthest-side at 0 50%,#0003,#0000) left/.7rem 100% no-repeat scroll,\
radial-gradient(farthest-side at 100% 50%,#0003,#0000) right/.7rem 100% no-repeat scroll}\
.scroll-hint{display:none;font-weight:600}\
@media (max-width:38rem){table.profiles .scroll-hint{display:inline}}\
@media (max-width:58rem){table.wide .scroll-hint{display:inline}}\
header .top{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:.5rem}\
form.inline{display:inline-flex;gap:.5rem;margin:0}\
button{font:inherit;padding:.35rem .8rem;border-radius:.3rem;border:1px solid #1c4fb8;background:#fff;color:#1c4fb8;cursor:pointer}\
button.primary{background:#1c4fb8;color:#fff}button:focus-visible,input:focus-visible{outline:3px solid #1c4fb8;outline-offset:2px}\
.signin{max-width:26rem;margin:3rem auto}.signin label{display:block;font-weight:600;margin:.8rem 0 .3rem}\
.signin input{font:inherit;width:100%;box-sizing:border-box;padding:.45rem;border:1px solid #6b6b6b;border-radius:.3rem}\
.signin button{margin-top:1rem}\
.scroll:focus-visible{outline:3px solid #1c4fb8;outline-offset:2px}\
table{border-collapse:collapse;width:100%}table.wide{min-width:56rem}table.profiles{min-width:36rem}\
caption{text-align:left;font-size:.9rem;color:#4a4a4a;padding:.2rem 0;position:sticky;left:0;max-width:calc(100vw - 2rem)}\
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #c8c8c8;vertical-align:top}\
thead th{background:#f1f3f5;font-size:.9rem;white-space:nowrap}\
td.num,.nowrap,td time{white-space:nowrap}.full-name{display:block}td.err{overflow-wrap:anywhere;min-width:12rem}summary{cursor:pointer}\
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}\
ul{margin:0;padding-left:1.1rem}ul.ranges{list-style:none;padding:0}small{color:#4a4a4a}\
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-weight:600;white-space:nowrap;border:1px solid}\
.ok{color:#0b5d1e;background:#e6f4ea;border-color:#0b5d1e}\
.warn{color:#6b4100;background:#fff3d6;border-color:#6b4100}\
.bad{color:#9b0000;background:#fdecec;border-color:#9b0000}\
.alert{color:#1a1a1a;background:#fdecec;border:2px solid #9b0000;border-left-width:.5rem;padding:.6rem .8rem;margin:.6rem 0}\
.alert p{margin:.2rem 0}\
footer{margin-top:2rem;font-size:.85rem;color:#4a4a4a}";

/// How the page is shown, beside what it shows.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Signed in with the session cookie: the page offers "Check now" and "Sign out" (their
    /// forms ride on the cookie; a bearer-header caller has nothing to sign out of).
    pub signed_in: bool,
    /// The org this page is about, when several are guarded (its key in `IPGUARD_ORGS`).
    pub org: Option<String>,
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>{title}</title><style>{STYLE}</style></head><body>"
    )
}

/// The sign-in form: one password field for the admin token, posted (never in the URL).
pub fn signin(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"alert\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{}<main class=\"signin\"><h1>Sign in to ipguard</h1>{error}\
         <form method=\"post\" action=\"/signin\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus aria-describedby=\"token-help\">\
         <p id=\"token-help\"><small>The value of <code>IPGUARD_ADMIN_TOKEN</code> \
         (<code>heroku config:get IPGUARD_ADMIN_TOKEN</code>). You stay signed in for 12 hours \
         in this browser.</small></p>\
         <button class=\"primary\" type=\"submit\">Sign in</button></form></main></body></html>",
        head("Sign in · ipguard")
    )
}

/// "Check now" and "Sign out" for a signed-in browser; plain forms, no script.
fn session_controls(page: &Page) -> String {
    if !page.signed_in {
        return String::new();
    }
    // Org keys are `[a-z0-9-]`: safe in a URL and in HTML as they are.
    let (action, label) = match &page.org {
        Some(org) => (format!("/reconcile?org={org}"), format!("Check {org} now")),
        None => ("/reconcile".to_owned(), "Check now".to_owned()),
    };
    format!(
        "<div class=\"controls\">\
         <form class=\"inline\" method=\"post\" action=\"{}\">\
         <button class=\"primary\" type=\"submit\">{}</button></form> \
         <form class=\"inline\" method=\"post\" action=\"/signout\">\
         <button type=\"submit\">Sign out</button></form></div>",
        esc(&action),
        esc(&label)
    )
}

/// Every org at a glance (several guarded): its state, when it was last looked at and who
/// leads it, each linking to its own page.
pub fn render_orgs(doc: &Value, page: &Page) -> String {
    let rows: Vec<String> = doc["orgs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|org| {
            let name = text(&org["org"]);
            format!(
                "<tr><td><a href=\"/status?org={name}\">{name}</a></td><td>{}</td>\
                 <td class=\"nowrap\">{}</td><td>{}</td></tr>",
                overall_badge(org),
                time(&org["updated_at"]),
                leader_text(org)
            )
        })
        .collect();
    format!(
        "{}<header><div class=\"top\"><h1>ipguard status</h1>{}</div></header><main>\
         <h2>Orgs</h2>{}</main><footer><p>JSON of this page: <code>GET /status</code> without \
         <code>Accept: text/html</code>; one org: <code>GET /status?org=KEY</code>.</p></footer>\
         </body></html>",
        head("ipguard status"),
        session_controls(page),
        table(
            "orgs-caption",
            "Every guarded org; open one for its profiles and runs",
            "wide",
            &["Org", "Profiles", "Last updated (UTC)", "Leader"],
            &rows,
        )
    )
}

/// How many profiles are in sync, or why that is not known.
fn overall_badge(doc: &Value) -> String {
    let profiles: Vec<&Value> = doc["profiles"].as_array().into_iter().flatten().collect();
    let in_sync = profiles
        .iter()
        .filter(|p| p["in_sync"].as_bool() == Some(true))
        .count();
    if doc["locked_out"].as_bool() == Some(true) {
        "<span class=\"badge bad\"><span aria-hidden=\"true\">✗</span> locked out</span>".to_owned()
    } else if profiles.is_empty() {
        "<span class=\"badge warn\">not checked yet</span>".to_owned()
    } else if in_sync == profiles.len() {
        format!(
            "<span class=\"badge ok\"><span aria-hidden=\"true\">✓</span> {in_sync} of {} in sync</span>",
            profiles.len()
        )
    } else {
        format!(
            "<span class=\"badge bad\"><span aria-hidden=\"true\">✗</span> {} of {} drifted</span>",
            profiles.len() - in_sync,
            profiles.len()
        )
    }
}

/// Every instance shows what the leader stored; this says who that is.
fn leader_text(doc: &Value) -> String {
    match (doc["leader"].as_bool(), doc["lease"]["holder"].as_str()) {
        (Some(true), Some(holder)) => format!("{} — this instance reconciles", esc(holder)),
        (_, Some(holder)) => format!("{} — another instance; this one is a standby", esc(holder)),
        (Some(true), None) => "this instance reconciles".to_owned(),
        (_, None) => "— no instance holds the lease".to_owned(),
    }
}

/// The page for a caller without a session (tests, a browser sending the bearer header).
pub fn render(doc: &Value) -> String {
    render_page(doc, &Page::default())
}

pub fn render_page(doc: &Value, page: &Page) -> String {
    let title = match &page.org {
        Some(org) => format!("ipguard status · {}", esc(org)),
        None => "ipguard status".to_owned(),
    };
    let mut html = format!(
        "{}<header><div class=\"top\"><h1>{title}</h1>{}</div>",
        head(&title),
        session_controls(page)
    );

    // At a glance: how many profiles are in sync, when this was last looked at, who leads.
    let overall = overall_badge(doc);
    let leader = leader_text(doc);
    html.push_str(&format!(
        "<dl class=\"summary\"><div><dt>Profiles</dt><dd>{overall}</dd></div>\
         <div><dt>Last updated (UTC)</dt><dd>{}</dd></div>\
         <div><dt>Leader</dt><dd>{leader}</dd></div></dl></header><main>",
        time(&doc["updated_at"])
    ));

    if doc["locked_out"].as_bool() == Some(true) {
        let since = if doc["locked_out_since"].is_null() {
            String::new()
        } else {
            format!(" since {} UTC", time(&doc["locked_out_since"]))
        };
        html.push_str(&format!(
            "<div class=\"alert\" role=\"alert\"><p><strong>Locked out{since}:</strong> Salesforce \
             refuses ipguard's logins (<code>ip restricted</code>), so the profiles' state below is \
             unknown.</p><p>Add the space's outbound IPs to the integration user's profile Login IP \
             Ranges, then run <code>ipguard check</code> and \"Check now\" \
             (<code>POST /reconcile</code>): it runs at once.</p></div>",
        ));
    }
    if let Some(e) = doc["last_error"].as_str() {
        html.push_str(&format!(
            "<p><strong>Last error:</strong> <span class=\"mono\">{}</span></p>",
            esc(e)
        ));
    }

    // Where the allowed IPs come from, and the ranges they become.
    html.push_str(
        "<h2>Desired ranges</h2><p>Sources (the space's outbound IPs and configured CIDRs): ",
    );
    let sources: Vec<String> = doc["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("<code>{}</code>", text(s)))
        .collect();
    html.push_str(&if sources.is_empty() {
        "none yet".to_owned()
    } else {
        sources.join(", ")
    });
    html.push_str("</p>");
    let desired: Vec<String> = doc["desired"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "<tr><td class=\"nowrap mono\">{}</td><td class=\"nowrap mono\">{}</td><td>{}</td></tr>",
                text(&r["start"]),
                text(&r["end"]),
                text(&r["description"])
            )
        })
        .collect();
    html.push_str(&table(
        "desired-caption",
        "Login IP ranges every guarded profile must allow",
        "",
        &["Start", "End", "Source"],
        &desired,
    ));

    let rows: Vec<String> = doc["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let state = profile_state(p);
            let policy = match (p["policy"].as_str(), p["policy_from"].as_str()) {
                (Some(policy), Some(from)) => format!(
                    "<br><small>policy {} ({})</small>",
                    esc(policy),
                    esc(from)
                ),
                _ => String::new(),
            };
            let granted: String = p["granted"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| format!("<br><small>guarded: {}</small>", text(g)))
                .collect();
            format!(
                "<tr><th scope=\"row\">{}{granted}</th><td>{state}{policy}</td><td class=\"mono\">{}{}</td><td>{}</td></tr>",
                profile_name(&p["name"]),
                range_list(&p["ranges"]),
                reasons(&p["why"]),
                time(&p["checked_at"])
            )
        })
        .collect();
    html.push_str("<h2>Profiles</h2>");
    html.push_str(&table(
        "profiles-caption",
        "Guarded profiles, as last read from the org (times in UTC)",
        "profiles",
        &["Profile", "State", "Ranges seen", "Checked"],
        &rows,
    ));

    let doors: Vec<String> = doc["doors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let state = if d["in_sync"].as_bool() == Some(true) {
                "<span class=\"ok\">as ipguard holds it</span>".to_owned()
            } else {
                format!(
                    "<span class=\"bad\">drift: wants {}</span>",
                    text(&d["wanted"])
                )
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"mono\">{}</td><td>{state}</td></tr>",
                text(&d["door"]),
                text(&d["subject"]),
                text(&d["actual"]),
            )
        })
        .collect();
    if !doors.is_empty() {
        html.push_str("<h2>Side doors</h2>");
        html.push_str(&table(
            "doors-caption",
            "Settings that make the ranges matter (IPGUARD_SIDE_DOORS), as last read",
            "",
            &["Door", "Where", "Read", "State"],
            &doors,
        ));
    }

    let rows: Vec<String> = doc["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td>{}</td><td class=\"mono nowrap\">{}</td><td>{}</td><td class=\"err\">{}</td></tr>",
                text(&r["id"]),
                outcome(&r["outcome"]),
                time(&r["started_at"]),
                duration(&r["started_at"], &r["finished_at"]),
                text(&r["trigger"]),
                text(&r["deploy_id"]),
                changed_by(&r["plan"]["attribution"]),
                errors(r)
            )
        })
        .collect();
    html.push_str("<h2>Recent runs</h2>");
    html.push_str(&table(
        "runs-caption",
        "Recent runs, newest first (times in UTC)",
        "wide",
        &[
            "Run",
            "Outcome",
            "Started",
            "Duration",
            "Trigger",
            "Deploy",
            "Changed by",
            "Error",
        ],
        &rows,
    ));
    let (path, every) = match &page.org {
        Some(org) => (
            format!("/status?org={}", esc(org)),
            " <a href=\"/status\">Every org</a>.",
        ),
        None => ("/status".to_owned(), ""),
    };
    html.push_str(&format!(
        "</main><footer><p>JSON of this page: <code>GET {path}</code> without \
         <code>Accept: text/html</code>.{every}</p></footer></body></html>"
    ));
    html
}

#[cfg(test)]
mod tests {
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
        assert!(
            html.contains("<time datetime=\"2026-11-01T10:00:00Z\">2026-11-01 10:00:00</time>")
        );
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
            html.contains(
                "Custom: Support <small class=\"mono full-name\">Custom%3A Support</small>"
            ),
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
}
