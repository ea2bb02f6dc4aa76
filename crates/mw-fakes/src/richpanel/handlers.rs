//! State and route handlers of the fake Richpanel server.
//!
//! Choices where the documentation is silent:
//!
//! * `POST /v1/tickets` answers 200 `{"ticket":…}`; a client-supplied `id` is kept (replacing an
//!   existing ticket, as the docs warn); `conversation_no` is always assigned.
//! * `tags` in create/update bodies are tag **ids** (unknown → 400) and an update **replaces** the
//!   ticket's tag set. `add-tags`/`remove-tags` accept ids or names; an unknown name given to
//!   `add-tags` is added and registered as a new tag; `ticket.tags` always holds names.
//! * `state` in an update is stored lowercased; `open`/`closed` also set `status` when no
//!   `status` is given. When `status` changes, an existing `state` follows it.
//! * A `comment` without a (non-empty) `body` is accepted and ignored, like the docs' sample
//!   `{"comment":{"public":true}}`.
//! * Lists default to `per_page` 25 (max 100, larger values are clamped; 0 or non-integers → 400)
//!   and always carry `count`, `next_page` and `previous_page` (absolute URLs or null).
//! * `POST /v1/order/{app}` accepts at most 25 orders (the documented batch size), each with
//!   `orderId`, `orderDbKey` and `amount`; orders are replaced, not merged.
//! * `GET /v1/order/{conversationId}` answers `{}` for unknown conversations as well.
//! * Comment `created_at` values are strictly increasing (millisecond precision).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use http::Method;
use serde_json::{Map, Value, json};

use super::{Fault, JournalEntry, RouteMatch};
use crate::chaos::Chaos;
use crate::server::{Req, header_pairs, parse_query, pct_decode};

const DEFAULT_PER_PAGE: usize = 25;
const MAX_PER_PAGE: usize = 100;
const MAX_ORDER_BATCH: usize = 25;
const ORG: &str = "org_fake";

type Res = Result<(u16, Value), (u16, String)>;

fn bad(msg: impl Into<String>) -> (u16, String) {
    (400, msg.into())
}

/// Rate-limit bookkeeping for one request.
pub(super) struct Rate {
    pub limit: u32,
    pub remaining: u32,
    pub over: bool,
    pub retry_after: u64,
}

/// Everything the fake knows.
#[derive(Default)]
pub(super) struct State {
    pub tickets: BTreeMap<String, Value>,
    pub orders: HashMap<(String, String), Value>,
    pub links: HashMap<String, (String, String)>,
    pub tags: Vec<Value>,
    pub teams: Vec<Value>,
    pub users: Vec<Value>,
    pub faults: Vec<(RouteMatch, VecDeque<Fault>)>,
    pub chaos: Option<Chaos<Fault>>,
    pub limiter: Option<(u32, Duration)>,
    /// (window index, requests counted in it).
    pub window: (u128, u32),
    pub journal: Vec<(u64, JournalEntry)>,
    journal_seq: u64,
    next_id: u64,
    next_conv_no: u64,
    last_ts: DateTime<Utc>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An id given as a string or a number.
fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The key of an order: its `orderId` as a string.
pub(super) fn order_key(order: &Value) -> Option<String> {
    id_string(order.get("orderId"))
}

/// `<p>a</p><p>b</p>` → `a\nb`; a few entities decoded.
fn strip_tags(s: &str) -> String {
    if !s.contains('<') {
        return s.to_owned();
    }
    let (mut out, mut tag, mut in_tag) = (String::new(), String::new(), false);
    for ch in s.chars() {
        match ch {
            '<' if !in_tag => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag
                    .trim_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let closing = tag.starts_with('/');
                if name == "br" || (closing && matches!(name.as_str(), "p" | "div" | "li")) {
                    out.push('\n');
                }
            }
            c if in_tag => tag.push(c),
            c => out.push(c),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

/// Shallow-merges `src` into `dst`, merging nested objects recursively.
fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                merge(d.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (d, s) => *d = s.clone(),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, (u16, String)> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Invalid JSON body: {e}")))
}

/// Validates a `status` value: `OPEN`/`CLOSED` in any case, stored uppercase.
fn parse_status(v: Option<&Value>) -> Result<Option<String>, (u16, String)> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if ["OPEN", "CLOSED"].contains(&s.to_uppercase().as_str()) => {
            Ok(Some(s.to_uppercase()))
        }
        Some(other) => Err(bad(format!(
            "Invalid status {other}: must be OPEN or CLOSED"
        ))),
    }
}

/// A `comment` from a create/update body, or `None` when it has no body.
fn payload_comment(c: Option<&Value>) -> Result<Option<Value>, (u16, String)> {
    let Some(c) = c.filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let m = c
        .as_object()
        .ok_or_else(|| bad("`comment` must be an object"))?;
    let body = match m.get("body") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("`comment.body` must be a string")),
    };
    let sender = match m.get("sender_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad("`comment.sender_type` must be a string")),
    };
    let is_operator = !sender.is_some_and(|s| s.eq_ignore_ascii_case("customer"));
    let author = id_string(m.get("author_id"))
        .unwrap_or_else(|| if is_operator { "operator" } else { "customer" }.to_owned());
    Ok(Some(json!({
        "author_id": author,
        "body": body,
        "is_operator": is_operator,
        "public": m.get("public").cloned().unwrap_or(Value::Bool(true)),
    })))
}

impl State {
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:06}", self.next_id)
    }

    /// Now as ISO-8601 with `Z`, strictly after every earlier value.
    fn now_iso(&mut self) -> String {
        let now = DateTime::<Utc>::from(SystemTime::now()).trunc_subsecs(3);
        let ts = if now > self.last_ts {
            now
        } else {
            self.last_ts + chrono::Duration::milliseconds(1)
        };
        self.last_ts = ts;
        ts.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn journal_start(&mut self, req: &Req, at: Duration) -> u64 {
        self.journal_seq += 1;
        let raw_body = String::from_utf8_lossy(&req.body).into_owned();
        let entry = JournalEntry {
            method: req.method.as_str().to_owned(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: header_pairs(&req.headers),
            body: serde_json::from_slice(&req.body).ok(),
            raw_body,
            at,
            status: 0,
        };
        self.journal.push((self.journal_seq, entry));
        self.journal_seq
    }

    pub fn journal_finish(&mut self, seq: u64, status: u16) {
        if let Some((_, e)) = self.journal.iter_mut().rev().find(|(s, _)| *s == seq) {
            e.status = status;
        }
    }

    /// Counts the request (when `count`) in the current fixed window.
    pub fn rate(&mut self, at: Duration, count: bool) -> Rate {
        let (limit, window, enforced) = match self.limiter {
            Some((l, w)) => (l, w, true),
            None => (50, Duration::from_secs(30), false),
        };
        let w = window.as_nanos().max(1);
        let idx = at.as_nanos() / w;
        if self.window.0 != idx {
            self.window = (idx, 0);
        }
        if count {
            self.window.1 = self.window.1.saturating_add(1);
        }
        let left = (idx + 1) * w - at.as_nanos();
        Rate {
            limit,
            remaining: limit.saturating_sub(self.window.1),
            over: enforced && count && self.window.1 > limit,
            retry_after: u64::try_from(left.div_ceil(1_000_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
        }
    }

    /// A scripted fault for this request, else a random one from the chaos settings.
    pub fn take_fault(&mut self, method: &Method, path: &str) -> Option<Fault> {
        self.faults
            .iter_mut()
            .find(|(r, q)| !q.is_empty() && r.matches(method, path))
            .and_then(|(_, q)| q.pop_front())
            .or_else(|| self.chaos.as_mut().and_then(Chaos::draw))
    }

    fn normalize_comment(&mut self, c: &Value, channel: &Value) -> Value {
        let mut m = c.as_object().cloned().unwrap_or_default();
        let is_op = m
            .get("is_operator")
            .and_then(Value::as_bool)
            .or_else(|| m.get("isOperator").and_then(Value::as_bool))
            .or_else(|| {
                m.get("via")
                    .and_then(|v| v.get("isOperator"))
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        let id = id_string(m.get("id")).unwrap_or_else(|| self.new_id("cmt"));
        m.insert("id".into(), id.into());
        m.insert("is_operator".into(), is_op.into());
        if m.contains_key("isOperator") {
            m.insert("isOperator".into(), is_op.into());
        }
        let author = id_string(m.get("author_id"))
            .unwrap_or_else(|| if is_op { "operator" } else { "customer" }.to_owned());
        m.insert("author_id".into(), author.into());
        if !m.get("created_at").is_some_and(Value::is_string) {
            m.insert("created_at".into(), self.now_iso().into());
        }
        let body = str_of(&Value::Object(m.clone()), "body")
            .or_else(|| m.get("plain_body").and_then(Value::as_str))
            .unwrap_or("")
            .to_owned();
        if !m.get("plain_body").is_some_and(Value::is_string) {
            m.insert("plain_body".into(), strip_tags(&body).into());
        }
        m.insert("body".into(), body.into());
        m.entry("type").or_insert(Value::Null);
        m.entry("metadata").or_insert_with(|| json!({}));
        m.entry("attachments").or_insert_with(|| json!([]));
        let mut via = m
            .get("via")
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(via) = via.as_object_mut() {
            if !via.get("channel").is_some_and(Value::is_string) {
                via.insert("channel".into(), channel.clone());
            }
            via.insert("isOperator".into(), is_op.into());
        }
        m.insert("via".into(), via);
        Value::Object(m)
    }

    /// Fills defaults of a ticket object (see [`super::FakeRichpanel::insert_ticket`]).
    pub fn normalize_ticket(&mut self, ticket: Value) -> Value {
        let mut t = match ticket {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let id = id_string(t.get("id")).unwrap_or_else(|| self.new_id("tkt"));
        t.insert("id".into(), id.into());
        match t.get("conversation_no").and_then(Value::as_u64) {
            Some(n) => self.next_conv_no = self.next_conv_no.max(n + 1),
            None => {
                // Conversation numbers start at 1000.
                self.next_conv_no = self.next_conv_no.max(1000);
                t.insert("conversation_no".into(), self.next_conv_no.into());
                self.next_conv_no += 1;
            }
        }
        let status = str_of(&Value::Object(t.clone()), "status")
            .map_or("OPEN".to_owned(), str::to_uppercase);
        t.insert("status".into(), status.into());
        let now = self.now_iso();
        for key in ["created_at", "updated_at"] {
            t.entry(key).or_insert_with(|| now.clone().into());
        }
        for key in [
            "first_response_time",
            "first_response_duration",
            "resolution_duration",
        ] {
            t.entry(key).or_insert(0.into());
        }
        for key in [
            "first_closed_at",
            "assignee_id",
            "priority",
            "recipient",
            "subject",
        ] {
            t.entry(key).or_insert(Value::Null);
        }
        t.entry("organization_id").or_insert(ORG.into());
        let mut via = t
            .get("via")
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        if !via.get("channel").is_some_and(Value::is_string) {
            via["channel"] = "email".into();
        }
        let channel = via["channel"].clone();
        t.insert("via".into(), via);
        let mut tags: Vec<Value> = Vec::new();
        for tag in t
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if tag.is_string() && !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        t.insert("tags".into(), tags.into());
        let comments: Vec<Value> = t
            .get("comments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let comments: Vec<Value> = comments
            .iter()
            .map(|c| self.normalize_comment(c, &channel))
            .collect();
        t.insert("comments".into(), comments.into());
        Value::Object(t)
    }

    pub fn store_ticket(&mut self, ticket: Value) {
        if let Some(id) = str_of(&ticket, "id") {
            self.tickets.insert(id.to_owned(), ticket);
        }
    }

    /// Appends a comment to a ticket (which must exist), normalising it.
    fn append_comment(&mut self, id: &str, comment: &Value) -> Option<String> {
        let channel = self.tickets.get(id)?["via"]["channel"].clone();
        let comment = self.normalize_comment(comment, &channel);
        let now = self.now_iso();
        let ticket = self.tickets.get_mut(id)?;
        let cid = str_of(&comment, "id").map(str::to_owned);
        if let Some(list) = ticket.get_mut("comments").and_then(Value::as_array_mut) {
            list.push(comment);
        } else {
            ticket["comments"] = json!([comment]);
        }
        ticket["updated_at"] = now.into();
        cid
    }

    fn set_status(&mut self, id: &str, status: &str) {
        let now = self.now_iso();
        if let Some(t) = self.tickets.get_mut(id) {
            t["status"] = status.into();
            if t.get("state").is_some() {
                t["state"] = status.to_lowercase().into();
            }
            if status == "CLOSED" && t["first_closed_at"].is_null() {
                t["first_closed_at"] = now.into();
            }
        }
    }

    pub fn add_customer_message(&mut self, ticket_id: &str, text: &str) -> String {
        if !self.tickets.contains_key(ticket_id) {
            let t = self.normalize_ticket(
                json!({"id": ticket_id, "status": "OPEN", "via": {"channel": "email"}}),
            );
            self.store_ticket(t);
        }
        if self
            .tickets
            .get(ticket_id)
            .is_some_and(|t| t["status"] != "OPEN")
        {
            self.set_status(ticket_id, "OPEN");
        }
        let comment = json!({"is_operator": false, "author_id": "customer", "body": text, "plain_body": text});
        self.append_comment(ticket_id, &comment).unwrap_or_default()
    }

    fn tag_name(&self, id_or_name: &str) -> Option<String> {
        self.tags
            .iter()
            .find(|t| str_of(t, "id") == Some(id_or_name))
            .and_then(|t| str_of(t, "name"))
            .map(str::to_owned)
    }

    fn create_tag_value(&mut self, name: &str, description: Value) -> Value {
        let (id, now) = (self.new_id("tag"), self.now_iso());
        let tag = json!({"id": id, "name": name, "description": description,
            "organization_id": ORG, "created_at": now, "updated_at": now});
        self.tags.push(tag.clone());
        tag
    }

    pub fn ensure_tag(&mut self, name: &str) -> String {
        if let Some(t) = self.tags.iter().find(|t| str_of(t, "name") == Some(name)) {
            return str_of(t, "id").unwrap_or_default().to_owned();
        }
        let tag = self.create_tag_value(name, Value::Null);
        str_of(&tag, "id").unwrap_or_default().to_owned()
    }

    pub fn add_team(&mut self, name: &str) -> String {
        let (id, now) = (self.new_id("team"), self.now_iso());
        self.teams.push(json!({"id": id, "name": name, "organization_id": ORG, "created_at": now, "updated_at": now}));
        id
    }

    pub fn add_user(&mut self, name: &str, email: &str) -> String {
        let (id, now) = (self.new_id("usr"), self.now_iso());
        self.users.push(
            json!({"id": id, "name": name, "email": email, "role": "agent",
            "organization_id": ORG, "created_at": now, "updated_at": now}),
        );
        id
    }

    fn is_user(&self, id: &str) -> bool {
        self.users.iter().any(|u| str_of(u, "id") == Some(id))
    }

    /// Tag ids (as in create/update bodies) to names; unknown ids → 400.
    fn tag_ids_to_names(&self, v: &Value) -> Result<Vec<Value>, (u16, String)> {
        let arr = v
            .as_array()
            .ok_or_else(|| bad("`tags` must be an array of tag ids"))?;
        let mut names: Vec<Value> = Vec::new();
        for id in arr {
            let name = id.as_str().and_then(|s| self.tag_name(s));
            let name = name.ok_or_else(|| bad(format!("Unknown tag id {id}")))?;
            if !names.contains(&name.clone().into()) {
                names.push(name.into());
            }
        }
        Ok(names)
    }

    fn check_assignee(&self, v: Option<&Value>) -> Result<Option<Value>, (u16, String)> {
        match v {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Value::Null)),
            Some(Value::String(s)) if s == "unassigned" || self.is_user(s) => {
                Ok(Some(s.as_str().into()))
            }
            Some(other) => Err(bad(format!(
                "Invalid assignee_id {other}: must be a user id or \"unassigned\""
            ))),
        }
    }

    /// Dispatches one authenticated request.
    pub fn route(
        &mut self,
        base: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let segs: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(|s| pct_decode(s, false))
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let result = match (method, segs.as_slice()) {
            ("GET", ["v1", "tickets", "number", n]) => self.get_by_number(n),
            ("GET", ["v1", "tickets", kind @ ("email" | "phone"), value]) => {
                Ok(self.list_by_customer(kind, value))
            }
            ("GET", ["v1", "tickets", id]) => self.get_ticket(id),
            ("POST", ["v1", "tickets"]) => parse_body(body).and_then(|b| self.create_ticket(&b)),
            ("PUT", ["v1", "tickets", id]) => {
                parse_body(body).and_then(|b| self.update_ticket(id, &b))
            }
            ("PUT", ["v1", "tickets", id, op @ ("add-tags" | "remove-tags")]) => {
                parse_body(body).and_then(|b| self.change_tags(id, &b, *op == "add-tags"))
            }
            ("PUT", ["v1", "tickets", id, "send-message"]) => {
                parse_body(body).and_then(|b| self.send_message(id, &b))
            }
            ("PUT", ["v1", "tickets", id, "attach-order", app, order]) => {
                self.attach_order(id, app, order)
            }
            ("GET", ["v1", "order", conv]) => Ok(self.linked_order(conv)),
            ("GET", ["v1", "order", app, order]) => self.get_order(app, order),
            ("POST", ["v1", "order", app]) => {
                parse_body(body).and_then(|b| self.upsert_orders(app, &b))
            }
            ("GET", ["v1", "tags"]) => paginate(&self.tags, "tag", base, path, query),
            ("POST", ["v1", "tags"]) => parse_body(body).and_then(|b| self.create_tag(&b)),
            ("GET", ["v1", "teams"]) => paginate(&self.teams, "team", base, path, query),
            ("GET", ["v1", "users"]) => paginate(&self.users, "users", base, path, query),
            ("GET", ["v1", "users", id]) => {
                match self.users.iter().find(|u| str_of(u, "id") == Some(*id)) {
                    Some(u) => Ok((200, json!({"user": u}))),
                    None => Err((404, format!("User {id} not found"))),
                }
            }
            _ => Err((404, format!("No route for {method} {path}"))),
        };
        result.unwrap_or_else(|(status, msg)| (status, json!({"error": msg})))
    }

    fn ticket_response(&self, id: &str) -> Res {
        match self.tickets.get(id) {
            Some(t) => Ok((200, json!({"ticket": t}))),
            None => Err((404, format!("Ticket {id} not found"))),
        }
    }

    fn get_ticket(&self, id: &str) -> Res {
        self.ticket_response(id)
    }

    fn get_by_number(&self, n: &str) -> Res {
        let n: u64 = n
            .parse()
            .map_err(|_| bad(format!("Invalid conversation number {n:?}")))?;
        match self
            .tickets
            .values()
            .find(|t| t["conversation_no"].as_u64() == Some(n))
        {
            Some(t) => Ok((200, json!({"ticket": t}))),
            None => Err((404, format!("Conversation number {n} not found"))),
        }
    }

    fn list_by_customer(&self, kind: &str, value: &str) -> (u16, Value) {
        let mut found: Vec<&Value> = self
            .tickets
            .values()
            .filter(|t| {
                let from = &t["via"]["source"]["from"];
                match kind {
                    "email" => from["address"]
                        .as_str()
                        .is_some_and(|a| a.eq_ignore_ascii_case(value)),
                    _ => id_string(from.get("id")).is_some_and(|p| p == value),
                }
            })
            .collect();
        found.sort_by_key(|t| t["conversation_no"].as_u64());
        (200, json!({"tickets": found, "count": found.len()}))
    }

    fn create_ticket(&mut self, body: &Value) -> Res {
        let input = body
            .get("ticket")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("Body must contain a `ticket` object"))?;
        let status = parse_status(input.get("status"))?;
        let assignee = self.check_assignee(input.get("assignee_id"))?;
        let tags = match input.get("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => self.tag_ids_to_names(v)?,
        };
        let comment = payload_comment(input.get("comment"))?;
        let mut t = input.clone();
        for key in [
            "comment",
            "comments",
            "conversation_no",
            "created_at",
            "updated_at",
        ] {
            t.remove(key);
        }
        t.insert(
            "status".into(),
            status.unwrap_or_else(|| "OPEN".into()).into(),
        );
        t.insert("tags".into(), tags.into());
        if let Some(a) = assignee {
            t.insert("assignee_id".into(), a);
        }
        let ticket = self.normalize_ticket(Value::Object(t));
        let id = str_of(&ticket, "id").unwrap_or_default().to_owned();
        self.store_ticket(ticket);
        if let Some(c) = comment {
            self.append_comment(&id, &c);
        }
        self.ticket_response(&id)
    }

    fn update_ticket(&mut self, id: &str, body: &Value) -> Res {
        let upd = body
            .get("ticket")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("Body must contain a `ticket` object"))?;
        if !self.tickets.contains_key(id) {
            return Err((404, format!("Ticket {id} not found")));
        }
        let mut status = parse_status(upd.get("status"))?;
        let state = match upd.get("state") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.to_lowercase()),
            Some(other) => return Err(bad(format!("Invalid state {other}"))),
        };
        if status.is_none() && matches!(state.as_deref(), Some("open" | "closed")) {
            status = state.as_deref().map(str::to_uppercase);
        }
        let assignee = self.check_assignee(upd.get("assignee_id"))?;
        let tags = upd
            .get("tags")
            .filter(|v| !v.is_null())
            .map(|v| self.tag_ids_to_names(v))
            .transpose()?;
        let comment = payload_comment(upd.get("comment"))?;
        let now = self.now_iso();
        if let Some(t) = self.tickets.get_mut(id) {
            for (k, v) in upd {
                let reserved = [
                    "id",
                    "conversation_no",
                    "comments",
                    "comment",
                    "created_at",
                    "updated_at",
                    "status",
                    "state",
                    "tags",
                    "assignee_id",
                ];
                if let Some(m) = t
                    .as_object_mut()
                    .filter(|_| !reserved.contains(&k.as_str()))
                {
                    merge(m.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            if let Some(s) = state {
                t["state"] = s.into();
            }
            if let Some(a) = assignee {
                t["assignee_id"] = a;
            }
            if let Some(tags) = tags {
                t["tags"] = tags.into();
            }
            t["updated_at"] = now.into();
        }
        if let Some(s) = status {
            self.set_status(id, &s);
        }
        if let Some(c) = comment {
            self.append_comment(id, &c);
        }
        self.ticket_response(id)
    }

    fn change_tags(&mut self, id: &str, body: &Value, add: bool) -> Res {
        let list = body
            .get("tags")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`tags` must be an array of strings"))?;
        let mut names = Vec::new();
        for v in list {
            let s = v
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| bad(format!("Invalid tag {v}")))?;
            names.push(self.tag_name(s).unwrap_or_else(|| s.to_owned()));
        }
        if !self.tickets.contains_key(id) {
            return Err((404, format!("Ticket {id} not found")));
        }
        if add {
            for n in &names {
                self.ensure_tag(n);
            }
        }
        let now = self.now_iso();
        if let Some(t) = self.tickets.get_mut(id) {
            let mut tags: Vec<Value> = t["tags"].as_array().cloned().unwrap_or_default();
            for n in names {
                let n = Value::String(n);
                if add && !tags.contains(&n) {
                    tags.push(n);
                } else if !add {
                    tags.retain(|x| *x != n);
                }
            }
            t["tags"] = tags.into();
            t["updated_at"] = now.into();
        }
        self.ticket_response(id)
    }

    fn send_message(&mut self, id: &str, body: &Value) -> Res {
        let text = str_of(body, "body")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad("`body` is required"))?;
        let author = str_of(body, "author_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("`author_id` is required"))?;
        if author != "operator" && !self.is_user(author) {
            return Err(bad(format!("Unknown author_id {author:?}")));
        }
        let attachments = match body.get("attachments") {
            None | Some(Value::Null) => json!([]),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Value::Array(a.clone()),
            Some(_) => return Err(bad("`attachments` must be an array of strings")),
        };
        if !self.tickets.contains_key(id) {
            return Err((404, format!("Ticket {id} not found")));
        }
        let comment = json!({"is_operator": true, "author_id": author, "body": text,
            "plain_body": strip_tags(text), "attachments": attachments});
        let cid = self.append_comment(id, &comment);
        Ok((200, json!({"message": "Message sent", "comment_id": cid})))
    }

    fn attach_order(&mut self, id: &str, app: &str, order: &str) -> Res {
        if !self.tickets.contains_key(id) {
            return Err((404, format!("Ticket {id} not found")));
        }
        self.links
            .insert(id.to_owned(), (app.to_owned(), order.to_owned()));
        Ok((
            200,
            json!({"message": "Order attached to the conversation"}),
        ))
    }

    fn linked_order(&self, conv: &str) -> (u16, Value) {
        match self.links.get(conv) {
            Some((app, order)) => (200, json!({"orderId": order, "appClientId": app})),
            None => (200, json!({})),
        }
    }

    fn get_order(&self, app: &str, order: &str) -> Res {
        match self.orders.get(&(app.to_owned(), order.to_owned())) {
            Some(o) => Ok((200, json!({"order": o}))),
            None => Err((404, format!("Order {order} not found"))),
        }
    }

    fn upsert_orders(&mut self, app: &str, body: &Value) -> Res {
        let orders = body
            .get("orders")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("`orders` must be an array"))?;
        if orders.len() > MAX_ORDER_BATCH {
            return Err(bad(format!("At most {MAX_ORDER_BATCH} orders per request")));
        }
        let mut keyed = Vec::new();
        for (i, o) in orders.iter().enumerate() {
            let missing: Vec<&str> = ["orderId", "orderDbKey", "amount"]
                .into_iter()
                .filter(|k| o.get(*k).is_none_or(Value::is_null))
                .collect();
            let key = order_key(o).filter(|_| missing.is_empty() && o.is_object());
            let key = key.ok_or_else(|| {
                bad(format!(
                    "orders[{i}]: missing or invalid {}",
                    missing.join(", ")
                ))
            })?;
            keyed.push((key, o.clone()));
        }
        let count = keyed.len();
        for (key, o) in keyed {
            self.orders.insert((app.to_owned(), key), o);
        }
        Ok((200, json!({"message": "Orders synced", "count": count})))
    }

    fn create_tag(&mut self, body: &Value) -> Res {
        let name = str_of(body, "name")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad("`name` is required"))?;
        if self.tags.iter().any(|t| str_of(t, "name") == Some(name)) {
            return Err((409, format!("Tag {name:?} already exists")));
        }
        let description = body.get("description").cloned().unwrap_or(Value::Null);
        Ok((
            200,
            json!({"tag": self.create_tag_value(name, description)}),
        ))
    }
}

/// One page of `items` under `key`, with `count`, `next_page` and `previous_page`.
fn paginate(items: &[Value], key: &str, base: &str, path: &str, query: Option<&str>) -> Res {
    let (mut page, mut per_page) = (1usize, DEFAULT_PER_PAGE);
    for (k, v) in parse_query(query) {
        let n = || {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(format!("Invalid {k}: {v:?}")))
        };
        match k.as_str() {
            "page" => page = n()?,
            "per_page" => per_page = n()?.min(MAX_PER_PAGE),
            _ => {}
        }
    }
    let start = (page - 1).saturating_mul(per_page);
    let slice: Vec<&Value> = items.iter().skip(start).take(per_page).collect();
    let url = |p: usize| format!("{base}{path}?page={p}&per_page={per_page}");
    let next = (start.saturating_add(per_page) < items.len()).then(|| url(page + 1));
    let prev = (page > 1).then(|| url(page - 1));
    Ok((
        200,
        json!({key: slice, "count": items.len(), "next_page": next, "previous_page": prev}),
    ))
}
