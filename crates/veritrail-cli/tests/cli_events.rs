//! `veritrail events`: the table, every filter, and `--json` byte for byte.

mod common;
#[path = "cli_events_fixture/mod.rs"]
mod fixture;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Env, stderr, stdout};
use fixture::{AuditLog, TestKey, actor, actor_for, keyset_record, missing_scope, row_indexes};
use time::{Duration, OffsetDateTime};
use veritrail_core::event::{AuditEvent, Outcome};

/// The log the filter tests read, and the time its first record was written.
struct Sample {
    env: Env,
    log: AuditLog,
    t0: OffsetDateTime,
}

/// Whole seconds, so that RFC 3339 bounds in the tests are exact.
fn three_hours_ago() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() - Duration::hours(3);
    now.replace_nanosecond(0).unwrap()
}

/// 0 keyset, 1 start, 2..=7 requests three hours ago, 8 a request ten minutes ago.
fn sample() -> Sample {
    let env = Env::new();
    let t0 = three_hours_ago();
    let at = |minutes: i64| t0 + Duration::minutes(minutes);
    let key = TestKey::new("rsa", "k1");
    let mut log = AuditLog::create(&env.path("log"));
    log.append(&keyset_record(&[&key], t0));
    let mut start = AuditEvent::start("test.example/audit");
    start.time = t0;
    log.append(&start);
    let token = key.mint("alice", at(1));
    log.append(
        &AuditEvent::http("GET", "/orders/7")
            .time(at(1))
            .route("/orders/{id}")
            .client_address("203.0.113.9")
            .user_agent("curl/8.5")
            .actor(actor_for(&token, &key, at(1)))
            .authn_allowed()
            .action("order.read")
            .status(200)
            .build(),
    );
    log.append(
        &AuditEvent::http("POST", "/orders")
            .time(at(2))
            .route("/orders")
            .actor(actor("bob"))
            .authn_allowed()
            .action("order.create")
            .status(201)
            .build(),
    );
    log.append(
        &AuditEvent::http("GET", "/orders/9")
            .time(at(3))
            .route("/orders/{id}")
            .actor(actor("bob"))
            .authn_allowed()
            .status(404)
            .build(),
    );
    log.append(
        &AuditEvent::http("DELETE", "/orders/7")
            .time(at(4))
            .route("/orders/{id}")
            .actor(actor("alice"))
            .authn_allowed()
            .authz(missing_scope())
            .status(403)
            .build(),
    );
    log.append(
        &AuditEvent::http("GET", "/admin")
            .time(at(5))
            .authn_denied("expired")
            .status(401)
            .build(),
    );
    log.append(
        &AuditEvent::http("PUT", "/orders/7")
            .time(at(6))
            .route("/orders/{id}")
            .actor(actor("alice"))
            .authn_allowed()
            .status(500)
            .build(),
    );
    log.append(
        &AuditEvent::http("GET", "/health")
            .time(OffsetDateTime::now_utc() - Duration::minutes(10))
            .route("/health")
            .anonymous()
            .status(200)
            .build(),
    );
    log.commit();
    Sample { env, log, t0 }
}

fn indexes(s: &Sample, filters: &[&str]) -> Vec<u64> {
    let mut args = vec!["events", "log"];
    args.extend_from_slice(filters);
    row_indexes(&s.env.ok(&args, b"").stdout)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn the_table_shows_every_record_with_its_fields() {
    let s = sample();
    let out = s.env.ok(&["events", "log"], b"");
    assert_eq!(row_indexes(&out.stdout), (0..=8).collect::<Vec<_>>());
    let text = stdout(&out);
    let row = |index: u64| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(&index.to_string()))
            .unwrap()
            .to_owned()
    };
    let read = row(2);
    for part in [
        "alice",
        "GET /orders/{id}",
        " 200 ",
        "success",
        "order.read",
        " http ",
    ] {
        assert!(read.contains(part), "{part:?} not in {read:?}");
    }
    // Times are RFC 3339, UTC, microseconds.
    let time = (s.t0 + Duration::minutes(1)).replace_nanosecond(0).unwrap();
    assert!(
        read.starts_with(&format!("{}.000000Z", &rfc3339(time)[..19])),
        "{read}"
    );
    let keyset = row(0);
    assert!(keyset.contains("keyset"), "{keyset}");
    assert!(keyset.contains(fixture::ISS), "{keyset}");
    assert!(keyset.contains("1 key"), "{keyset}");
    assert!(row(1).contains("start"), "{}", row(1));
    let refused = row(6);
    assert!(
        refused.contains("GET /admin") && refused.contains(" 401 ") && refused.contains("denied"),
        "{refused}"
    );
    // The reason code has its column: authentication's, else authorization's.
    assert!(text.lines().next().unwrap().contains(" REASON "), "{text}");
    assert!(refused.contains(" expired "), "{refused}");
    assert!(row(5).contains(" missing_scope "), "{}", row(5));
    assert!(read.contains("  -  "), "{read}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn an_event_id_finds_its_record_and_index() {
    let s = sample();
    let json = s
        .env
        .ok(&["events", "log", "--json", "--status", "403"], b"");
    let event: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let id = event["id"].as_str().unwrap();
    assert_eq!(indexes(&s, &["--id", id]), [5]);
    // A system record is found by its id too.
    let json = s.env.ok(&["events", "log", "--json"], b"");
    let first: serde_json::Value =
        serde_json::from_slice(json.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(indexes(&s, &["--id", first["id"].as_str().unwrap()]), [0]);
    let out = s
        .env
        .expect(2, &["events", "log", "--id", "not-a-uuid"], b"");
    assert!(stderr(&out).contains("not an event id"), "{}", stderr(&out));
}

#[test]
fn each_filter_selects_its_events() {
    let s = sample();
    assert_eq!(indexes(&s, &["--sub", "alice"]), [2, 5, 7]);
    assert_eq!(indexes(&s, &["--sub", "bob"]), [3, 4]);
    assert_eq!(indexes(&s, &["--sub", "nobody"]), Vec::<u64>::new());
    assert_eq!(indexes(&s, &["--route", "/orders/{id}"]), [2, 4, 5, 7]);
    // An event without a route template matches on its path.
    assert_eq!(indexes(&s, &["--route", "/admin"]), [6]);
    assert_eq!(indexes(&s, &["--action", "order.create"]), [3]);
    assert_eq!(indexes(&s, &["--outcome", "denied"]), [5, 6]);
    assert_eq!(indexes(&s, &["--outcome", "error"]), [7]);
    assert_eq!(indexes(&s, &["--outcome", "failure"]), [4]);
    assert_eq!(indexes(&s, &["--status", "404"]), [4]);
    assert_eq!(indexes(&s, &["--status", "5xx"]), [7]);
    assert_eq!(indexes(&s, &["--status", "2xx"]), [2, 3, 8]);
    // Filters combine (all must hold).
    assert_eq!(indexes(&s, &["--sub", "alice", "--outcome", "denied"]), [5]);
    assert_eq!(
        indexes(&s, &["--route", "/orders/{id}", "--status", "4xx"]),
        [4, 5]
    );
}

#[test]
fn time_filters_take_rfc3339_dates_and_durations_and_keep_system_records() {
    let s = sample();
    let since = rfc3339(s.t0 + Duration::minutes(3));
    let until = rfc3339(s.t0 + Duration::minutes(6));
    // since inclusive, until exclusive.
    assert_eq!(
        indexes(&s, &["--since", &since, "--until", &until]),
        [4, 5, 6]
    );
    // Records at t0 (the keyset and start records) are in a window that starts at t0.
    assert_eq!(
        indexes(&s, &["--since", &rfc3339(s.t0), "--until", &since]),
        [0, 1, 2, 3]
    );
    assert_eq!(indexes(&s, &["--since", "1h"]), [8]);
    assert_eq!(indexes(&s, &["--until", "1h"]), (0..=7).collect::<Vec<_>>());
    let today = OffsetDateTime::now_utc()
        .date()
        .next_day()
        .unwrap()
        .to_string();
    assert_eq!(indexes(&s, &["--since", &today]), Vec::<u64>::new());

    let out = s
        .env
        .expect(2, &["events", "log", "--since", "yesterday"], b"");
    assert!(
        stderr(&out).contains("--since yesterday"),
        "{}",
        stderr(&out)
    );
    let out = s.env.expect(2, &["events", "log", "--status", "99"], b"");
    assert!(stderr(&out).contains("--status 99"), "{}", stderr(&out));
    s.env
        .expect(2, &["events", "log", "--since", "1h", "--until", "2h"], b"");
    s.env
        .expect(2, &["events", "log", "--outcome", "maybe"], b"");
}

#[test]
fn json_prints_the_stored_bytes_exactly() {
    let s = sample();
    let out = s.env.ok(&["events", "log", "--json"], b"");
    let expected: String = s
        .log
        .records
        .iter()
        .map(|r| {
            let mut line = String::from_utf8(r.clone()).unwrap();
            line.push('\n');
            line
        })
        .collect();
    assert_eq!(stdout(&out), expected);

    let out = s.env.ok(&["events", "log", "--json", "--sub", "bob"], b"");
    assert_eq!(
        stdout(&out),
        format!("{}\n{}\n", s.log.text(3), s.log.text(4))
    );
}

/// Text an attacker controls (a path, a claim, a header) with every kind of character a
/// terminal acts on: ANSI sequences (ESC and the C1 CSI), bidi overrides and isolates, a
/// newline that would start a fake row, DEL.
const HOSTILE: &str = "x\u{1b}[2J\u{1b}[31m\u{9b}1m\u{202e}nimda\u{2066}\u{200f}\u{7f}\nFAKE ROW";

/// What [`HOSTILE`] must look like in human output.
const HOSTILE_SHOWN: &str =
    r"x\x1b[2J\x1b[31m\u{9b}1m\u{202e}nimda\u{2066}\u{200f}\x7f\x0aFAKE ROW";

/// A log whose paths, subject, action and system records carry [`HOSTILE`].
fn hostile_log(env: &Env) -> AuditLog {
    let mut log = AuditLog::create(&env.path("log"));
    log.append(
        &AuditEvent::http("GET", format!("/files/{HOSTILE}"))
            .actor(actor(HOSTILE))
            .authn_allowed()
            .action(HOSTILE)
            .status(200)
            .build(),
    );
    log.append(&AuditEvent::start(HOSTILE));
    log.append(&AuditEvent::recovered(HOSTILE, 24, 1));
    log.commit();
    log
}

/// No character a terminal would act on is left in `text` (newlines end lines).
fn assert_inert(text: &str) {
    let bad = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(
                c,
                '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    assert!(
        !text.contains(bad),
        "raw control or bidi characters: {text:?}"
    );
}

#[test]
fn control_and_bidi_characters_are_escaped_in_the_table_and_exact_in_json() {
    let env = Env::new();
    let log = hostile_log(&env);
    let text = stdout(&env.ok(&["events", "log"], b""));
    assert_inert(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one row per record: {text}");
    assert!(!lines.iter().any(|l| l.starts_with("FAKE")), "{text}");
    assert!(
        lines[1].contains(&format!("GET /files/{HOSTILE_SHOWN}"))
            && lines[1].contains(&format!("{HOSTILE_SHOWN}  "))
            && lines[1].ends_with(HOSTILE_SHOWN),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(HOSTILE_SHOWN) && lines[3].contains(HOSTILE_SHOWN));

    // --json prints the stored bytes: exact, escaped only as JSON escapes them.
    let json = stdout(&env.ok(&["events", "log", "--json"], b""));
    let expected: Vec<String> = (0..3).map(|i| log.text(i)).collect();
    assert_eq!(json.lines().collect::<Vec<_>>(), expected);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["request"]["path"], format!("/files/{HOSTILE}"));
}

#[test]
fn a_record_that_is_not_an_event_is_named_escaped() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    let record = format!(
        r#"{{"v":1,"id":"01890a5d-ac96-774b-bcce-b302099a8057","index":0,"time":"2026-01-01T00:00:00.000000Z","kind":"{}"}}"#,
        "\\u001b[2J\u{202e}"
    );
    log.append_raw(record.as_bytes());
    log.commit();
    let out = env.ok(&["events", "log"], b"");
    assert_inert(&stderr(&out));
    assert!(
        stderr(&out).contains(r"\x1b[2J\u{202e}"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn records_that_are_not_audit_events_are_counted_not_shown() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    log.append(
        &AuditEvent::http("GET", "/a")
            .status(200)
            .outcome(Outcome::Success)
            .build(),
    );
    log.append_raw(br#"{"hello":"world"}"#);
    log.append_raw(br#"{"v":2,"id":"x"}"#);
    log.commit();
    let out = env.ok(&["events", "log"], b"");
    assert_eq!(row_indexes(&out.stdout), [0]);
    let note = stderr(&out);
    assert!(
        note.contains("2 records") && note.contains("index 1"),
        "{note}"
    );
    let out = env.ok(&["events", "log", "--json"], b"");
    assert_eq!(stdout(&out), format!("{}\n", log.text(0)));
}

#[test]
fn a_reader_that_goes_away_ends_the_listing_quietly() {
    let env = Env::new();
    let mut log = AuditLog::create(&env.path("log"));
    for i in 0..3000 {
        log.append(
            &AuditEvent::http("GET", format!("/items/{i}"))
                .route("/items/{id}")
                .status(200)
                .build(),
        );
    }
    log.commit();
    let mut child = Command::new(env!("CARGO_BIN_EXE_veritrail"))
        .args(["events", env.path("log").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("TIME"), "{first}");
    // The reader is dropped here, with most of the table unread.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_missing_log_is_a_usage_error() {
    let env = Env::new();
    let out = env.expect(2, &["events", "nolog"], b"");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
