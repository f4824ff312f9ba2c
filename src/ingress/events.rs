//! The body of a Platform Event callout (`POST /salesforce/events`, docs/contract.md §3), parsed into
//! dedupe keys.
//!
//! Accepted: one event in the CometD envelope shape, or a JSON array of 1 to [`MAX_EVENTS`] of
//! them:
//!
//! ```json
//! {"channel": "/event/Low_Ink__e",
//!  "data": {"schema": "…", "payload": {…}, "event": {"replayId": 2, "EventUuid": "…"}}}
//! ```
//!
//! Required: `channel` (a non-empty string), `data` and `data.event` (objects) and
//! `data.event.replayId` (a JSON integer). `data.event.EventUuid` is optional (`null` counts as
//! absent) and otherwise a non-empty string. `schema`, `payload` and any other member are not
//! looked at: events are hints that a reconcile may be due, any channel is accepted, and nothing
//! in the body decides which IPs are asserted.
//!
//! Dedupe key: `uuid:<EventUuid>` when present, else `replay:<channel>:<replayId>` (the replay
//! id is an integer, so the last `:` separates it from a channel that contains one).
//!
//! Nesting deeper than `serde_json`'s recursion limit (128) is a parse error, never a stack
//! overflow. Errors name the event's array index (for an array body) and the field, and never
//! echo body content.

use std::fmt;

use serde_json::{Map, Value};

/// Most events accepted in one callout (an Apex trigger batch holds at most 2,000).
pub const MAX_EVENTS: usize = 2000;
/// Longest accepted `channel`, in bytes; keeps dedupe keys a sane size for the store.
pub const MAX_CHANNEL_BYTES: usize = 255;
/// Longest accepted `EventUuid`, in bytes (a UUID is 36).
pub const MAX_EVENT_UUID_BYTES: usize = 128;

/// One event, reduced to what the receiver needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventHint {
    pub channel: String,
    /// `uuid:<EventUuid>` when present, else `replay:<channel>:<replayId>`.
    pub dedupe_key: String,
}

/// Why a body was refused (→ HTTP 400 after a good token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventsError {
    /// Not JSON, or nested deeper than the parser's recursion limit.
    #[error("body is not valid JSON ({0})")]
    NotJson(String),
    #[error("body must be an event object or a JSON array of event objects")]
    NotEvents,
    #[error("body is an empty array; send at least one event")]
    Empty,
    #[error("body has {0} events; at most {MAX_EVENTS} are accepted per request")]
    TooMany(usize),
    #[error("{}: {problem}", Location { index: *index, field })]
    Field {
        /// Position in the array body; `None` for a single-object body.
        index: Option<usize>,
        /// Dotted path inside the event, e.g. `data.event.replayId`; empty for the event itself.
        field: &'static str,
        problem: &'static str,
    },
}

struct Location<'a> {
    index: Option<usize>,
    field: &'a str,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "event [{index}]")?,
            None => f.write_str("event")?,
        }
        if !self.field.is_empty() {
            write!(f, " field `{}`", self.field)?;
        }
        Ok(())
    }
}

/// Parses a callout body into one hint per event, in body order. Duplicates are kept (they
/// produce equal `dedupe_key`s); the store decides what is new.
pub fn parse_events(body: &[u8]) -> Result<Vec<EventHint>, EventsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // Category and position only: serde_json's messages can quote the input.
        let kind = match e.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error or nesting too deep",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        EventsError::NotJson(format!(
            "{kind} at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    match value {
        Value::Object(event) => Ok(vec![parse_event(&event, None)?]),
        Value::Array(events) => {
            if events.is_empty() {
                return Err(EventsError::Empty);
            }
            if events.len() > MAX_EVENTS {
                return Err(EventsError::TooMany(events.len()));
            }
            events
                .iter()
                .enumerate()
                .map(|(index, event)| match event {
                    Value::Object(event) => parse_event(event, Some(index)),
                    _ => Err(EventsError::Field {
                        index: Some(index),
                        field: "",
                        problem: "must be a JSON object",
                    }),
                })
                .collect()
        }
        _ => Err(EventsError::NotEvents),
    }
}

fn parse_event(event: &Map<String, Value>, index: Option<usize>) -> Result<EventHint, EventsError> {
    let error = |field: &'static str, problem: &'static str| EventsError::Field {
        index,
        field,
        problem,
    };

    let channel = match event.get("channel") {
        Some(Value::String(channel)) if channel.is_empty() => {
            return Err(error("channel", "must not be empty"));
        }
        Some(Value::String(channel)) if channel.len() > MAX_CHANNEL_BYTES => {
            return Err(error("channel", "is longer than 255 bytes"));
        }
        Some(Value::String(channel)) => channel,
        Some(_) => return Err(error("channel", "must be a string")),
        None => return Err(error("channel", "is missing")),
    };
    let data = match event.get("data") {
        Some(Value::Object(data)) => data,
        Some(_) => return Err(error("data", "must be an object")),
        None => return Err(error("data", "is missing")),
    };
    let meta = match data.get("event") {
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(error("data.event", "must be an object")),
        None => return Err(error("data.event", "is missing")),
    };
    let replay_id = match meta.get("replayId") {
        Some(Value::Number(id)) if id.is_i64() || id.is_u64() => id.to_string(),
        Some(_) => return Err(error("data.event.replayId", "must be an integer")),
        None => return Err(error("data.event.replayId", "is missing")),
    };
    let uuid = match meta.get("EventUuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(uuid)) if uuid.is_empty() => {
            return Err(error("data.event.EventUuid", "must not be empty"));
        }
        Some(Value::String(uuid)) if uuid.len() > MAX_EVENT_UUID_BYTES => {
            return Err(error("data.event.EventUuid", "is longer than 128 bytes"));
        }
        Some(Value::String(uuid)) => Some(uuid),
        Some(_) => return Err(error("data.event.EventUuid", "must be a string")),
    };

    let dedupe_key = match uuid {
        Some(uuid) => format!("uuid:{uuid}"),
        None => format!("replay:{channel}:{replay_id}"),
    };
    Ok(EventHint {
        channel: channel.clone(),
        dedupe_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/salesforce/platform-events/cometd-event.json"
        );
        std::fs::read(path).expect("fixture is readable")
    }

    fn event(channel: &str, replay_id: i64, uuid: Option<&str>) -> Value {
        let mut meta = json!({"replayId": replay_id});
        if let Some(uuid) = uuid {
            meta["EventUuid"] = json!(uuid);
        }
        json!({"channel": channel, "data": {"schema": "s", "payload": {}, "event": meta}})
    }

    fn parse(value: &Value) -> Result<Vec<EventHint>, EventsError> {
        parse_events(&serde_json::to_vec(value).expect("serialises"))
    }

    #[test]
    fn real_cometd_fixture_parses_to_its_uuid() {
        let hints = parse_events(&fixture()).expect("fixture parses");
        assert_eq!(
            hints,
            vec![EventHint {
                channel: "/event/Low_Ink__e".to_owned(),
                dedupe_key: "uuid:2ec0e371-1395-457f-9275-be1b527a72f7".to_owned(),
            }]
        );
    }

    #[test]
    fn fixture_without_uuid_falls_back_to_channel_and_replay_id() {
        let mut value: Value = serde_json::from_slice(&fixture()).expect("fixture is JSON");
        value["data"]["event"]
            .as_object_mut()
            .expect("event object")
            .remove("EventUuid");
        let hints = parse(&value).expect("parses");
        assert_eq!(hints[0].dedupe_key, "replay:/event/Low_Ink__e:2");
        value["data"]["event"]["EventUuid"] = Value::Null;
        assert_eq!(
            parse(&value).expect("null uuid counts as absent")[0].dedupe_key,
            "replay:/event/Low_Ink__e:2"
        );
    }

    #[test]
    fn array_keeps_order_and_accepts_any_channel() {
        let body = json!([
            event("/event/Low_Ink__e", 7, None),
            event("/data/ProfileChangeEvent", 8, Some("u-1")),
            event("/event/Name:With:Colons__e", 9, None),
        ]);
        let keys: Vec<String> = parse(&body)
            .expect("parses")
            .into_iter()
            .map(|hint| hint.dedupe_key)
            .collect();
        assert_eq!(
            keys,
            [
                "replay:/event/Low_Ink__e:7",
                "uuid:u-1",
                "replay:/event/Name:With:Colons__e:9"
            ]
        );
    }

    #[test]
    fn duplicates_produce_equal_keys() {
        let body = json!([
            event("/event/A__e", 1, Some("same")),
            event("/event/B__e", 2, Some("same")),
            event("/event/A__e", 3, None),
            event("/event/A__e", 3, None),
        ]);
        let hints = parse(&body).expect("parses");
        assert_eq!(hints.len(), 4, "duplicates are kept for the store to count");
        assert_eq!(hints[0].dedupe_key, hints[1].dedupe_key);
        assert_eq!(hints[2].dedupe_key, hints[3].dedupe_key);
        assert_ne!(hints[0].dedupe_key, hints[2].dedupe_key);
    }

    #[test]
    fn missing_replay_id_names_index_and_field() {
        let mut second = event("/event/A__e", 1, None);
        second["data"]["event"]
            .as_object_mut()
            .expect("event object")
            .remove("replayId");
        let err = parse(&json!([event("/event/A__e", 1, None), second])).unwrap_err();
        assert_eq!(
            err,
            EventsError::Field {
                index: Some(1),
                field: "data.event.replayId",
                problem: "is missing"
            }
        );
        assert_eq!(
            err.to_string(),
            "event [1] field `data.event.replayId`: is missing"
        );
    }

    #[test]
    fn single_object_errors_have_no_index() {
        let mut value = event("/event/A__e", 1, None);
        value["data"]["event"]["replayId"] = json!("1");
        let err = parse(&value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event field `data.event.replayId`: must be an integer"
        );
    }

    #[test]
    fn wrongly_typed_fields_are_refused() {
        let cases: [(&str, Value, &str); 9] = [
            (
                "channel",
                json!({"data": {"event": {"replayId": 1}}}),
                "is missing",
            ),
            (
                "channel",
                json!({"channel": "", "data": {"event": {"replayId": 1}}}),
                "must not be empty",
            ),
            (
                "channel",
                json!({"channel": 5, "data": {"event": {"replayId": 1}}}),
                "must be a string",
            ),
            (
                "channel",
                json!({"channel": "x".repeat(256), "data": {"event": {"replayId": 1}}}),
                "is longer than 255 bytes",
            ),
            ("data", json!({"channel": "c"}), "is missing"),
            (
                "data.event",
                json!({"channel": "c", "data": {"event": []}}),
                "must be an object",
            ),
            (
                "data.event.replayId",
                json!({"channel": "c", "data": {"event": {"replayId": 1.5}}}),
                "must be an integer",
            ),
            (
                "data.event.EventUuid",
                json!({"channel": "c", "data": {"event": {"replayId": 1, "EventUuid": 7}}}),
                "must be a string",
            ),
            (
                "data.event.EventUuid",
                json!({"channel": "c", "data": {"event": {"replayId": 1, "EventUuid": ""}}}),
                "must not be empty",
            ),
        ];
        for (field, body, problem) in cases {
            assert_eq!(
                parse(&json!([body])),
                Err(EventsError::Field {
                    index: Some(0),
                    field,
                    problem
                }),
                "{field}: {problem}"
            );
        }
        assert_eq!(
            parse(&json!([event("c", 1, None), 3])),
            Err(EventsError::Field {
                index: Some(1),
                field: "",
                problem: "must be a JSON object"
            })
        );
    }

    #[test]
    fn unknown_fields_and_large_replay_ids_are_accepted() {
        let body = json!({
            "channel": "/event/A__e",
            "clientId": "abc",
            "data": {"event": {"replayId": u64::MAX, "createdDate": "2024-01-01"}, "extra": 1}
        });
        let hints = parse(&body).expect("parses");
        assert_eq!(
            hints[0].dedupe_key,
            format!("replay:/event/A__e:{}", u64::MAX)
        );
    }

    #[test]
    fn array_size_limits() {
        assert_eq!(parse(&json!([])), Err(EventsError::Empty));
        let full: Vec<Value> = (0..MAX_EVENTS as i64)
            .map(|id| event("/event/A__e", id, None))
            .collect();
        assert_eq!(
            parse(&Value::Array(full.clone()))
                .expect("2000 is fine")
                .len(),
            MAX_EVENTS
        );
        let mut over = full;
        over.push(event("/event/A__e", 1, None));
        assert_eq!(
            parse(&Value::Array(over)),
            Err(EventsError::TooMany(MAX_EVENTS + 1))
        );
    }

    #[test]
    fn non_json_and_non_event_bodies_are_refused() {
        for body in [
            &b"not json"[..],
            b"",
            b"{\"channel\": ",
            b"\xff\xfe",
            b"{} trailing",
        ] {
            assert!(
                matches!(parse_events(body), Err(EventsError::NotJson(_))),
                "{body:?}"
            );
        }
        for body in [&b"\"text\""[..], b"42", b"null", b"true"] {
            assert_eq!(parse_events(body), Err(EventsError::NotEvents), "{body:?}");
        }
    }

    #[test]
    fn not_json_errors_do_not_echo_the_body() {
        let err = parse_events(b"{\"channel\": secret-value}").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(
            parse_events(arrays.as_bytes()),
            Err(EventsError::NotJson(_))
        ));
        // Deep inside an otherwise valid event, too.
        let payload = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let body = format!(
            "{{\"channel\":\"c\",\"data\":{{\"payload\":{payload},\"event\":{{\"replayId\":1}}}}}}"
        );
        assert!(matches!(
            parse_events(body.as_bytes()),
            Err(EventsError::NotJson(_))
        ));
    }
}
