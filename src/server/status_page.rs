//! `/status` as a small server-rendered page: no JavaScript, readable on a phone.
//!
//! Plain HTML and one inline stylesheet: a lock-out banner, where the allowed IPs come from and
//! the ranges they become, every guarded profile's state, and the recent runs with their
//! outcome, timing, deploy and who caused them. Every value from the org, the store or the
//! environment is escaped. Tested in headless Chromium by `tests/it/status_page.rs`.

use serde_json::Value;

mod cells;

use cells::*;

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
mod tests;
