//! The cells of the status page: one value of the `/status` JSON (a time, a range list, an
//! outcome, why a range is kept) as an escaped HTML fragment, and the scrolling table they sit
//! in. Every value from the org, the store or the environment passes through `esc` here.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

pub(super) fn esc(text: &str) -> String {
    crate::xml::escape(text).into_owned()
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

pub(super) fn parse_time(v: &Value) -> Option<DateTime<FixedOffset>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
}

/// A timestamp as `<time>`: readable UTC to the second (captions say "UTC" once, so table
/// columns stay narrow), the exact value for machines.
pub(super) fn time(v: &Value) -> String {
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
pub(super) fn duration(started: &Value, finished: &Value) -> String {
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

pub(super) fn range_span(r: &Value) -> String {
    let (start, end) = (text(&r["start"]), text(&r["end"]));
    if start == end {
        start
    } else {
        format!("{start} – {end}")
    }
}

/// Whether a range lets almost anyone log in (wider than a /8 or a /32), as `check` warns.
pub(super) fn is_broad(r: &Value) -> bool {
    match (r["start"].as_str(), r["end"].as_str()) {
        (Some(start), Some(end)) => crate::ranges::LoginIpRange::parse_existing(start, end, None)
            .is_ok_and(|range| !range.within_size_limit()),
        _ => false,
    }
}

pub(super) fn range_list(ranges: &Value) -> String {
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
pub(super) fn reasons(why: &Value) -> String {
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
pub(super) fn profile_name(v: &Value) -> String {
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
pub(super) fn changed_by(attribution: &Value) -> String {
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
pub(super) fn outcome(v: &Value) -> String {
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
pub(super) fn profile_state(p: &Value) -> String {
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
pub(super) const ERROR_PREVIEW: usize = 60;

/// The error and each per-profile failure of a run; long ones show their start and open on
/// demand (the newest error is also shown in full as "Last error" at the top).
pub(super) fn errors(run: &Value) -> String {
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
pub(super) fn table(
    id: &str,
    caption: &str,
    class: &str,
    head: &[&str],
    rows: &[String],
) -> String {
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
