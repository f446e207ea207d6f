//! Following a training job's Server-Sent Events as a student's client does: every event once, in order,
//! reconnecting with `Last-Event-ID` when the stream is cut before the job's last event.

use std::io::BufRead;
use std::time::{Duration, Instant};

use crate::http::Client;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its numeric `id:`, if any.
    pub id: Option<u64>,
    /// Its `event:` kind (`message` if none).
    pub kind: String,
    /// Its `data:` lines joined by newlines.
    pub data: String,
}

/// How a stream was followed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    /// Connections opened after the first (the stream was cut or refused with a 5xx).
    pub reconnects: usize,
}

/// Route the event streams are counted under.
pub const ROUTE: &str = "GET /api/v1/jobs/{id}/events";

/// Reads the events of `path` from the server behind `client`, handing each new one to `handle` until it
/// returns `true` (the last event). A 4xx answer is an error at once (the job is unknown there); a
/// connection that fails, a 5xx or a stream that ends early is reopened with `Last-Event-ID`, up to
/// `attempts` times in a row without a new event.
pub fn follow(
    client: &Client,
    path: &str,
    attempts: usize,
    mut handle: impl FnMut(&Event) -> Result<bool, String>,
) -> Result<Followed, String> {
    let mut last: Option<u64> = None;
    let mut followed = Followed::default();
    let mut failed_in_a_row = 0;
    loop {
        let started = Instant::now();
        let mut news = false;
        let why = match client.stream(path, last) {
            Err(e) => {
                client.record(ROUTE, started, false);
                e
            }
            Ok((status, None)) => {
                client.record(ROUTE, started, false);
                if status < 500 {
                    return Err(format!("{ROUTE} answered {status}"));
                }
                format!("{ROUTE} answered {status}")
            }
            Ok((_, Some(reader))) => {
                let mut reader = std::io::BufReader::new(reader);
                let ended = read_events(&mut reader, &mut last, &mut news, &mut handle);
                client.record(ROUTE, started, true);
                match ended? {
                    None => return Ok(followed),
                    Some(why) => why,
                }
            }
        };
        failed_in_a_row = if news { 1 } else { failed_in_a_row + 1 };
        if failed_in_a_row > attempts {
            return Err(format!("lost the job's events: {why} ({attempts} reconnections without news)"));
        }
        followed.reconnects += 1;
        std::thread::sleep(Duration::from_millis(250 * failed_in_a_row as u64));
    }
}

/// Reads events until `handle` says the last one came (`Ok(None)`) or the stream ends (`Ok(Some(why))`).
fn read_events(
    reader: &mut impl BufRead,
    last: &mut Option<u64>,
    news: &mut bool,
    handle: &mut impl FnMut(&Event) -> Result<bool, String>,
) -> Result<Option<String>, String> {
    let mut event = Event { id: None, kind: String::new(), data: String::new() };
    let mut has_data = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(Some("the event stream ended before the job's last event".into())),
            Ok(_) => {}
            Err(e) => return Ok(Some(format!("the event stream broke ({e})"))),
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            let done = std::mem::replace(&mut event, Event { id: None, kind: String::new(), data: String::new() });
            if !std::mem::take(&mut has_data) {
                continue;
            }
            // Events at or below the last id handled were seen on an earlier connection.
            if matches!((done.id, *last), (Some(id), Some(seen)) if id <= seen) {
                continue;
            }
            let done = Event { kind: if done.kind.is_empty() { "message".into() } else { done.kind }, ..done };
            if done.id.is_some() {
                *last = done.id;
            }
            *news = true;
            if handle(&done)? {
                return Ok(None);
            }
        } else if text.starts_with(':') {
            // A heartbeat.
        } else {
            let (field, value) = text.split_once(':').unwrap_or((text, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.kind = value.to_string(),
                "id" => event.id = value.parse().ok(),
                "data" => {
                    if has_data {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_and_old_ones_skipped() {
        let text = ": heartbeat\n\nevent: queued\nid: 1\ndata: {\"rows\":4}\n\nevent: epoch\nid: 3\ndata: {}\n\n\
                    event: done\nid: 4\ndata: {}\n\n";
        let mut seen = Vec::new();
        let mut last = Some(1);
        let mut news = false;
        let ended = read_events(&mut text.as_bytes(), &mut last, &mut news, &mut |e: &Event| {
            seen.push((e.kind.clone(), e.id));
            Ok(e.kind == "done")
        });
        assert_eq!(ended, Ok(None));
        assert_eq!(seen, [("epoch".to_string(), Some(3)), ("done".to_string(), Some(4))]);
        assert_eq!(last, Some(4));
        let mut last = None;
        let ended =
            read_events(&mut "event: step\nid: 2\ndata: {}\n\n".as_bytes(), &mut last, &mut news, &mut |_| Ok(false));
        assert!(ended.unwrap().unwrap().contains("ended"));
        assert_eq!(last, Some(2));
    }
}
