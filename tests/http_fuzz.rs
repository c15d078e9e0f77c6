//! A property test of the HTTP edge: thousands of requests, each a valid
//! one mutated at random (request line, header fields, Content-Length,
//! chunked framing, truncation), sent to the real binary. Whatever arrives,
//! every answer is a well-formed HTTP/1.1 response that is not a 5xx (505
//! for another HTTP version aside), and the process lives on with every
//! handler answering. The seed makes each failing case reproducible.

mod common;

use common::daemon::{Daemon, read_until_close};
use common::fake_upstream::FakeUpstream;
use common::rng::Rng;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// `HTTP_FUZZ_CASES` and `HTTP_FUZZ_SEED` widen a local run.
const CASES: usize = 12_000;
const CLIENTS: usize = 6;

const BUILD: &str = r#"{"version":"1.2.3","target":"testtarget/testsubtarget","profile":"testprofile","packages":["vim"]}"#;

/// A valid request to start from.
fn template(rng: &mut Rng) -> Vec<u8> {
    let text = match rng.below(6) {
        0 => "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        1 => "GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nUser-Agent: fuzz\r\n\r\n".to_string(),
        2 => "HEAD /json/v1/overview.json HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        3 => "OPTIONS /api/v1/build HTTP/1.1\r\nHost: x\r\nOrigin: https://x\r\n\r\n".to_string(),
        4 => format!(
            "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BUILD}",
            BUILD.len()
        ),
        _ => format!(
            "POST /api/v1/build HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            20,
            &BUILD[..20],
            BUILD.len() - 20,
            &BUILD[20..]
        ),
    };
    text.into_bytes()
}

const SPECIAL: &[u8] = b"\r\n\0 \t:;,\x7f\xff0f-+";

const HEADERS: &[&str] = &[
    "Content-Length: 0",
    "Content-Length: 5",
    "Content-Length: 18446744073709551616",
    "Content-Length: -1",
    "Content-Length: 0x10",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip",
    "Transfer-Encoding: chunked, chunked",
    "Expect: 100-continue",
    "Expect: nonsense",
    "Connection: close",
    "Connection: keep-alive, Upgrade",
    "Upgrade: h2c",
    "Host: y",
    " folded",
    "X-Long: ",
];

fn mutate(rng: &mut Rng, req: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        if req.is_empty() {
            req.push(rng.byte());
        }
        let at = rng.below(req.len());
        match rng.below(9) {
            0 => req[at] = rng.byte(),
            1 => req[at] = *rng.pick(SPECIAL),
            2 => req.insert(at, *rng.pick(SPECIAL)),
            3 => {
                req.remove(at);
            }
            4 => req.truncate(at),
            5 => {
                // A header field at the start of the header section.
                let pos = req.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
                let mut line = rng.pick(HEADERS).as_bytes().to_vec();
                if line.ends_with(b": ") {
                    line.extend(std::iter::repeat_n(b'a', rng.below(40_000)));
                }
                line.extend_from_slice(b"\r\n");
                req.splice(pos..pos, line);
            }
            6 => {
                // Duplicate a line.
                let start = req[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = req[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(req.len(), |p| at + p + 1);
                let line = req[start..end].to_vec();
                req.splice(start..start, line);
            }
            7 => {
                // Another version token.
                let v = *rng.pick(&[
                    "HTTP/1.0",
                    "HTTP/2.0",
                    "HTTP/0.9",
                    "HTTP/1.12",
                    "http/1.1",
                    "HTTP/9",
                ]);
                if let Some(p) = req.windows(8).position(|w| w == b"HTTP/1.1") {
                    req.splice(p..p + 8, v.bytes());
                }
            }
            _ => {
                // Pipeline a second request behind the first.
                let mut second = template(rng);
                req.append(&mut second);
            }
        }
    }
}

/// Every status line in `answer` (pipelined requests get several).
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 ") || l.starts_with("HTTP/1.0 "))
        .filter_map(|l| l.get(9..12)?.parse().ok())
        .collect()
}

fn run_cases(addr: String, seed: u64, cases: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut failures = Vec::new();
    for case in 0..cases {
        let mut req = template(&mut rng);
        mutate(&mut rng, &mut req);
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(&req);
        // All this client will send: the server need not wait for more.
        let _ = s.shutdown(Shutdown::Write);
        let (answer, closed) = read_until_close(&mut s);
        let bad: Vec<u16> = statuses(&answer)
            .into_iter()
            .filter(|s| !(100..500).contains(s) && *s != 505)
            .collect();
        // HTTP/1.0 requests are answered in HTTP/1.0.
        let head_ok =
            answer.is_empty() || answer.starts_with("HTTP/1.1 ") || answer.starts_with("HTTP/1.0 ");
        if !bad.is_empty() || !head_ok || !closed {
            failures.push(format!(
                "seed {seed} case {case}: {:?} → {:?} (closed: {closed})",
                String::from_utf8_lossy(&req[..req.len().min(300)]),
                &answer[..answer.len().min(300)]
            ));
        }
    }
    failures
}

#[test]
fn mutated_requests_never_get_a_5xx_or_hurt_the_process() {
    let upstream = FakeUpstream::start_fixtures();
    let mut d = Daemon::start(&format!(
        "server_threads: 4\nworker_concurrent: 1\nupstream_url: {}\nbranches:\n  \"1.2\":\n    path: \"releases/{{version}}\"\n",
        upstream.url()
    ));
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cases = env("HTTP_FUZZ_CASES", CASES as u64) as usize;
    let seed = env("HTTP_FUZZ_SEED", 0x5eed);
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = d.addr();
            std::thread::spawn(move || run_cases(addr, seed + i as u64, cases / CLIENTS))
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    assert!(d.alive(), "{}", d.log());
    assert!(!d.log().contains("panicked"), "{}", d.log());
    d.all_answer(8);
    let peak = d.peak_rss_mib();
    eprintln!("[measure] {cases} mutated requests: peak RSS {peak:.1} MiB");
    assert!(peak <= 64.0, "peak RSS {peak:.1} MiB");
}
