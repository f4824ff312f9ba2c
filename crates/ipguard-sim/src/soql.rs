//! The SOQL engine behind the REST query resource: tokenize, parse, filter, order, limit and
//! shape records the way Salesforce's REST API does. Rows come from `audit.rs`
//! (`SetupAuditTrail`), `users.rs` and `access.rs`.
//!
//! Supported subset:
//!
//! ```text
//! SELECT path[, path…] FROM Object
//!   [WHERE condition [AND condition…]]
//!   [ORDER BY path [ASC|DESC]] [LIMIT n]
//! condition := path op literal | path IN (literal[, literal…])
//! path      := Field | Relationship.path        (any depth: Parent.ProfileId, Assignee.Profile.Name)
//! op        := = | != | < | <= | > | >=
//! literal   := 'text' (\' escapes) | true | false | null | an RFC 3339 dateTime (unquoted)
//! ```
//!
//! Keywords, object, field and relationship names ignore case. An object's schema
//! ([`Object`]) lists its fields and relationships; another name → 400 `INVALID_FIELD`, another
//! object → 400 `INVALID_TYPE`, anything else off the subset → 400 `MALFORMED_QUERY` — among
//! them a dateTime field ([`Object::datetimes`]) compared with anything but an unquoted dateTime
//! or `null`.
//!
//! Ids compare in their 15- and 18-character forms (a field named `Id` or ending in `Id`).
//! A record comes back as Salesforce shapes it: `attributes {type, url}` first, then the
//! selected fields in SELECT order; a relationship is a nested object with its own
//! `attributes` (the related object's type) and the selected fields under it, or JSON `null`
//! when the relationship's id is null. ORDER BY is a stable sort: rows that tie keep the order
//! their source gives them (reversed by DESC).

use std::cmp::Ordering;

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::ids;

/// A REST error: status, `errorCode`, message.
pub(crate) type QueryError = (StatusCode, &'static str, String);

pub(crate) fn malformed(message: impl Into<String>) -> QueryError {
    (StatusCode::BAD_REQUEST, "MALFORMED_QUERY", message.into())
}

/// An sObject's schema as far as the sim answers it.
#[derive(Debug)]
pub(crate) struct Object {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    /// Relationship name → the related object's name.
    pub relations: &'static [(&'static str, &'static str)],
    /// The fields of type dateTime (their values are `2024-05-01T12:00:00.000+0000` texts).
    pub datetimes: &'static [&'static str],
}

/// One row: an object's fields and its relationships, resolved (to the depth a query can
/// reach). A relationship that is `None` has a null id.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub object: &'static str,
    pub id: String,
    pub fields: Vec<(&'static str, Value)>,
    pub relations: Vec<(&'static str, Option<Record>)>,
}

impl Record {
    pub fn new(object: &'static str, id: &str) -> Self {
        Self {
            object,
            id: id.to_owned(),
            fields: vec![("Id", Value::String(id.to_owned()))],
            relations: Vec::new(),
        }
    }

    pub fn field(mut self, name: &'static str, value: Value) -> Self {
        self.fields.push((name, value));
        self
    }

    pub fn relation(mut self, name: &'static str, record: Option<Record>) -> Self {
        self.relations.push((name, record));
        self
    }

    /// The value at `path` (canonical names); `Null` through a null relationship.
    fn get(&self, path: &[&'static str]) -> Value {
        match path {
            [] => Value::Null,
            [field] => self
                .fields
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null),
            [relation, rest @ ..] => self
                .relations
                .iter()
                .find(|(r, _)| r == relation)
                .and_then(|(_, record)| record.as_ref())
                .map_or(Value::Null, |record| record.get(rest)),
        }
    }
}

/// Splits on whitespace, commas and parentheses, keeping a quoted string (with its opening
/// quote) as one token.
fn tokenize(soql: &str) -> Result<Vec<String>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = soql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, ',' | '(' | ')') {
            chars.next();
            tokens.push(c.to_string());
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
                if c.is_whitespace() || matches!(c, ',' | '(' | ')' | '\'') {
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

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    Time(DateTime<Utc>),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

/// A field path in canonical spelling: `["Assignee", "IsActive"]`.
pub(crate) type Path = Vec<&'static str>;

#[derive(Debug)]
pub(crate) struct Condition {
    pub path: Path,
    pub op: Op,
    /// One literal, or the list of `IN (…)`.
    pub values: Vec<Literal>,
}

#[derive(Debug)]
pub(crate) struct Query {
    pub object: &'static Object,
    pub fields: Vec<Path>,
    pub conditions: Vec<Condition>,
    pub order: Option<(Path, bool)>,
    pub limit: Option<usize>,
}

impl Query {
    /// The selected paths joined with dots (`Parent.ProfileId`), for tests and logs.
    #[cfg(test)]
    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|p| p.join(".")).collect()
    }
}

fn lookup(schema: &[&'static Object], name: &str) -> Option<&'static Object> {
    schema
        .iter()
        .copied()
        .find(|o| o.name.eq_ignore_ascii_case(name))
}

/// Resolves a dotted path against `object`'s schema (names ignore case).
fn resolve(
    schema: &[&'static Object],
    object: &'static Object,
    token: &str,
) -> Result<Path, QueryError> {
    resolve_field(schema, object, token).map(|(path, _)| path)
}

/// [`resolve`], with the object that owns the path's last field.
fn resolve_field(
    schema: &[&'static Object],
    object: &'static Object,
    token: &str,
) -> Result<(Path, &'static Object), QueryError> {
    let invalid = || {
        let message = if token.contains('.') {
            format!(
                "Didn't understand relationship '{}' in field path.",
                token.split('.').next().unwrap_or_default()
            )
        } else {
            format!("No such column '{token}' on entity '{}'.", object.name)
        };
        (StatusCode::BAD_REQUEST, "INVALID_FIELD", message)
    };
    let mut path = Vec::new();
    let mut current = object;
    let parts: Vec<&str> = token.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            let field = current
                .fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(part))
                .ok_or_else(invalid)?;
            path.push(*field);
        } else {
            let (relation, target) = current
                .relations
                .iter()
                .find(|(r, _)| r.eq_ignore_ascii_case(part))
                .ok_or_else(invalid)?;
            path.push(*relation);
            current = lookup(schema, target).ok_or_else(invalid)?;
        }
    }
    Ok((path, current))
}

/// The literal `token` compared with `field`: a dateTime field takes an unquoted dateTime or
/// `null` only.
fn typed_literal(owner: &Object, field: &str, token: &str) -> Result<Literal, QueryError> {
    if !owner.datetimes.contains(&field) {
        return literal(token);
    }
    match literal(token) {
        Ok(value @ (Literal::Time(_) | Literal::Null)) => Ok(value),
        _ => {
            let written = match token.strip_prefix('\'') {
                Some(text) => format!("'{text}'"),
                None => token.to_owned(),
            };
            Err(malformed(format!(
                "value of filter criterion for field '{field}' must be of type dateTime and \
                 should not be enclosed in quotes: {written}"
            )))
        }
    }
}

fn literal(token: &str) -> Result<Literal, QueryError> {
    if let Some(text) = token.strip_prefix('\'') {
        return Ok(Literal::Text(text.to_owned()));
    }
    if token.eq_ignore_ascii_case("true") {
        return Ok(Literal::Bool(true));
    }
    if token.eq_ignore_ascii_case("false") {
        return Ok(Literal::Bool(false));
    }
    if token.eq_ignore_ascii_case("null") {
        return Ok(Literal::Null);
    }
    DateTime::parse_from_rfc3339(token)
        .map(|t| Literal::Time(t.with_timezone(&Utc)))
        .map_err(|_| malformed(format!("unexpected token: '{token}'")))
}

/// Parses `soql` over one of the objects of `schema`.
pub(crate) fn parse(soql: &str, schema: &[&'static Object]) -> Result<Query, QueryError> {
    let tokens = tokenize(soql)?;
    let mut it = tokens.iter().peekable();
    let is = |t: Option<&&String>, word: &str| t.is_some_and(|t| t.eq_ignore_ascii_case(word));
    if !is(it.next().as_ref(), "SELECT") {
        return Err(malformed("unexpected token: expected SELECT"));
    }
    let mut selected = Vec::new();
    loop {
        let token = it
            .next()
            .ok_or_else(|| malformed("unexpected end of query: expected FROM"))?;
        selected.push(token.clone());
        if is(it.peek(), ",") {
            it.next();
            continue;
        }
        if is(it.peek(), "FROM") {
            it.next();
            break;
        }
        return Err(malformed(format!(
            "unexpected token: '{}'",
            it.peek().map_or("", |t| t.as_str())
        )));
    }
    let name = it.next().ok_or_else(|| malformed("expected an object"))?;
    let object = lookup(schema, name).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported."),
        )
    })?;
    let fields = selected
        .iter()
        .map(|t| resolve(schema, object, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut query = Query {
        object,
        fields,
        conditions: Vec::new(),
        order: None,
        limit: None,
    };
    if is(it.peek(), "WHERE") {
        it.next();
        loop {
            let (path, owner) = resolve_field(
                schema,
                object,
                it.next().ok_or_else(|| malformed("expected a field"))?,
            )?;
            let field = path.last().copied().unwrap_or_default();
            let op = it.next().ok_or_else(|| malformed("expected an operator"))?;
            let op = match op.to_ascii_uppercase().as_str() {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "IN" => Op::In,
                _ => return Err(malformed(format!("unexpected token: '{op}'"))),
            };
            let mut values = Vec::new();
            if op == Op::In {
                if !is(it.next().as_ref(), "(") {
                    return Err(malformed("expected ( after IN"));
                }
                loop {
                    let value = it.next().ok_or_else(|| malformed("expected a value"))?;
                    values.push(typed_literal(owner, field, value)?);
                    match it.next().map(String::as_str) {
                        Some(",") => continue,
                        Some(")") => break,
                        other => {
                            return Err(malformed(format!(
                                "unexpected token: '{}'",
                                other.unwrap_or_default()
                            )));
                        }
                    }
                }
            } else {
                let value = it.next().ok_or_else(|| malformed("expected a value"))?;
                values.push(typed_literal(owner, field, value)?);
            }
            query.conditions.push(Condition { path, op, values });
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
        let path = resolve(
            schema,
            object,
            it.next().ok_or_else(|| malformed("expected a field"))?,
        )?;
        let descending = if is(it.peek(), "DESC") {
            it.next();
            true
        } else {
            if is(it.peek(), "ASC") {
                it.next();
            }
            false
        };
        query.order = Some((path, descending));
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

/// The 18-character, upper-cased form of an id-looking text (15 or 18 alphanumerics).
fn id_key(text: &str) -> Option<String> {
    let long = match text.len() {
        15 => ids::to_18(text)?,
        18 if text.bytes().all(|b| b.is_ascii_alphanumeric()) => text.to_owned(),
        _ => return None,
    };
    Some(long.to_ascii_uppercase())
}

fn compare(path: &Path, value: &Value, literal: &Literal) -> Option<Ordering> {
    let is_id = path.last().is_some_and(|f| f.ends_with("Id"));
    match (value, literal) {
        (Value::Null, Literal::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::Bool(v), Literal::Bool(b)) => Some(v.cmp(b)),
        (Value::String(v), Literal::Text(text)) => {
            if is_id && let (Some(a), Some(b)) = (id_key(v), id_key(text)) {
                return Some(a.cmp(&b));
            }
            Some(v.as_str().cmp(text.as_str()))
        }
        (Value::String(v), Literal::Time(at)) => {
            ipguard_wire::soql::parse_datetime(v).map(|v| v.cmp(at))
        }
        _ => None,
    }
}

fn holds(record: &Record, condition: &Condition) -> bool {
    let value = record.get(&condition.path);
    let equal =
        |literal: &Literal| compare(&condition.path, &value, literal).is_some_and(Ordering::is_eq);
    match condition.op {
        Op::In => condition.values.iter().any(equal),
        Op::Ne => {
            // `!= null` is "has a value"; otherwise a null never matches.
            match (&value, &condition.values[0]) {
                (Value::Null, Literal::Null) => false,
                (_, Literal::Null) => true,
                _ => compare(&condition.path, &value, &condition.values[0])
                    .is_some_and(Ordering::is_ne),
            }
        }
        op => compare(&condition.path, &value, &condition.values[0]).is_some_and(|o| match op {
            Op::Eq => o.is_eq(),
            Op::Lt => o.is_lt(),
            Op::Le => o.is_le(),
            Op::Gt => o.is_gt(),
            _ => o.is_ge(),
        }),
    }
}

/// Filters, orders, limits and shapes `records` (rows of `query.object`).
pub(crate) fn answer(query: &Query, records: Vec<Record>, version: &str) -> Vec<Value> {
    let mut matching: Vec<Record> = records
        .into_iter()
        .filter(|r| query.conditions.iter().all(|c| holds(r, c)))
        .collect();
    if let Some((path, descending)) = &query.order {
        // Stable, nulls first (Salesforce's default for ASC).
        matching.sort_by(|a, b| {
            let key = |r: &Record| match r.get(path) {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            key(a).cmp(&key(b))
        });
        if *descending {
            matching.reverse();
        }
    }
    matching.truncate(query.limit.unwrap_or(usize::MAX));
    matching
        .iter()
        .map(|r| shape(r, &query.fields, version))
        .collect()
}

fn attributes(record: &Record, version: &str) -> Value {
    serde_json::json!({
        "type": record.object,
        "url": format!("/services/data/{version}/sobjects/{}/{}", record.object, record.id),
    })
}

/// A record with the selected paths, nested by relationship.
fn shape(record: &Record, fields: &[Path], version: &str) -> Value {
    let mut map = Map::new();
    map.insert("attributes".into(), attributes(record, version));
    for path in fields {
        insert(&mut map, record, path, version);
    }
    Value::Object(map)
}

fn insert(map: &mut Map<String, Value>, record: &Record, path: &[&'static str], version: &str) {
    match path {
        [] => {}
        [field] => {
            map.insert((*field).to_owned(), record.get(&[field]));
        }
        [relation, rest @ ..] => {
            let related = record
                .relations
                .iter()
                .find(|(r, _)| r == relation)
                .and_then(|(_, r)| r.as_ref());
            let Some(related) = related else {
                map.insert((*relation).to_owned(), Value::Null);
                return;
            };
            let entry = map.entry(*relation).or_insert_with(|| {
                let mut nested = Map::new();
                nested.insert("attributes".into(), attributes(related, version));
                Value::Object(nested)
            });
            if let Value::Object(nested) = entry {
                insert(nested, related, rest, version);
            }
        }
    }
}

/// Parses and answers `soql` over `rows(object)`.
pub(crate) fn run(
    soql: &str,
    schema: &[&'static Object],
    version: &str,
    rows: impl FnOnce(&'static Object) -> Result<Vec<Record>, QueryError>,
) -> Result<Vec<Value>, QueryError> {
    let query = parse(soql, schema)?;
    let records = rows(query.object)?;
    Ok(answer(&query, records, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: Object = Object {
        name: "Account",
        fields: &["Id", "Name", "OwnerId", "IsActive"],
        relations: &[("Owner", "User")],
        datetimes: &[],
    };
    const USER: Object = Object {
        name: "User",
        fields: &["Id", "Username", "IsActive"],
        relations: &[],
        datetimes: &[],
    };
    const SCHEMA: &[&Object] = &[&ACCOUNT, &USER];

    fn rows() -> Vec<Record> {
        let owner = Record::new("User", "0055g0000000001AAA").field("IsActive", json!(true));
        vec![
            Record::new("Account", "0015g0000000001AAA")
                .field("Name", json!("b"))
                .field("OwnerId", json!("0055g0000000001AAA"))
                .field("IsActive", json!(true))
                .relation("Owner", Some(owner)),
            Record::new("Account", "0015g0000000002AAA")
                .field("Name", json!("a"))
                .field("OwnerId", Value::Null)
                .field("IsActive", json!(false))
                .relation("Owner", None),
        ]
    }

    fn ask(soql: &str) -> Vec<Value> {
        run(soql, SCHEMA, "v66.0", |_| Ok(rows())).unwrap()
    }

    #[test]
    fn in_lists_booleans_and_relationships() {
        let got = ask(
            "SELECT Name, Owner.IsActive FROM Account WHERE Name IN ('a', 'b') AND IsActive = true",
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["Owner"]["IsActive"], json!(true));
        assert_eq!(got[0]["Owner"]["attributes"]["type"], "User");
        let got = ask("SELECT Name, Owner.IsActive FROM Account WHERE IsActive = false");
        assert_eq!(got[0]["Owner"], Value::Null);
        assert_eq!(
            ask("SELECT Id FROM Account WHERE Owner.IsActive = true").len(),
            1
        );
        assert_eq!(ask("SELECT Id FROM Account WHERE OwnerId = null").len(), 1);
        assert_eq!(ask("SELECT Id FROM Account WHERE OwnerId != null").len(), 1);
    }

    #[test]
    fn ids_match_in_15_and_18_characters() {
        assert_eq!(
            ask("SELECT Id FROM Account WHERE Id = '0015g0000000001'").len(),
            1
        );
        assert_eq!(
            ask("SELECT Id FROM Account WHERE OwnerId IN ('0055g0000000001')").len(),
            1
        );
        assert_eq!(
            ask("SELECT Id FROM Account WHERE Id = '0015G0000000001AAA'").len(),
            1
        );
    }

    #[test]
    fn order_limit_and_errors() {
        let got = ask("SELECT Name FROM Account ORDER BY Name LIMIT 1");
        assert_eq!(got[0]["Name"], "a");
        let code = |soql: &str| run(soql, SCHEMA, "v66.0", |_| Ok(rows())).unwrap_err().1;
        assert_eq!(code("SELECT Nope FROM Account"), "INVALID_FIELD");
        assert_eq!(code("SELECT Boss.Name FROM Account"), "INVALID_FIELD");
        assert_eq!(code("SELECT Id FROM Contact"), "INVALID_TYPE");
        assert_eq!(
            code("SELECT Id FROM Account WHERE Name IN 'a'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(code("SELECT Id FROM Account LIMIT 1 x"), "MALFORMED_QUERY");
    }
}
