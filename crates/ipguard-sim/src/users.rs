//! SOQL over `User` and `LoginHistory`: what the self-lock-out interlock reads (the integration
//! user's profile and its latest successful login).
//!
//! Supported subset:
//!
//! ```text
//! SELECT field[, field…] FROM User|LoginHistory
//!   [WHERE field op value [AND field op value…]]
//!   [ORDER BY field [ASC|DESC]] [LIMIT n]
//! ```
//!
//! `User` fields: `Id`, `Username`, `ProfileId`, `Profile.Name`; `LoginHistory` fields: `Id`,
//! `UserId`, `SourceIp`, `LoginTime`, `Status`. Strings are quoted (`'…'`, `\'` escapes);
//! `LoginTime` compares with an unquoted dateTime. The org has two users: the integration
//! user and the Setup admin. LoginHistory holds one row per token request of the integration
//! user (the admin's Setup logins are not modelled). Reading LoginHistory without the
//! permission ([`super::SimOrg::set_login_history_readable`]) → 403 `INSUFFICIENT_ACCESS`.

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::state::SimState;
use ipguard_wire::profile::{ProfileName, standard_label};

/// A REST error: status, `errorCode`, message.
pub(crate) type QueryError = (StatusCode, &'static str, String);

fn malformed(message: impl Into<String>) -> QueryError {
    (StatusCode::BAD_REQUEST, "MALFORMED_QUERY", message.into())
}

/// The object a query reads, when it is one this module answers.
pub(crate) fn object_of(soql: &str) -> Option<&'static str> {
    let tokens = tokenize(soql).ok()?;
    let from = tokens.iter().position(|t| t.eq_ignore_ascii_case("FROM"))?;
    let object = tokens.get(from + 1)?;
    ["User", "LoginHistory"]
        .into_iter()
        .find(|o| o.eq_ignore_ascii_case(object))
}

/// Splits on whitespace and commas, keeping a quoted string (with its quotes) as one token.
fn tokenize(soql: &str) -> Result<Vec<String>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = soql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ',' {
            chars.next();
            tokens.push(",".to_owned());
        } else if c == '\'' {
            let mut token = String::from("'");
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => token.push(chars.next().unwrap_or('\\')),
                    Some('\'') => break,
                    Some(other) => token.push(other),
                    None => return Err(malformed("unterminated string literal")),
                }
            }
            tokens.push(token);
        } else {
            let mut token = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == ',' {
                    break;
                }
                token.push(c);
                chars.next();
            }
            tokens.push(token);
        }
    }
    Ok(tokens)
}

#[derive(Debug)]
enum Literal {
    Text(String),
    Time(DateTime<Utc>),
}

#[derive(Debug)]
struct Query {
    fields: Vec<String>,
    object: &'static str,
    conditions: Vec<(String, String, Literal)>,
    order: Option<(String, bool)>,
    limit: Option<usize>,
}

fn parse(soql: &str, object: &'static str, known: &[&str]) -> Result<Query, QueryError> {
    let tokens = tokenize(soql)?;
    let mut it = tokens.iter().peekable();
    let is = |t: Option<&&String>, word: &str| t.is_some_and(|t| t.eq_ignore_ascii_case(word));
    if !is(it.next().as_ref(), "SELECT") {
        return Err(malformed("unexpected token: expected SELECT"));
    }
    let field_of = |token: &str| {
        known
            .iter()
            .find(|f| f.eq_ignore_ascii_case(token))
            .map(|f| (*f).to_owned())
            .ok_or((
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                format!("No such column '{token}' on entity '{object}'."),
            ))
    };
    let mut fields = Vec::new();
    loop {
        let token = it.next().ok_or_else(|| malformed("expected FROM"))?;
        fields.push(field_of(token)?);
        if is(it.peek(), ",") {
            it.next();
            continue;
        }
        if is(it.next().as_ref(), "FROM") {
            break;
        }
        return Err(malformed("expected FROM"));
    }
    it.next(); // the object, already known
    let mut query = Query {
        fields,
        object,
        conditions: Vec::new(),
        order: None,
        limit: None,
    };
    if is(it.peek(), "WHERE") {
        it.next();
        loop {
            let field = field_of(it.next().ok_or_else(|| malformed("expected a field"))?)?;
            let op = it.next().ok_or_else(|| malformed("expected an operator"))?;
            if !["=", "!=", "<", "<=", ">", ">="].contains(&op.as_str()) {
                return Err(malformed(format!("unexpected token: '{op}'")));
            }
            let value = it.next().ok_or_else(|| malformed("expected a value"))?;
            let literal = match value.strip_prefix('\'') {
                Some(text) => Literal::Text(text.to_owned()),
                None => Literal::Time(
                    DateTime::parse_from_rfc3339(value)
                        .map_err(|_| malformed(format!("unexpected token: '{value}'")))?
                        .with_timezone(&Utc),
                ),
            };
            query.conditions.push((field, op.clone(), literal));
            if !is(it.peek(), "AND") {
                break;
            }
            it.next();
        }
    }
    if is(it.peek(), "ORDER") {
        it.next();
        if !is(it.next().as_ref(), "BY") {
            return Err(malformed("expected BY"));
        }
        let field = field_of(it.next().ok_or_else(|| malformed("expected a field"))?)?;
        let descending = if is(it.peek(), "DESC") {
            it.next();
            true
        } else {
            if is(it.peek(), "ASC") {
                it.next();
            }
            false
        };
        query.order = Some((field, descending));
    }
    if is(it.peek(), "LIMIT") {
        it.next();
        let n = it.next().ok_or_else(|| malformed("expected a number"))?;
        query.limit = Some(
            n.parse()
                .map_err(|_| malformed(format!("unexpected token: '{n}'")))?,
        );
    }
    match it.next() {
        None => Ok(query),
        Some(extra) => Err(malformed(format!("unexpected token: '{extra}'"))),
    }
}

/// A row as field → value, for filtering, ordering and the answer.
type Row = Vec<(&'static str, Value)>;

fn get<'a>(row: &'a Row, field: &str) -> Option<&'a Value> {
    row.iter().find(|(f, _)| *f == field).map(|(_, v)| v)
}

fn holds(row: &Row, field: &str, op: &str, literal: &Literal) -> bool {
    let value = get(row, field);
    let ordering = match literal {
        Literal::Text(text) => value.and_then(Value::as_str).map(|v| v.cmp(text.as_str())),
        Literal::Time(at) => value
            .and_then(Value::as_str)
            .and_then(ipguard_wire::soql::parse_datetime)
            .map(|v| v.cmp(at)),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        "=" => ordering.is_eq(),
        "!=" => ordering.is_ne(),
        "<" => ordering.is_lt(),
        "<=" => ordering.is_le(),
        ">" => ordering.is_gt(),
        _ => ordering.is_ge(),
    }
}

/// What Setup calls a profile (`Profile.Name`): the label, not the metadata full name.
fn profile_label(full_name: &str) -> String {
    standard_label(full_name).map_or_else(
        || {
            ProfileName::parse(full_name)
                .map(|n| n.decoded())
                .unwrap_or_else(|_| full_name.to_owned())
        },
        str::to_owned,
    )
}

fn rows(state: &SimState, object: &str) -> Vec<Row> {
    match object {
        "User" => {
            let integration = state
                .profile(&state.integration_profile)
                .map(|p| p.id.clone())
                .unwrap_or_default();
            let admin = state
                .profile("Admin")
                .map(|p| p.id.clone())
                .unwrap_or_default();
            vec![
                vec![
                    ("Id", json!(state.user_id)),
                    ("Username", json!(state.username)),
                    ("ProfileId", json!(integration)),
                    (
                        "Profile.Name",
                        json!(profile_label(&state.integration_profile)),
                    ),
                ],
                vec![
                    ("Id", json!(state.admin_id)),
                    ("Username", json!(super::ADMIN_USERNAME)),
                    ("ProfileId", json!(admin)),
                    ("Profile.Name", json!("System Administrator")),
                ],
            ]
        }
        _ => state
            .logins
            .iter()
            .map(|l| {
                vec![
                    ("Id", json!(l.id)),
                    ("UserId", json!(state.user_id)),
                    ("SourceIp", json!(l.source_ip.to_string())),
                    (
                        "LoginTime",
                        json!(
                            l.login_time
                                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                                .to_string()
                        ),
                    ),
                    ("Status", json!(l.status)),
                ]
            })
            .collect(),
    }
}

/// The records answering `soql` over `object` (`User` or `LoginHistory`).
pub(crate) fn run(
    state: &SimState,
    version: &str,
    object: &'static str,
    soql: &str,
) -> Result<Vec<Value>, QueryError> {
    let known: &[&str] = match object {
        "User" => &["Id", "Username", "ProfileId", "Profile.Name"],
        _ => &["Id", "UserId", "SourceIp", "LoginTime", "Status"],
    };
    let query = parse(soql, object, known)?;
    if object == "LoginHistory" && !state.login_history_readable {
        return Err((
            StatusCode::FORBIDDEN,
            "INSUFFICIENT_ACCESS",
            "Insufficient privileges: LoginHistory requires Manage Users".to_owned(),
        ));
    }
    let user_id15 = state.user_id15().to_owned();
    let mut matching: Vec<Row> = rows(state, object)
        .into_iter()
        .filter(|row| {
            query.conditions.iter().all(|(field, op, literal)| {
                // An id matches in its 15- and 18-character forms.
                if let (true, Literal::Text(text)) = (field.ends_with("Id"), literal)
                    && text.len() == 15
                    && text == &user_id15
                {
                    return holds(row, field, op, &Literal::Text(state.user_id.clone()));
                }
                holds(row, field, op, literal)
            })
        })
        .collect();
    if let Some((field, descending)) = &query.order {
        matching.sort_by(|a, b| {
            let key = |r: &Row| get(r, field).and_then(Value::as_str).map(str::to_owned);
            key(a).cmp(&key(b))
        });
        if *descending {
            matching.reverse();
        }
    }
    matching.truncate(query.limit.unwrap_or(usize::MAX));
    Ok(matching
        .iter()
        .map(|row| record(row, &query, version))
        .collect())
}

fn record(row: &Row, query: &Query, version: &str) -> Value {
    let id = get(row, "Id").and_then(Value::as_str).unwrap_or_default();
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        json!({
            "type": query.object,
            "url": format!("/services/data/{version}/sobjects/{}/{id}", query.object),
        }),
    );
    for field in &query.fields {
        let value = get(row, field).cloned().unwrap_or(Value::Null);
        if let Some((relation, child)) = field.split_once('.') {
            let nested = map.entry(relation).or_insert_with(|| {
                json!({"attributes": {"type": "Profile",
                    "url": format!("/services/data/{version}/sobjects/Profile/{}",
                        get(row, "ProfileId").and_then(Value::as_str).unwrap_or_default())}})
            });
            nested[child] = value;
        } else {
            map.insert(field.clone(), value);
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact text of ipguard's interlock queries (`user_query`, `login_query` in
    /// src/reconcile/interlock.rs, whose tests pin the same strings): the sim must parse them.
    const USER_QUERY: &str =
        "SELECT Id, Profile.Name FROM User WHERE Username = 'integration@ipguard.example' LIMIT 1";
    const LOGIN_QUERY: &str = "SELECT SourceIp, LoginTime FROM LoginHistory WHERE UserId = '005x' \
        AND Status = 'Success' AND LoginTime >= 2024-05-01T12:00:00Z ORDER BY LoginTime DESC LIMIT 1";

    #[test]
    fn interlock_queries_parse() {
        let user = USER_QUERY;
        assert_eq!(object_of(user), Some("User"));
        let q = parse(user, "User", &["Id", "Username", "Profile.Name"]).unwrap();
        assert_eq!(q.fields, ["Id", "Profile.Name"]);
        let login = LOGIN_QUERY;
        assert_eq!(object_of(login), Some("LoginHistory"));
        let q = parse(
            login,
            "LoginHistory",
            &["Id", "UserId", "SourceIp", "LoginTime", "Status"],
        )
        .unwrap();
        assert_eq!(q.conditions.len(), 3);
        assert_eq!(q.order, Some(("LoginTime".into(), true)));
        assert_eq!(q.limit, Some(1));
        assert_eq!(object_of("SELECT Id FROM SetupAuditTrail"), None);
    }

    #[test]
    fn labels_of_profiles() {
        assert_eq!(profile_label("Admin"), "System Administrator");
        assert_eq!(
            profile_label("Custom%3A Integration"),
            "Custom: Integration"
        );
    }
}
